"""DiffC, Turbo-DDCM and DDCM on the embedded CoD at equal bytes: Kodak 256x256 RD, BD-rates, and times per image.

    python benchmarks/kodak_codecs_rd.py [--resume] [--ddcm-images N]
    OMP_NUM_THREADS=1 ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \
        --mixed_precision no --dynamo_backend no benchmarks/kodak_codecs_rd.py --resume   # both cores, by image

`cod-diffc evaluate` codes the 24 Kodak centre crops (`benchmarks/kodak.py`) with Turbo-DDCM, and the first
`--ddcm-images` of them (all by default) with DDCM, on the embedded model, every target from the lowest each reaches
to 0.5 bpp, each stream decoded both ways (`flow`, `mean`). DiffC's points are those of
`benchmarks/kodak_embedded_rd.py` (`results/kodak_embedded/`, same crops, model and decodes), restated at the bytes
of the current format: its stored streams are rewritten with `write_stream(read_stream(...))`, which changes their
header and nothing they decode to (`tests/golden/` checks that). Then:

- `bd.json`: per image, the BD-rate (%) of Turbo-DDCM and DDCM against DiffC in PSNR and MS-SSIM over the rates
  both cover, with their mean over the images (negative: fewer bytes for the same quality);
- `rd.png`: the mean curves of the three codecs, both decodes;
- `summary.json`: compress and decompress seconds per image (medians) of each codec at every target, and one
  512x512 image's compress + decompress time at 0.05 bpp for each codec (one run each, `flow` decode).

Writes to `results/kodak_codecs/`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from accelerate import PartialState
from kodak import first_crops, kodak_centre_crop, write_kodak_centre_crops
from kodak_embedded_rd import mean_at_target, per_image_rows
from round_trip_timing import time_round_trip

from cod_diffc.cli import main as cod_diffc_main
from cod_diffc.evaluation.bjontegaard import bd_rate
from cod_diffc.evaluation.report import plot_rd
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "results" / "kodak_codecs"
DIFFC_RESULTS = ROOT / "results" / "kodak_embedded"
TARGET_BPP = [0.005, 0.01, 0.015, 0.03, 0.06, 0.12, 0.25, 0.5]  # below the smallest file: that file
CODECS = {"diffc": "cod_diffc-cod", "turbo-ddcm": "turbo-ddcm-cod", "ddcm": "ddcm-cod"}
TIMING_BPP = 0.05
TIMING_IMAGE = "kodim23"


def diffc_rows_at_current_format(size: int) -> dict[str, dict[str, list[dict]]]:
    """DiffC's rows of `results/kodak_embedded/`, with `bytes` and `bpp` of its streams rewritten in the current
    format (same decode, a few more header bytes)."""
    from cod_diffc.diffc import read_stream, write_stream

    rows = per_image_rows(DIFFC_RESULTS / "per_image.csv")
    restated = {}
    for method in (CODECS["diffc"], CODECS["diffc"] + "-mean"):
        restated[method] = {}
        for image, image_rows in rows[method].items():
            restated[method][image] = []
            for row in image_rows:
                stream = DIFFC_RESULTS / "streams" / method / f"{image}_bpp{float(row['target_bpp']):g}.cdc"
                current = write_stream(read_stream(stream.read_bytes()))
                restated[method][image].append({**row, "bytes": len(current), "bpp": 8 * len(current) / size**2})
    return restated


def curve(rows: list[dict], metric: str) -> tuple[list[float], list[float]]:
    """Distinct-rate points of one image (a target below the smallest file repeats that file)."""
    points = sorted({(float(row["bpp"]), float(row[metric])) for row in rows})
    return [bpp for bpp, _ in points], [quality for _, quality in points]


def bd_rates(test: dict[str, list[dict]], anchor: dict[str, list[dict]], metric: str) -> dict[str, float]:
    """Per image (those both cover), the BD-rate (%) of `test` against `anchor` on `metric`, where the curves'
    rates overlap and each has at least 4 points there; images without such an overlap (in rate or in quality) are
    left out."""
    result = {}
    for image in sorted(set(test) & set(anchor)):
        (test_bpp, test_quality), (anchor_bpp, anchor_quality) = (
            curve(test[image], metric),
            curve(anchor[image], metric),
        )
        low, high = max(test_bpp[0], anchor_bpp[0]), min(test_bpp[-1], anchor_bpp[-1])
        inside = [
            [(bpp, quality) for bpp, quality in zip(bpps, qualities) if low <= bpp <= high]
            for bpps, qualities in ((test_bpp, test_quality), (anchor_bpp, anchor_quality))
        ]
        if min(len(points) for points in inside) < 4:
            continue
        (test_points, anchor_points) = inside
        try:
            result[image] = bd_rate(
                [bpp for bpp, _ in anchor_points],
                [quality for _, quality in anchor_points],
                [bpp for bpp, _ in test_points],
                [quality for _, quality in test_points],
            )
        except ValueError:  # the quality ranges do not overlap
            continue
    return result


def mean_results(name: str, rows: dict[str, list[dict]], targets: list[float], description: str) -> dict:
    """CompressAI-style mean curve over the images, one point per target."""
    keys = ("bpp", "psnr-rgb", "ms-ssim-rgb")
    return {
        "name": name,
        "description": description,
        "results": {key: [mean_at_target(rows, key, target) for target in targets] for key in keys},
    }


def time_one_image(size: int) -> dict[str, dict[str, float]]:
    """Compress + decompress seconds of one `size` x `size` crop at `TIMING_BPP` for each codec (one run each)."""
    from cod_diffc.backbones import load_backbone
    from cod_diffc.codecs import load_codec

    adapter = load_backbone("cod")
    image = kodak_centre_crop(TIMING_IMAGE, size)
    timings = {}
    for codec_name in CODECS:
        timings[codec_name] = time_round_trip(load_codec(codec_name), adapter, image, TIMING_BPP)
        print(codec_name, timings[codec_name])
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="side of the centre crops (multiple of 32)")
    parser.add_argument("--ddcm-images", type=int, default=24, help="how many crops DDCM codes (the first ones)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument(
        "--skip-timing", action="store_true", help="keep the 512x512 timing of the last run instead of timing again"
    )
    args = parser.parse_args()
    diffc_model = json.loads((DIFFC_RESULTS / "summary.json").read_text()).get("model")
    if diffc_model != f"{DEFAULT_EMBEDDED_MODEL} (embedded)":
        raise SystemExit(
            f"error: {DIFFC_RESULTS} holds DiffC's rows of {diffc_model}, not of the embedded "
            f"{DEFAULT_EMBEDDED_MODEL}; run benchmarks/kodak_embedded_rd.py first"
        )

    # The first PartialState fixes the process group: `cpu=True` as `cod-diffc evaluate` makes it for its default
    # `--device cpu`, or under `accelerate launch` on the CPU every process would code every image.
    state = PartialState(cpu=True)
    crops = write_kodak_centre_crops(args.size, ROOT / "runs" / f"kodak_centre_{args.size}")
    with state.main_process_first():
        ddcm_crops = first_crops(crops, args.ddcm_images)
    common = ["--bpp", *map(str, TARGET_BPP), "--backbone", "cod", "--decode", "flow", "mean"]
    common += ["--crop-image", "kodim01", "--crop-bpp", "0.06", *(["--resume"] if args.resume else [])]
    for codec_name, dataset in (("turbo-ddcm", crops), ("ddcm", ddcm_crops)):
        status = cod_diffc_main(
            ["evaluate", str(dataset), "-o", str(OUTPUT / codec_name), "--codec", codec_name, *common]
        )
        if status != 0:
            raise SystemExit(status)
    if not state.is_main_process:  # under `accelerate launch`, the main process writes the summaries
        return

    rows = diffc_rows_at_current_format(args.size)
    for codec_name in ("turbo-ddcm", "ddcm"):
        rows |= per_image_rows(OUTPUT / codec_name / "per_image.csv")
    bd = {}
    for codec_name in ("turbo-ddcm", "ddcm"):
        for decode in ("", "-mean"):
            test, anchor = CODECS[codec_name] + decode, CODECS["diffc"] + decode
            for metric in ("psnr-rgb", "ms-ssim-rgb"):
                per_image = bd_rates(rows[test], rows[anchor], metric)
                bd[f"{test} vs {anchor}, {metric}"] = {
                    "mean_bd_rate_percent": statistics.mean(per_image.values()) if per_image else None,
                    "images": len(per_image),
                    "per_image": per_image,
                }
    (OUTPUT / "bd.json").write_text(json.dumps(bd, indent=2) + "\n")

    curves = []
    for codec_name, method in CODECS.items():
        for decode in ("", "-mean"):
            images = rows[method + decode]
            name = method + decode + ("" if len(images) == len(rows[CODECS["diffc"]]) else f" ({len(images)} crops)")
            description = f"{codec_name} on {DEFAULT_EMBEDDED_MODEL}, {len(images)} crops"
            curves.append(mean_results(name, images, TARGET_BPP, description))
    plot_rd(curves, OUTPUT / "rd.png")
    (OUTPUT / "mean_curves.json").write_text(json.dumps(curves, indent=2) + "\n")

    times = {}
    for codec_name, method in CODECS.items():
        images = rows[method]
        times[codec_name] = {
            f"{target}": {
                "compress_s_median": statistics.median(
                    float(row["encoding_time"])
                    for image_rows in images.values()
                    for row in image_rows
                    if float(row["target_bpp"]) == target
                ),
                "decompress_s_median": statistics.median(
                    float(row["decoding_time"])
                    for image_rows in images.values()
                    for row in image_rows
                    if float(row["target_bpp"]) == target
                ),
            }
            for target in TARGET_BPP
        }
    summary = {
        "images": f"Kodak {args.size}x{args.size} centre crops: DiffC and Turbo-DDCM all 24, DDCM the first "
        f"{args.ddcm_images}",
        "model": f"{DEFAULT_EMBEDDED_MODEL} (embedded)",
        "note": "DiffC's times are those of results/kodak_embedded (its encode serves every target at once); "
        "Turbo-DDCM and DDCM encode once per target. 2 processes shared the 2 cores.",
        "bd_rate_mean_percent": {key: value["mean_bd_rate_percent"] for key, value in bd.items()},
        "seconds_per_image": times,
    }
    timing_key = f"one_512x512_image_at_{TIMING_BPP}_bpp"
    previous = json.loads((OUTPUT / "summary.json").read_text()) if (OUTPUT / "summary.json").is_file() else {}
    if not args.skip_timing:
        summary[timing_key] = time_one_image(512)
    elif timing_key in previous:
        summary[timing_key] = previous[timing_key]
    (OUTPUT / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
