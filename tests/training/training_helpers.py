"""Helpers of the training tests: tiny image folders and tiny configurations."""

from pathlib import Path

import numpy as np
import PIL.Image

from cod_diffc.training.config import TrainConfig, apply_overrides, config_from_dict


REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO_ROOT / "configs" / "train" / "tiny.yaml"


def write_images(folder: Path, count: int, size: tuple[int, int] = (40, 48), seed: int = 0) -> list[Path]:
    """Smooth colour gradients (learnable, unlike white noise) saved as PNG, `size` = (height, width)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    paths = []
    for index in range(count):
        start, slope = rng.uniform(0, 160, 3), rng.uniform(0, 2, 3)
        pixels = start + slope * (rows[..., None] + cols[..., None])  # (H, W, 3)
        path = folder / f"image_{index:02d}.png"
        PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def tiny_config(train_dir: Path, output_dir: Path, *overrides: str) -> TrainConfig:
    """`configs/train/tiny.yaml` on `train_dir`, writing to `output_dir`, with overrides; no validation by default."""
    import yaml

    values = yaml.safe_load(TINY_CONFIG.read_text())
    base = [f"data.train_dir={train_dir}", f"run.output_dir={output_dir}", "validation.every=0"]
    return config_from_dict(apply_overrides(values, [*base, *overrides]))
