"""Fuzz the decoders (DiffC, Turbo-DDCM, DDCM) with mutated streams and record what happens to each.

    python benchmarks/fuzz_streams.py [--streams 100000] [--seed 0] [--cli-every 500]

Valid streams are made for every combination of backbone (the analytic `gaussian` one and a tiny random CoD) and
codec: DiffC with either reverse channel coder (plain and pooled) and cut (condition only, and several coded steps),
Turbo-DDCM and DDCM (small codebooks). Each trial takes one of them and
applies 1-3 mutations: truncation, bit flips, overwrites, insertions, splices from another valid stream; for most
trials (`--forge-checksum`, default 0.8) the CRC is then recomputed, so the mutation reaches the field checks, the
rANS decoder and the replay behind the checksum. Every decode runs under a timer (`--timeout`); one trial in
`--cli-every` also goes through `cod-diffc decompress`, which must then either write a valid PNG or exit with a
one-line error and leave no file behind.

An outcome other than `StreamError` or a correct decode is a bug: the script prints it, keeps the input under
`results/fuzz_failures/`, and exits non-zero. Writes `results/fuzz.json`: streams tried, outcomes by class, the
slowest decode and the peak memory of the process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import resource
import signal
import struct
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import PIL.Image
import torch
from codec_time import random_backbone
from tqdm import tqdm

from cod_diffc import ddcm
from cod_diffc.backbones import load_backbone
from cod_diffc.backbones.padding import padded_size
from cod_diffc.cli import main as cod_diffc_main
from cod_diffc.codecs import load_codec
from cod_diffc.diffc import DiffCSchedule, decode, encode
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.errors import StreamError


ROOT = Path(__file__).resolve().parents[1]
MAX_LATENT_ELEMENTS = 3 * 64 * 64  # forged image sizes beyond this are refused before any allocation
CODERS = {"plain": ChunkedPFRSimulator(max_chunk_bits=8), "pooled": PooledPFRSimulator(max_chunk_bits=10)}
SCHEDULE = DiffCSchedule(num_steps=6, t_end=0.05)
CODEBOOK_CODECS = {
    "turbo-ddcm": {"num_steps": 6, "codebook_bits": 8, "block_width": 1024, "max_atoms": 8},
    "ddcm": {"num_steps": 12, "codebook_bits": 8, "block_width": 1024},
}


class DecodeTimeout(Exception):
    """A decode ran past the timer: counted as a hang."""


def _alarm(signum, frame):
    raise DecodeTimeout


def make_sources(tiny_cod_dir: Path) -> list[dict]:
    """Valid streams of every backbone x coder x cut, with the latents they decode to; saves the tiny CoD (random
    weights) to `tiny_cod_dir` for the command line."""
    random_backbone("cod-pixel-tiny").pipeline.save_pretrained(tiny_cod_dir)
    generator = torch.Generator().manual_seed(0)
    backbones = {
        "gaussian": (load_backbone("gaussian", std=0.5), torch.rand(1, 3, 8, 8, generator=generator)),
        "cod": (load_backbone("cod", str(tiny_cod_dir)), torch.rand(1, 3, 32, 64, generator=generator)),
    }
    sources = []
    for backbone, (adapter, image) in backbones.items():
        for coder, simulator in CODERS.items():
            result = encode(image, adapter, stop_step=[0, 4], schedule=SCHEDULE, simulator=simulator, progress=False)
            for point in result.points:
                sources.append(
                    {
                        "name": f"{backbone}-{coder}-step{point.stop_step}",
                        "codec": "diffc",
                        "adapter": adapter,
                        "stream": point.stream,
                        "latent": point.latent,
                    }
                )
        for codec_name, settings in CODEBOOK_CODECS.items():
            target = 12.0 if backbone == "gaussian" else 0.8
            encoded = load_codec(codec_name, **settings).encode(image, adapter, target_bpp=target, progress=False)
            sources.append(
                {
                    "name": f"{backbone}-{codec_name}-step{encoded.stop_step}",
                    "codec": codec_name,
                    "adapter": adapter,
                    "stream": encoded.stream,
                    "latent": encoded.latent,
                }
            )
    return sources


def mutate(data: bytes, rng: random.Random, donors: list[bytes], forge_checksum: bool) -> tuple[bytes, list[str]]:
    """1-3 random mutations of `data`, then (if asked) a recomputed CRC32; returns the bytes and the mutation kinds."""
    mutated = bytearray(data)
    kinds = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["truncate", "flip", "overwrite", "insert", "splice"])
        kinds.append(kind)
        position = rng.randrange(len(mutated) + 1)
        if kind == "truncate":
            del mutated[position:]
        elif kind == "flip" and position < len(mutated):
            mutated[position] ^= 1 << rng.randrange(8)
        elif kind == "overwrite":
            mutated[position : position + 8] = rng.randbytes(rng.randint(1, 8))
        elif kind == "insert":
            mutated[position:position] = rng.randbytes(rng.randint(1, 8))
        elif kind == "splice":
            donor = rng.choice(donors)
            start = rng.randrange(len(donor))
            mutated[start : start + rng.randint(1, 24)] = donor[start : start + rng.randint(1, 24)]
    if forge_checksum and len(mutated) > 4:
        mutated[-4:] = struct.pack("<I", zlib.crc32(bytes(mutated[:-4])))
    return bytes(mutated), kinds


def classify(source: dict, data: bytes, timeout: float) -> tuple[str, float, str]:
    """`(outcome, seconds, detail)` of decoding `data` with the source's backbone."""
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        if source["codec"] == "diffc":
            decoded = decode(data, source["adapter"], max_latent_elements=MAX_LATENT_ELEMENTS, progress=False)
            height, width = decoded.stream.height, decoded.stream.width
        else:
            decoded = ddcm.decode(
                data, source["adapter"], source["codec"], max_latent_elements=MAX_LATENT_ELEMENTS, progress=False
            )
            height, width = decoded.container.height, decoded.container.width
    except StreamError:
        return "stream_error", time.perf_counter() - start, ""
    except DecodeTimeout:
        return "hang", time.perf_counter() - start, ""
    except Exception as error:  # noqa: BLE001 - any other exception is exactly what the fuzzer looks for
        return "bug", time.perf_counter() - start, f"{type(error).__name__}: {error}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    seconds = time.perf_counter() - start
    adapter = source["adapter"]
    expected_shape = (1, *adapter.latent_shape(*padded_size(height, width, adapter.size_multiple)))
    if decoded.latent.shape != expected_shape or not bool(torch.isfinite(decoded.latent).all()):
        return "bug", seconds, f"decoded latent of shape {tuple(decoded.latent.shape)} or not finite"
    if data == source["stream"]:
        return ("decoded_same" if torch.equal(decoded.latent, source["latent"]) else "bug"), seconds, ""
    return "decoded_other", seconds, ""


