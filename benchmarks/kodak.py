"""The Kodak images of `../shared/data/kodak/` as the benchmarks use them: centre crops, the same for every method."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch

from cod_diffc.image_files import load_image, save_image


KODAK = Path(os.environ.get("COD_DIFFC_KODAK_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"))
"""The 24 Kodak PNGs: `../shared/data/kodak/` beside the project, or the folder `COD_DIFFC_KODAK_DIR` names."""


def require_kodak() -> None:
    """Exits with a message naming the folder if the Kodak images are not there (call it before any slow set-up)."""
    if len(list(KODAK.glob("kodim*.png"))) != 24:
        raise SystemExit(
            f"error: the 24 Kodak images (kodim01.png ... kodim24.png) are not in {KODAK}; copy them there or set "
            "COD_DIFFC_KODAK_DIR to their folder"
        )


def kodak_centre_crop(name: str, size: int) -> torch.Tensor:
    """The `size` x `size` centre crop of Kodak image `name` (e.g. "kodim23"), `(1, 3, size, size)` in [0, 1]."""
    image = load_image(KODAK / f"{name}.png")
    top, left = (image.shape[-2] - size) // 2, (image.shape[-1] - size) // 2
    return image[..., top : top + size, left : left + size]


def write_kodak_centre_crops(size: int, folder: Path) -> Path:
    """Writes the `size` x `size` centre crops of all 24 Kodak images to `folder` as PNG (lossless)."""
    require_kodak()
    names = sorted(path.stem for path in KODAK.glob("kodim*.png"))
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        save_image(folder / f"{name}.png", kodak_centre_crop(name, size))
    return folder


def first_crops(crops: Path, count: int) -> Path:
    """A folder beside `crops` holding copies of its first `count` crops (by name), for sweeps on a subset."""
    subset = crops.with_name(f"{crops.name}_first{count}")
    subset.mkdir(parents=True, exist_ok=True)
    for path in sorted(crops.glob("*.png"))[:count]:
        shutil.copyfile(path, subset / path.name)
    return subset
