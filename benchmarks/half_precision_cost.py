"""What a bfloat16 network costs in quality: DiffC on the embedded model in bfloat16 against float32, on Kodak crops.

    python benchmarks/half_precision_cost.py [--images 6] [--size 256]

The first `--images` Kodak images (`../shared/data/kodak/`, centre-cropped to `--size`) are coded with DiffC once per
dtype (one encode, the stream cut at every target; targets below the condition-only file get that file) and every
cut is decoded in the same dtype with the flow and the mean decode. bfloat16 runs on the CPU too, so this measures on
any machine what a GPU user gives up for the speed. Writes `results/half_precision_cost.json`: per-image rows, the
mean bpp and PSNR per target and dtype, BD-rate and BD-PSNR of bfloat16 against float32 per decode, and the seconds
per image.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch
from kodak import KODAK, kodak_centre_crop, require_kodak

from cod_diffc.backbones import load_backbone
from cod_diffc.diffc import decode, encode
from cod_diffc.diffc.codec import decoded_image
from cod_diffc.evaluation.bjontegaard import bd_psnr, bd_rate
from cod_diffc.evaluation.metrics import psnr, to_uint8


ROOT = Path(__file__).resolve().parents[1]
TARGET_BPP = [0.015, 0.03, 0.06, 0.12, 0.25]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DECODES = ("flow", "mean")


def code_image(adapter, image: torch.Tensor) -> dict:
    """One encode at every target, each cut decoded both ways: bpp, PSNR per decode, seconds."""
    start = time.perf_counter()
    result = encode(image, adapter, target_bpp=TARGET_BPP, clamp_targets=True, progress=False)
    row = {"bpp": [point.bpp for point in result.points], "stop_steps": [point.stop_step for point in result.points]}
    original = to_uint8(image)
    for method in DECODES:
        row[f"psnr_{method}"] = []
    for point in result.points:
        decoded = decode(point.stream, adapter, progress=False)
        for method in DECODES:
            reconstruction = to_uint8(decoded_image(decoded, adapter, method=method, progress=False))
            row[f"psnr_{method}"].append(psnr(original, reconstruction))
    row["seconds"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6, help="how many Kodak images (default 6)")
    parser.add_argument("--size", type=int, default=256, help="crop side (default 256)")
    args = parser.parse_args()
    require_kodak()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    names = sorted(path.stem for path in KODAK.glob("kodim*.png"))[: args.images]
    adapters = {label: load_backbone("cod", dtype=dtype) for label, dtype in DTYPES.items()}
    rows = {label: [] for label in DTYPES}
    for name in names:
        image = kodak_centre_crop(name, args.size)
        for label, adapter in adapters.items():
            rows[label].append({"image": name, **code_image(adapter, image)})
            print(f"{name} {label}: {json.dumps(rows[label][-1])}", flush=True)
    means = {
        label: {
            key: [statistics.fmean(row[key][i] for row in label_rows) for i in range(len(TARGET_BPP))]
            for key in ("bpp", *(f"psnr_{method}" for method in DECODES))
        }
        for label, label_rows in rows.items()
    }
    comparison = {}
    for method in DECODES:
        anchor, test = means["float32"], means["bfloat16"]
        curves = (anchor["bpp"], anchor[f"psnr_{method}"], test["bpp"], test[f"psnr_{method}"])
        comparison[method] = {"bd_rate_percent": bd_rate(*curves), "bd_psnr_db": bd_psnr(*curves)}
    report = {
        "command": f"python benchmarks/half_precision_cost.py --images {args.images} --size {args.size}",
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit.strip(),  # the code that ran: read at the start
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "images": names,
        "size": args.size,
        "target_bpp": TARGET_BPP,
        "mean": means,
        "bfloat16_against_float32": comparison,
        "seconds_per_image": {label: statistics.median(row["seconds"] for row in rows[label]) for label in DTYPES},
        "per_image": rows,
    }
    path = ROOT / "results" / "half_precision_cost.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"bfloat16_against_float32": comparison, "seconds_per_image": report["seconds_per_image"]}))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
