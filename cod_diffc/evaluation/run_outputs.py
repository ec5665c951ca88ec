"""Everything `cod-diffc evaluate` writes once the sweep is done: one CompressAI JSON per method (with FID / KID when
asked), the per-image CSV, the RD plot and the crops figure, the Markdown report, the originals, the run record and
the comparison page."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cod_diffc.image_files import atomic_write, load_image
from cod_diffc.optional_dependencies import is_available

from .distribution_metrics import add_distribution_scores
from .html_report import write_originals, write_run_info, write_run_page
from .metrics import ms_ssim_scales, to_uint8
from .report import crop_figure, plot_rd, write_report
from .sweep import compressai_results, load_records, rate_label, reconstruction_path, write_per_image_csv


if TYPE_CHECKING:
    from .distribution_metrics import PatchDistributionMetrics
    from .sweep import RateMethod


def write_run_outputs(
    output: Path,
    methods: Sequence[RateMethod],
    images: list[Path],
    target_bpps: list[float],
    notes: list[str],
    *,
    anchor: str,
    crop: tuple[str, float],
    distribution_metrics: PatchDistributionMetrics | None,
    command: Sequence[str],
    device: str,
) -> None:
    """Writes the run's results from its records (`output/records/`); `notes` gains what could not be made.

    Args:
        anchor (`str`): The method the BD table compares against.
        crop (`tuple[str, float]`): The image (stem) and target rate of the crops figure.
        command (`Sequence[str]`): The command line's arguments, for the run record.
    """
    records = {method.name: load_records(output, method.name, images) for method in methods}
    results = [compressai_results(method.name, method.description, records[method.name]) for method in methods]
    if distribution_metrics is not None:
        try:
            add_distribution_scores(distribution_metrics, results, output, images, target_bpps)
        except ValueError as error:  # e.g. images smaller than a patch: the rest of the run stands
            notes.append(f"fid/kid: skipped, {error}")
    for result in results:
        atomic_write(output / f"{result['name']}.json", (json.dumps(result, indent=2) + "\n").encode())
    write_per_image_csv(output / "per_image.csv", records)
    smallest = min(min(record["height"], record["width"]) for record in next(iter(records.values())))
    if ms_ssim_scales(smallest, smallest) < 5:
        notes.append(f"MS-SSIM: images of 160 px or less use fewer than 5 scales (smallest side here {smallest} px)")

    crop_image, crop_bpp = crop
    crops_name = plot_name = None
    if is_available("matplotlib"):
        crops_name = f"crops_{crop_image}_{rate_label(crop_bpp)}.png"
        write_crops(output, images, crop, target_bpps.index(crop_bpp), records, output / crops_name)
        plot_name = "rd.png"
        plot_rd(results, output / plot_name)
    else:
        notes.append('no RD plot or crops: matplotlib is not installed (pip install "cod-diffc[plots]")')
    write_report(
        output / "report.md",
        results,
        anchor,
        notes,
        num_images=len(images),
        plot_name=plot_name,
        crops_name=crops_name,
        crop_caption=f"of {crop_image} at target {crop_bpp:g} bpp",
    )
    write_originals(output, images)
    write_run_info(output, command=command, anchor=anchor, device=device)
    write_run_page(output)


def write_crops(
    output: Path,
    images: list[Path],
    crop: tuple[str, float],
    index: int,
    records: dict[str, list[dict]],
    path: Path,
) -> None:
    """The crops figure of image `crop[0]` at target `crop[1]` (`index` in the targets), every method of `records`
    side by side, from the reconstructions the run kept."""
    crop_image, crop_bpp = crop
    original = to_uint8(load_image(next(image for image in images if image.stem == crop_image)))
    reconstructions = {}
    for name, method_records in records.items():
        point = next(record for record in method_records if record["image"] == crop_image)["points"][index]
        reconstructions[name] = (
            to_uint8(load_image(reconstruction_path(output, name, crop_image, crop_bpp))),
            f"{point['bpp']:.4f} bpp, {point['psnr-rgb']:.2f} dB",
        )
    crop_figure(original, reconstructions, path)
