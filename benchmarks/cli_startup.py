"""Start-up of the command line: `--help` (no torch), `import torch` for scale, and a whole `cod-diffc compress`
process that stops after its first coded step (process start, imports, model loading, condition, one DiffC step,
file written), with `cod-diffc decompress` of that file; medians of fresh processes.

    python benchmarks/cli_startup.py --repeat 5 -o results/cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The CPU's model name (Linux), else what `platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def seconds(command: list[str]) -> float:
    """Wall-clock seconds of one fresh process running `command` (which must succeed)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="processes per command (the median is reported)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/cli_startup.json"))
    args = parser.parse_args()

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    cli = [sys.executable, "-m", "cod_diffc"]
    sample = str(files("cod_diffc") / "assets" / "sample.png")
    with tempfile.TemporaryDirectory() as folder:
        stream, decoded = f"{folder}/sample.cdc", f"{folder}/sample.png"
        commands = {
            "cod-diffc --help": [*cli, "--help"],
            "cod-diffc compress --help": [*cli, "compress", "--help"],
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "compress, first coded step": [
                *cli,
                "compress",
                sample,
                "-o",
                stream,
                "--stop-step",
                "1",
                "--no-progress",
            ],
            "decompress of it": [*cli, "decompress", stream, "-o", decoded, "--no-progress"],
        }
        timings = {name: [] for name in commands}
        for _ in range(args.repeat):  # interleaved, so a noisy moment touches every command alike
            for name, command in commands.items():
                timings[name].append(seconds(command))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in medians.items():
        print(f"{name:32s} {value:7.3f} s (median of {args.repeat})")
    record = {
        "command": "python benchmarks/cli_startup.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit.stdout.strip(),
        "hardware": f"{cpu_model()}, {os.cpu_count()} threads",
        "python": platform.python_version(),
        "median_seconds": medians,
        "seconds": timings,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
