"""`benchmarks/gpu_check.py --device cpu --quick` runs, so the script a GPU session starts with never rots."""

import json
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_on_the_cpu(tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick"]
    result = subprocess.run(
        [*command, "--output", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert {"import", "round_trip_diffc", "round_trip_turbo-ddcm", "coder_step", "released_forward"} <= set(report)
    for codec in ("diffc", "turbo-ddcm"):
        round_trip = report[f"round_trip_{codec}"]
        assert round_trip["same_bytes_twice"] and round_trip["bytes"] > 0 and round_trip["psnr"] > 15
        assert round_trip["cpu_decode_identical"]  # the device is the CPU here: the same decoder, the same picture
    assert report["coder_step"]["kl_1000_bits_s"] > 0
    assert report["released_forward"]["float32_finite"] and report["released_forward"]["bfloat16_finite"]
