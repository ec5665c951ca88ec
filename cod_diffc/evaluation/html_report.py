r"""The comparison page of an evaluation: `index.html`, one self-contained file beside the run's pictures.

What a person wants to know at 0.01-0.1 bpp is what the pictures look like next to the alternatives at the same number
of bytes. The page shows, from what a run already wrote (nothing is coded again):

- the RD curves (PSNR and MS-SSIM in dB against bpp on a log axis) of every method, and the BD-rate table;
- a viewer: an image, a target rate and two methods (or the original), the two reconstructions nearest that rate in a
  split view with a draggable divider, each labelled with method, bytes, bpp, PSNR and MS-SSIM, with pixel zoom, pan
  and keyboard shortcuts, and links to the stream and the PNG;
- two grids: every method at one rate for one image, every rate of one method.

The page embeds its data as JSON and its CSS and script inline (no network, no server: it opens from the file
system); pictures stay the run's PNG files, linked by relative path, so they are stored once and never re-encoded.

    >>> from cod_diffc.evaluation.html_report import write_run_page
    >>> write_run_page("runs/kodak")  # doctest: +SKIP  (reads the run's JSON, CSV and pictures)
"""

from __future__ import annotations

import csv
import html
import importlib.resources
import json
import math
import os
import platform
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from cod_diffc.image_files import atomic_write, load_image, save_image

from .bjontegaard import bd_psnr, bd_rate
from .sweep import rate_label, reconstruction_path


PAGE_NAME = "index.html"
RUN_INFO_NAME = "run.json"
"""The run's command line, version, commit, date and hardware, which `evaluate` writes beside its results."""
ORIGINALS_DIR = "originals"
"""Folder of the run's original images (lossless PNG, as the methods saw them)."""


def read_run(run_dir: str | Path, anchor: str | None = None) -> dict:
    r"""The page's data from a finished `cod-diffc evaluate` folder (CompressAI JSON per method, `per_image.csv`,
    `run.json`, `originals/`, `reconstructions/`, `streams/`).

    Args:
        run_dir (`str` or `Path`): The run's output folder.
        anchor (`str`, *optional*): The method the BD table compares against (default: the run's anchor, else the
            first method).

    Raises:
        `FileNotFoundError`: If the folder holds no `per_image.csv` (not a finished evaluation).
    """
    run_dir = Path(run_dir)
    table = run_dir / "per_image.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{run_dir} is not a finished evaluation: it has no per_image.csv")
    run_info = json.loads((run_dir / RUN_INFO_NAME).read_text()) if (run_dir / RUN_INFO_NAME).is_file() else {}
    curves = _compressai_results(run_dir)
    points: dict[str, dict[str, list[dict]]] = {}
    streams: dict[str, dict[str, Path]] = {}  # method -> file stem -> stream file, each folder listed once
    with table.open(newline="") as file:
        for row in csv.DictReader(file):
            method, image, target = row["method"], row["image"], float(row["target_bpp"])
            picture = reconstruction_path(run_dir, method, image, target)
            if method not in streams:
                folder = run_dir / "streams" / method
                streams[method] = {path.stem: path for path in sorted(folder.iterdir())} if folder.is_dir() else {}
            stream = streams[method].get(f"{image}_{rate_label(target)}")
            points.setdefault(method, {}).setdefault(image, []).append(
                {
                    "target": target,
                    "bytes": int(row["bytes"]),
                    "bpp": float(row["bpp"]),
                    "psnr": _finite(float(row["psnr-rgb"])),
                    "msssim": _finite(float(row["ms-ssim-rgb"])),
                    "png": _relative(picture, run_dir) if picture.is_file() else None,
                    "stream": _relative(stream, run_dir) if stream is not None else None,
                }
            )
    images = sorted({image for by_image in points.values() for image in by_image})
    originals = {image: f"{ORIGINALS_DIR}/{image}.png" for image in images}
    anchor = anchor or run_info.get("anchor") or (curves[0]["name"] if curves else None)
    return {
        "title": run_info.get("title", "Rate-distortion evaluation"),
        "run": {key: value for key, value in run_info.items() if key not in ("title", "anchor")},
        "anchor": anchor,
        "curves": curves,
        "bd": _bd_rows(curves, anchor),
        "images": images,
        "originals": {image: path for image, path in originals.items() if (run_dir / path).is_file()},
        "targets": sorted(
            {point["target"] for by_image in points.values() for rows in by_image.values() for point in rows}
        ),
        "points": points,
    }


