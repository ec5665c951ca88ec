"""DiffC on one CoD model at two guidance scales, side by side: what guidance buys in PSNR and costs in time.

    python benchmarks/guidance_ab.py --model runs/embedded_latent_small/pipeline --scales 1.25 1.0 --images 4 \
        -o results/embedded_candidates/guidance_ab.json

`cod-diffc evaluate` codes the first `--images` Kodak 256x256 centre crops (`benchmarks/kodak.py`) at a few targets
with `--guidance-scale` and `--denoise-guidance-scale` set to each scale (the coded steps and the decoder alike),
decoded both ways (`flow`, `mean`); the sweeps live in `runs/guidance_ab/` and resume there. Guidance evaluates the
network twice a step inside its interval, so a scale of 1.0 (no guidance) is the cheaper one. The JSON holds, per
scale and decode, the mean bpp, PSNR and coding times at each target.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kodak import first_crops, write_kodak_centre_crops
from kodak_embedded_rd import mean_at_target, per_image_rows

from cod_diffc.cli import main as cod_diffc_main


ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "runs" / "guidance_ab"
TARGET_BPP = [0.015, 0.06, 0.25]
LABEL = "model"


def mean_by_target(rows: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Mean bpp, PSNR and coding times at each target of one method's per-image rows."""
    keys = ("bpp", "psnr-rgb", "encoding_time", "decoding_time")
    return {f"{target:g}": {key: mean_at_target(rows, key, target) for key in keys} for target in TARGET_BPP}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="CoD pipeline folder or embedded model name")
    parser.add_argument("--scales", type=float, nargs=2, default=[1.25, 1.0], help="the two guidance scales")
    parser.add_argument("--images", type=int, default=4, help="code the first N Kodak crops")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    crops = first_crops(write_kodak_centre_crops(256, ROOT / "runs" / "kodak_centre_256"), args.images)
    model = Path(args.model).resolve()
    results = {}
    for scale in args.scales:
        sweep = SWEEPS / f"{model.parent.name}_{model.name}-{args.images}-g{scale:g}"
        status = cod_diffc_main(
            ["evaluate", str(crops), "-o", str(sweep), "--bpp", *map(str, TARGET_BPP)]
            + ["--backbone", "cod", "--model", args.model, "--label", LABEL, "--decode", "flow", "mean"]
            + ["--guidance-scale", str(scale), "--denoise-guidance-scale", str(scale), "--resume", "--no-progress"]
        )
        if status != 0:
            raise SystemExit(status)
        rows = per_image_rows(sweep / "per_image.csv")
        results[f"{scale:g}"] = {"flow": mean_by_target(rows[LABEL]), "mean": mean_by_target(rows[f"{LABEL}-mean"])}
    first, second = (f"{scale:g}" for scale in args.scales)
    summary = {
        "model": args.model,
        "images": f"the first {args.images} of the 24 Kodak images, 256x256 centre crops",
        "results_by_guidance_scale": results,
        f"psnr_gain_of_{second}_over_{first}": {
            decode: {
                target: results[second][decode][target]["psnr-rgb"] - results[first][decode][target]["psnr-rgb"]
                for target in results[first][decode]
            }
            for decode in ("flow", "mean")
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary[f"psnr_gain_of_{second}_over_{first}"], indent=2))


if __name__ == "__main__":
    main()
