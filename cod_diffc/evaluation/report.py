"""What a sweep reports: the RD plot, the BD-rate / BD-PSNR table against an anchor, and side-by-side crops."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cod_diffc.image_files import atomic_write

from .bjontegaard import bd_psnr, bd_rate


def _figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def plot_rd(results: Sequence[dict], path: str | Path) -> None:
    r"""
    Saves a PNG of PSNR and MS-SSIM (in dB, `-10 log10(1 - MS-SSIM)`, as CompressAI plots it) against bpp (log
    scale) for every method, from their CompressAI result dicts.
    """
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure = Figure(figsize=(11, 4.2))
    axes = figure.subplots(1, 2)
    for result in results:
        bpp = result["results"]["bpp"]
        order = np.argsort(bpp)
        ms_ssim_db = -10 * np.log10(np.maximum(1 - np.asarray(result["results"]["ms-ssim-rgb"]), 1e-10))
        for axis, values in zip(axes, (np.asarray(result["results"]["psnr-rgb"]), ms_ssim_db)):
            axis.plot(np.asarray(bpp)[order], values[order], marker="o", label=result["name"])
    for axis, label in zip(axes, ("PSNR (RGB) [dB]", "MS-SSIM (RGB) [dB]")):
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("Bit-rate [bpp]")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    atomic_write(Path(path), _figure_png(figure))


def bd_table(results: Sequence[dict], anchor: str) -> str:
    r"""
    A Markdown table of the BD-rate (%) and BD-PSNR (dB) of every method against the method named `anchor`, from
    their CompressAI result dicts (mean bpp and PSNR per target rate). Pairs the Bjøntegaard fit cannot take (fewer
    than four distinct points, no overlap) read `n/a` with the reason.
    """
    by_name = {result["name"]: result["results"] for result in results}
    if anchor not in by_name:
        raise ValueError(f"anchor {anchor!r} is not among the methods {', '.join(by_name)}")
    rows = [f"| method | BD-rate vs {anchor} | BD-PSNR vs {anchor} |", "|---|---:|---:|"]
    for name, curve in by_name.items():
        curves = (by_name[anchor]["bpp"], by_name[anchor]["psnr-rgb"], curve["bpp"], curve["psnr-rgb"])
        cells = []
        for delta, unit in ((bd_rate, "%"), (bd_psnr, "dB")):
            try:
                cells.append(f"{delta(*curves):+.2f} {unit}")
            except ValueError as error:
                cells.append(f"n/a ({error})")
        rows.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def crop_figure(
    original: np.ndarray,
    reconstructions: Mapping[str, tuple[np.ndarray, str]],
    path: str | Path,
    crop_size: int = 256,
) -> None:
    r"""
    Saves a PNG of the same central crop of the original and of each reconstruction, side by side.

    Args:
        original (`np.ndarray`): `(H, W, 3)` uint8 image.
        reconstructions (`Mapping[str, tuple[np.ndarray, str]]`): Method name -> (`(H, W, 3)` uint8 image, caption).
        path (`str` or `Path`): The PNG to write.
        crop_size (`int`, defaults to `256`): Side of the square crop (the image's short side if smaller).
    """
    from matplotlib.figure import Figure

    height, width = original.shape[:2]
    side = min(crop_size, height, width)
    top, left = (height - side) // 2, (width - side) // 2
    panels = [("original", original, "")]
    panels += [(name, image, caption) for name, (image, caption) in reconstructions.items()]
    figure = Figure(figsize=(2.6 * len(panels), 3.3))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, (name, image, caption) in zip(axes[0], panels):
        axis.imshow(image[top : top + side, left : left + side], interpolation="nearest")
        axis.set_title(f"{name}\n{caption}" if caption else name, fontsize=8)
        axis.axis("off")
    figure.tight_layout()
    atomic_write(Path(path), _figure_png(figure))


def write_report(
    path: str | Path,
    results: Sequence[dict],
    anchor: str,
    notes: Sequence[str],
    *,
    num_images: int,
    plot_name: str | None,
    crops_name: str | None,
    crop_caption: str = "",
) -> None:
    """Writes the A/B report: the sweep's size, the BD table, per-method averages, the plot, the crops, the notes
    (`plot_name` / `crops_name` None: no such picture, e.g. without matplotlib)."""
    lines = [
        "# Rate-distortion evaluation",
        "",
        f"{num_images} image(s); bpp counts every byte of each file; PSNR and MS-SSIM on 8-bit RGB; averages over "
        "images per target rate.",
        "",
        "## BD-rate and BD-PSNR (Bjøntegaard: cubic fits in log10(bpp), mean over the overlap)",
        "",
        bd_table(results, anchor),
        "",
        "## Averages per target rate",
        "",
    ]
    for result in results:
        metrics = result["results"]
        lines += [f"**{result['name']}** — {result['description']}", ""]
        lines += ["| bpp | " + " | ".join(key for key in metrics if key != "bpp") + " |"]
        lines += ["|" + "---:|" * len(metrics)]
        for i, bpp in enumerate(metrics["bpp"]):
            values = [metrics[key][i] for key in metrics if key != "bpp"]
            lines.append(f"| {bpp:.4f} | " + " | ".join(_format(value) for value in values) + " |")
        lines.append("")
    if plot_name is not None:
        lines += ["## Plots", "", f"![rate-distortion]({plot_name})", ""]
    if crops_name is not None:
        lines += [f"Crops {crop_caption}:", "", f"![crops]({crops_name})", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    atomic_write(Path(path), "\n".join(lines).encode())


def _format(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1000 else f"{value:.4g}"
