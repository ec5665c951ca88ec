"""The shipped embedded CoD against candidate replacements, side by side in one run (issue #16).

    python benchmarks/embedded_candidates_rd.py --candidate pixel-v2=runs/embedded_pixel_v2/pipeline \
        --candidate latent-small=runs/embedded_latent_small/pipeline [--resume]
    OMP_NUM_THREADS=1 ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no benchmarks/embedded_candidates_rd.py --candidate ... --resume

`cod-diffc evaluate` codes the 24 Kodak 256x256 centre crops (`benchmarks/kodak.py`) with DiffC on the shipped model
(label `shipped`: the default embedded model, or `--shipped-model`, e.g. a checkout of an earlier one) and on every
candidate pipeline folder (`--candidate LABEL=PATH`), every target from the condition-only file to 0.5 bpp, decoded
both ways (`flow`, `mean`), beside JPEG, WebP and AVIF, with the BD table against the shipped model and the crops of
the first image.

With `--shipped-rows PER_IMAGE_CSV` the shipped model is not coded again (the pixel model took about 3.5 minutes a
crop on the project's 2-core CPU): its per-image rows come from an earlier run of the same model and codec on the
same crops (`results/kodak_embedded_cod_pixel_small/per_image.csv` holds those of `cod-pixel-small`, the default
until cod_diffc 0.2: pass `--shipped-model` its folder then), the summary names the file, and the report's BD table
is anchored on the first candidate instead. Then, into `results/embedded_candidates/` (or `-o`):

- `summary.json`: per model and decode, the mean PSNR at every target and its gain over the shipped model (the
  target: at least 1 dB at every rate from 0.015 to 0.5 bpp); for latent models the autoencoder's own
  reconstruction PSNR on the crops (the ceiling of that route); one 512x512 crop's compress + decompress time at
  0.05 bpp (`flow`) for every model, one run each, in one process.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from accelerate import PartialState
from autoencoder_ceiling import round_trip_psnr
from kodak import first_crops, kodak_centre_crop, write_kodak_centre_crops
from kodak_embedded_rd import mean_at_target, per_image_rows
from round_trip_timing import time_round_trip

from cod_diffc.cli import main as cod_diffc_main
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "results" / "embedded_candidates"
TARGET_BPP = [0.005, 0.01, 0.015, 0.03, 0.06, 0.12, 0.25, 0.5]  # below the smallest file: that file
BASELINES = ["jpeg", "webp", "avif"]
SHIPPED = "shipped"
GAIN_TARGET_DB = 1.0
GAIN_RATES = (0.015, 0.5)  # the range of targets the gain must hold over
TIMING_BPP = 0.05
TIMING_IMAGE = "kodim23"


def candidate(text: str) -> tuple[str, Path]:
    """`LABEL=PATH` of `--candidate`."""
    label, separator, path = text.partition("=")
    if not (separator and label and path):
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    if not Path(path).is_dir():
        raise argparse.ArgumentTypeError(f"{path} is not a pipeline folder")
    return label, Path(path)


def earlier_shipped_rows(per_image_csv: Path, images: set[str]) -> dict[str, dict[str, list[dict]]]:
    """The shipped model's rows (`cod_diffc-cod`, `cod_diffc-cod-mean` there) of an earlier `kodak_embedded_rd.py`
    run, relabelled as this run labels them, for `images` only; `SystemExit` if one of them is missing."""
    rows = per_image_rows(per_image_csv)
    relabelled = {}
    for method, label in (("cod_diffc-cod", SHIPPED), ("cod_diffc-cod-mean", f"{SHIPPED}-mean")):
        missing = images - set(rows.get(method, {}))
        if missing:
            raise SystemExit(f"{per_image_csv} has no {method} rows for {sorted(missing)}")
        relabelled[label] = {image: rows[method][image] for image in images}
    return relabelled


def mean_psnr_by_target(rows: dict[str, list[dict]]) -> dict[float, float]:
    """The mean over the images of the PSNR at each target rate."""
    return {target: mean_at_target(rows, "psnr-rgb", target) for target in TARGET_BPP}


def autoencoder_psnr(model: Path, crops: Path) -> float | None:
    """Mean PSNR of the pipeline's VAE round trip (posterior mean) on the crops; `None` for a pixel model."""
    from cod_diffc import CodPipeline

    vae = CodPipeline.from_pretrained(model).vae
    return None if vae is None else float(np.mean(list(round_trip_psnr(vae, crops).values())))


