"""Rate–distortion of DiffC on the embedded CoD on Kodak, against the condition alone, JPEG, WebP and AVIF.

    python benchmarks/kodak_embedded_rd.py [--resume] [--size 256]
    OMP_NUM_THREADS=1 ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no benchmarks/kodak_embedded_rd.py --resume   # both cores, by image

The 24 Kodak images (`../shared/data/kodak/`) are centre-cropped to `--size` x `--size` (the same crops for every
method), then `cod-diffc evaluate` codes them with DiffC on the embedded model (one encode per image, every rate
from the condition-only file up to 0.5 bpp, decoded both ways: `flow` and `mean`) and with the classical codecs and
their downscale-code-upscale `-down` variants (from 0.005 bpp), bpp from the bytes of the files written. DiffC's
targets below its condition-only file get that file.
Writes to `results/kodak_embedded/`: CompressAI-style JSON per method (plus `cod_condition_only.json`, the stop-step-0
points of DiffC, which are CoD's own codec), `per_image.csv`, `rd.png`, `report.md`, and `summary.json`, which states
the time per image and whether DiffC is above WebP in PSNR at every rate WebP reaches below 0.1 bpp.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
from accelerate import PartialState
from kodak import write_kodak_centre_crops

from cod_diffc.cli import main as cod_diffc_main
from cod_diffc.evaluation.report import plot_rd
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "results" / "kodak_embedded"
DIFFC = "cod_diffc-cod"
# Below these comes the condition-only file's rate (the DiffC header + 4 bits per 32 x 32 block), computed.
TARGET_BPP = [0.005, 0.01, 0.015, 0.03, 0.06, 0.12, 0.25, 0.5]
BASELINES = ["jpeg", "webp", "avif", "jpeg-down", "webp-down", "avif-down"]
DIFFC_MEAN = "cod_diffc-cod-mean"
DECODE_TIMING_BPP = 0.06  # the cut whose decode time (replay of the coded steps + denoising) the summary quotes


def condition_only_bpp(size: int) -> float:
    """Rate of the condition-only DiffC file of a `size` x `size` image on the embedded model."""
    import torch

    from cod_diffc.backbones import load_backbone
    from cod_diffc.diffc import encode

    return encode(torch.rand(1, 3, size, size), load_backbone("cod"), stop_step=0, progress=False).points[0].bpp


def per_image_rows(per_image_csv: Path) -> dict[str, dict[str, list[dict]]]:
    """`{method: {image: rows sorted by bpp}}` of `cod-diffc evaluate`'s per-image CSV."""
    table: dict[str, dict[str, list[dict]]] = {}
    for row in csv.DictReader(per_image_csv.open()):
        table.setdefault(row["method"], {}).setdefault(row["image"], []).append(row)
    return {
        method: {image: sorted(rows, key=lambda row: float(row["bpp"])) for image, rows in images.items()}
        for method, images in table.items()
    }


def mean_at_target(rows: dict[str, list[dict]], key: str, target: float) -> float:
    """The mean over the images (`rows`: one method's, by image) of column `key` in their rows for `target` bpp."""
    return statistics.mean(
        float(row[key]) for image_rows in rows.values() for row in image_rows if float(row["target_bpp"]) == target
    )


def condition_only_results(rows: dict[str, list[dict]]) -> dict:
    """CompressAI-style results of the stop-step-0 cuts of DiffC (`rows`: its per-image rows): the CoD condition."""
    cuts = [next(row for row in image_rows if row["setting"] == "stop_step=0") for image_rows in rows.values()]
    keys = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")
    return {
        "name": "cod-condition-only",
        "description": f"CoD condition alone (DiffC cut at step 0 on {DEFAULT_EMBEDDED_MODEL}, actual bytes)",
        "results": {key: [statistics.mean(float(row[key]) for row in cuts)] for key in keys},
    }


def webp_comparison(diffc: dict[str, list[dict]], webp: dict[str, list[dict]]) -> list[dict]:
    """Per image, DiffC's PSNR interpolated (in log-bpp) at each distinct WebP file below 0.1 bpp, against WebP's."""
    comparison = []
    for image, webp_rows in sorted(webp.items()):
        log_bpp = np.log([float(row["bpp"]) for row in diffc[image]])
        quality = [float(row["psnr-rgb"]) for row in diffc[image]]
        for setting in sorted({row["setting"] for row in webp_rows if float(row["bpp"]) < 0.1}):
            row = next(row for row in webp_rows if row["setting"] == setting)
            webp_bpp, webp_psnr = float(row["bpp"]), float(row["psnr-rgb"])
            diffc_psnr = float(np.interp(np.log(webp_bpp), log_bpp, quality))
            comparison.append(
                {
                    "image": image,
                    "webp": setting,
                    "bpp": webp_bpp,
                    "webp_psnr": webp_psnr,
                    "diffc_psnr": diffc_psnr,
                    "diffc_above": diffc_psnr > webp_psnr,
                }
            )
    return comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the centre crops (multiple of 32)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    args = parser.parse_args()

    crops = write_kodak_centre_crops(args.size, ROOT / "runs" / f"kodak_centre_{args.size}")
    targets = sorted([math.ceil(condition_only_bpp(args.size) * 1e6) / 1e6, *TARGET_BPP])  # 6 digits, never below
    status = cod_diffc_main(
        [
            "evaluate",
            str(crops),
            "-o",
            str(OUTPUT),
            "--bpp",
            *map(str, targets),
            "--backbone",
            "cod",
            "--decode",
            "flow",
            "mean",
            "--baseline",
            *BASELINES,
            "--crop-image",
            "kodim23",
            "--crop-bpp",
            "0.03",
            *(["--resume"] if args.resume else []),
        ]
    )
    if status != 0:
        raise SystemExit(status)
    if not PartialState().is_main_process:  # under `accelerate launch`, the main process writes the summaries
        return

    rows = per_image_rows(OUTPUT / "per_image.csv")
    condition_only = condition_only_results(rows[DIFFC])
    (OUTPUT / "cod_condition_only.json").write_text(json.dumps(condition_only, indent=2) + "\n")
    results = [json.loads((OUTPUT / f"{name}.json").read_text()) for name in (DIFFC, DIFFC_MEAN, *BASELINES)]
    plot_rd([condition_only, *results], OUTPUT / "rd.png")  # the evaluation's plot, with the condition alone
    comparison = webp_comparison(rows[DIFFC], rows["webp"])
    summary = {
        "images": f"the 24 Kodak images, {args.size}x{args.size} centre crops",
        "model": f"{DEFAULT_EMBEDDED_MODEL} (embedded)",
        "target_bpp": targets,
        "diffc_encode_s_per_image_median": statistics.median(
            float(image_rows[0]["encoding_time"]) for image_rows in rows[DIFFC].values()
        ),
        f"diffc_decompress_s_median_at_{DECODE_TIMING_BPP}_bpp": statistics.median(
            float(row["decoding_time"])
            for image_rows in rows[DIFFC].values()
            for row in image_rows
            if float(row["target_bpp"]) == DECODE_TIMING_BPP
        ),
        "webp_files_below_0.1_bpp": comparison,
        "diffc_above_webp_below_0.1_bpp": f"{sum(row['diffc_above'] for row in comparison)} of {len(comparison)}",
    }
    (OUTPUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