def single_image_data(title: str, run: dict, image: str, original: str, method: str, points: list[dict]) -> dict:
    r"""The page's data for one image coded by one method at several rates (what `cod-diffc demo` makes).

    Args:
        title (`str`): The page's title.
        run (`dict`): Command, version, commit, date, hardware (any of them).
        image (`str`): The image's name.
        original (`str`): Path of the original PNG, relative to the page.
        method (`str`): The method's name.
        points (`list[dict]`): One per rate: `bytes`, `bpp`, `psnr`, `msssim` (MS-SSIM, not in dB), and the `png`
            and `stream` paths relative to the page.
    """
    points = sorted(points, key=lambda point: point["bpp"])
    curve = {
        "name": method,
        "description": "",
        "bpp": [point["bpp"] for point in points],
        "psnr": [_finite(point["psnr"]) for point in points],
        "msssim": [_finite(-10 * math.log10(max(1 - point["msssim"], 1e-10))) for point in points],
    }
    rows = [{**point, "target": point["bpp"], "psnr": _finite(point["psnr"])} for point in points]
    return {
        "title": title,
        "run": run,
        "anchor": method,
        "curves": [curve],
        "bd": [],
        "images": [image],
        "originals": {image: original},
        "targets": [point["bpp"] for point in points],
        "points": {method: {image: rows}},
    }


def write_page(path: str | Path, data: dict) -> Path:
    r"""Writes the self-contained comparison page for `data` (the form [`read_run`] returns) to `path`.

    Returns:
        `Path`: `path`.
    """
    assets = importlib.resources.files("cod_diffc.evaluation") / "report_page"
    template = (assets / "page.html").read_text(encoding="utf-8")
    # JSON inside <script>: every "<" is written as the escape \u003c (the same string to JSON), so no name can end
    # the element or open an HTML comment there.
    payload = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")
    fields = {
        "title": html.escape(data["title"]),
        "style": (assets / "page.css").read_text(encoding="utf-8"),
        "script": (assets / "page.js").read_text(encoding="utf-8"),
        "data": payload,
    }
    page = re.sub(r"\{\{(\w+)\}\}", lambda match: fields[match.group(1)], template)  # one pass: no field is re-read
    atomic_write(Path(path), page.encode("utf-8"))
    return Path(path)


def write_run_page(run_dir: str | Path, anchor: str | None = None) -> Path:
    """[`write_page`] of [`read_run`]: `run_dir/index.html` for a finished evaluation."""
    return write_page(Path(run_dir) / PAGE_NAME, read_run(run_dir, anchor))


def write_run_info(run_dir: str | Path, *, command: Sequence[str], anchor: str, device: str) -> None:
    """Writes `run.json`: the command line, package version, source commit (when run from a git checkout), date,
    hardware and the BD anchor, which the page shows."""
    import cod_diffc

    source = Path(cod_diffc.__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    info = {
        "command": " ".join(["cod-diffc", *command]),
        "version": cod_diffc.__version__,
        "commit": commit.stdout.strip() if commit.returncode == 0 else None,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "hardware": f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} threads), {device}".strip(),
        "anchor": anchor,
    }
    atomic_write(Path(run_dir) / RUN_INFO_NAME, (json.dumps(info, indent=1) + "\n").encode())


def write_originals(run_dir: str | Path, images: Sequence[Path]) -> None:
    """Copies the images as the methods saw them (8-bit RGB, lossless PNG) to `run_dir/originals/`."""
    from .metrics import to_uint8

    for path in images:
        save_image(Path(run_dir) / ORIGINALS_DIR / f"{path.stem}.png", to_uint8(load_image(path)))


def _compressai_results(run_dir: Path) -> list[dict]:
    """The run's per-method CompressAI JSON files, as `{name, description, bpp, psnr, msssim}` (MS-SSIM in dB)."""
    curves = []
    for path in sorted(run_dir.glob("*.json")):
        result = json.loads(path.read_text())
        if not (isinstance(result, dict) and "results" in result and "name" in result):
            continue
        metrics = result["results"]
        curves.append(
            {
                "name": result["name"],
                "description": result.get("description", ""),
                "bpp": metrics["bpp"],
                "psnr": [_finite(value) for value in metrics["psnr-rgb"]],
                "msssim": [_finite(-10 * math.log10(max(1 - value, 1e-10))) for value in metrics["ms-ssim-rgb"]],
            }
        )
    return curves


def _bd_rows(curves: Sequence[dict], anchor: str | None) -> list[dict]:
    """BD-rate (%) and BD-PSNR (dB) of every curve against `anchor`; `None` where the curves do not overlap."""
    reference = next((curve for curve in curves if curve["name"] == anchor), None)
    rows = []
    for curve in curves:
        row = {"method": curve["name"], "bd_rate": None, "bd_psnr": None}
        if reference is not None:
            arguments = (reference["bpp"], reference["psnr"], curve["bpp"], curve["psnr"])
            for key, function in (("bd_rate", bd_rate), ("bd_psnr", bd_psnr)):
                try:
                    row[key] = _finite(function(*arguments))
                except ValueError:  # fewer than four points, or no overlap
                    pass
        rows.append(row)
    return rows


def _finite(value: float) -> float | None:
    """`value`, or None for an infinite or NaN one (a lossless PSNR), which JSON cannot carry."""
    return value if math.isfinite(value) else None


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()