def time_one_image(models: dict[str, Path | None], size: int) -> dict[str, dict[str, float]]:
    """Compress + decompress seconds of one `size` x `size` crop at `TIMING_BPP` for each model (one run each)."""
    from cod_diffc.backbones import load_backbone
    from cod_diffc.codecs import load_codec

    image = kodak_centre_crop(TIMING_IMAGE, size)
    timings = {}
    for label, model in models.items():
        adapter = load_backbone("cod", None if model is None else str(model))
        timings[label] = time_round_trip(load_codec("diffc"), adapter, image, TIMING_BPP)
        print(label, timings[label])
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--candidate", type=candidate, action="append", required=True, help="LABEL=PATH of a candidate pipeline"
    )
    parser.add_argument("--size", type=int, default=256, help="side of the centre crops (multiple of 32)")
    parser.add_argument("--images", type=int, default=24, help="code the first N crops only (a quick look)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--skip-timing", action="store_true", help="leave out the 512x512 timing")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT, help=f"results folder (default {OUTPUT})")
    parser.add_argument(
        "--shipped-model", type=Path, help="pipeline folder of the shipped model (default: the embedded default)"
    )
    parser.add_argument(
        "--shipped-rows",
        type=Path,
        help="per_image.csv of an earlier kodak_embedded_rd.py run whose shipped-model rows to use instead of coding",
    )
    args = parser.parse_args()

    models: dict[str, Path | None] = {SHIPPED: args.shipped_model, **dict(args.candidate)}
    coded = {label: model for label, model in models.items() if not (label == SHIPPED and args.shipped_rows)}
    # The first PartialState fixes the process group: `cpu=True` as `cod-diffc evaluate` makes it for its default
    # `--device cpu`, or under `accelerate launch` on the CPU every process would code every image.
    state = PartialState(cpu=True)
    all_crops = write_kodak_centre_crops(args.size, ROOT / "runs" / f"kodak_centre_{args.size}")
    with state.main_process_first():
        crops = first_crops(all_crops, args.images)
    backbones = []
    for label, model in coded.items():
        backbones += ["--backbone", "cod", *([] if model is None else ["--model", str(model)]), "--label", label]
    status = cod_diffc_main(
        ["evaluate", str(crops), "-o", str(args.output), "--bpp", *map(str, TARGET_BPP), *backbones]
        + ["--decode", "flow", "mean", "--baseline", *BASELINES, "--anchor", next(iter(coded))]
        + ["--crop-bpp", "0.03", *(["--resume"] if args.resume else [])]
    )
    if status != 0:
        raise SystemExit(status)
    if not state.is_main_process:  # under `accelerate launch`, the main process writes the summary
        return

    rows = per_image_rows(args.output / "per_image.csv")
    if args.shipped_rows:
        rows.update(earlier_shipped_rows(args.shipped_rows, {path.stem for path in crops.glob("*.png")}))
    psnr = {
        f"{label}{decode}": mean_psnr_by_target(rows[f"{label}{decode}"])
        for label in models
        for decode in ("", "-mean")
    }
    low, high = GAIN_RATES
    models_summary = {}
    for label, model in models.items():
        entry = {"model": f"{DEFAULT_EMBEDDED_MODEL} (embedded)" if model is None else str(model), "label": label}
        for decode in ("", "-mean"):
            method = f"{label}{decode}"
            gains = {target: psnr[method][target] - psnr[f"{SHIPPED}{decode}"][target] for target in TARGET_BPP}
            entry[f"psnr_by_target{decode or '-flow'}"] = psnr[method]
            entry[f"gain_db_over_shipped{decode or '-flow'}"] = gains
            entry[f"gain_at_least_{GAIN_TARGET_DB}_db_from_{low}_to_{high}_bpp{decode or '-flow'}"] = all(
                gain >= GAIN_TARGET_DB for target, gain in gains.items() if low <= target <= high
            )
        entry["autoencoder_psnr_on_crops"] = autoencoder_psnr(model, crops) if model is not None else None
        models_summary[label] = entry
    summary = {
        "images": f"the first {args.images} of the 24 Kodak images, {args.size}x{args.size} centre crops",
        "shipped_rows": str(args.shipped_rows) if args.shipped_rows else "coded in this run",
        "target_bpp": TARGET_BPP,
        "models": models_summary,
    }
    if not args.skip_timing:
        summary[f"one_512x512_image_at_{TIMING_BPP}_bpp"] = time_one_image(models, 512)
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