def check_cli(data: bytes, tiny_cod_dir: Path, folder: Path) -> str:
    """`cod-diffc decompress` on `data`: a valid PNG and exit 0, or exit 2 with no file left; the outcome class."""
    stream, output = folder / "trial.cdc", folder / "trial.png"
    stream.write_bytes(data)
    output.unlink(missing_ok=True)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = cod_diffc_main(
            [
                "decompress",
                str(stream),
                "-o",
                str(output),
                "--model",
                str(tiny_cod_dir),
                "--no-progress",
                "--denoise-steps",
                "1",
            ]
        )
    leftovers = [path for path in folder.iterdir() if path.name not in ("trial.cdc", "trial.png")]
    if leftovers:
        return "cli_partial_file"
    if status == 0:
        with PIL.Image.open(output) as image:
            image.verify()
        return "cli_decoded"
    return "cli_refused" if status == 2 and not output.exists() else "cli_partial_file"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100_000, help="mutated streams to try (default 100000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forge-checksum", type=float, default=0.8, help="share of trials with a recomputed CRC")
    parser.add_argument("--cli-every", type=int, default=500, help="send one trial in N through the CLI (CoD ones)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds before a decode counts as a hang")
    args = parser.parse_args()

    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(args.seed)
    outcomes: Counter[str] = Counter()
    by_source: dict[str, Counter[str]] = {}
    failures_dir = ROOT / "results" / "fuzz_failures"
    slowest = {"seconds": 0.0}
    with tempfile.TemporaryDirectory() as temporary:
        tiny_cod_dir = Path(temporary) / "tiny_cod"
        cli_folder = Path(temporary) / "cli"
        cli_folder.mkdir()
        sources = make_sources(tiny_cod_dir)
        donors = [source["stream"] for source in sources]
        start = time.perf_counter()
        for trial in tqdm(range(args.streams), desc="fuzz", mininterval=5):
            source = sources[trial % len(sources)]
            forge = rng.random() < args.forge_checksum
            data, kinds = mutate(source["stream"], rng, donors, forge)
            outcome, seconds, detail = classify(source, data, args.timeout)
            name = source["name"]
            outcomes[outcome] += 1
            by_source.setdefault(name, Counter())[outcome] += 1
            if seconds > slowest["seconds"]:
                slowest = {"seconds": seconds, "source": name, "mutations": kinds, "outcome": outcome}
            if outcome in ("bug", "hang"):
                failures_dir.mkdir(parents=True, exist_ok=True)
                (failures_dir / f"{name}-trial{trial}.cdc").write_bytes(data)
                print(f"\n{outcome} on trial {trial} ({name}, {kinds}): {detail}")
            if name.startswith("cod-") and trial % args.cli_every == 0:
                outcomes[check_cli(data, tiny_cod_dir, cli_folder)] += 1
        elapsed = time.perf_counter() - start

    bad = outcomes["bug"] + outcomes["hang"] + outcomes["cli_partial_file"]
    report = {
        "streams_tried": args.streams,
        "forged_checksum_share": args.forge_checksum,
        "outcomes": dict(outcomes),
        "outcomes_by_source": {name: dict(counts) for name, counts in sorted(by_source.items())},
        "failures": bad,
        "slowest_decode": slowest,
        "decode_timeout_s": args.timeout,
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": elapsed,
        "seed": args.seed,
        "torch": torch.__version__,
    }
    output = ROOT / "results" / "fuzz.json"
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    raise SystemExit(1 if bad else 0)


if __name__ == "__main__":
    main()
