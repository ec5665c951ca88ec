"""Pictures of a training run: the loss curves and grids of validation reconstructions (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torchvision.utils import make_grid


def plot_training_curves(
    train_records: Sequence[dict[str, Any]], validation_records: Sequence[dict[str, Any]], path: str | Path
) -> None:
    """Loss terms against the step (log scale), and the validation PSNR when there is any, as one PNG."""
    from matplotlib.figure import Figure  # not pyplot: no global backend or figure state

    has_validation = len(validation_records) > 0
    figure = Figure(figsize=(12 if has_validation else 7, 4.5))
    axes = figure.subplots(1, 2 if has_validation else 1)
    loss_axis = axes[0] if has_validation else axes
    steps = np.array([record["step"] for record in train_records])
    names = [name for name in train_records[0] if name.startswith("loss")] if train_records else []
    for name in names:
        values = np.array([record[name] for record in train_records], dtype=np.float64)
        loss_axis.plot(steps, values, label=name.removeprefix("loss/") or name, linewidth=1.0)
    loss_axis.set_xlabel("step")
    loss_axis.set_yscale("log")
    loss_axis.set_title("training losses")
    loss_axis.grid(True, which="both", alpha=0.3)
    if names:
        loss_axis.legend(fontsize=8)

    if has_validation:
        validation_steps = [record["step"] for record in validation_records]
        for name in validation_records[0]:
            if name.startswith("psnr"):
                axes[1].plot(validation_steps, [r[name] for r in validation_records], marker="o", label=name)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("PSNR (dB)")
        axes[1].set_title("validation (EMA)")
        axes[1].grid(True, alpha=0.3)
        axes[1].legend(fontsize=8)

    figure.tight_layout()
    figure.savefig(path, dpi=100)


def save_image_grid(rows: Sequence[torch.Tensor], path: str | Path) -> None:
    """Saves image rows (each `(N, 3, H, W)` uint8, the same N) as one PNG grid, one row per tensor."""
    images = torch.cat([row.cpu() for row in rows])
    grid = make_grid(images, nrow=rows[0].shape[0], padding=2, pad_value=255)  # (3, H', W') uint8
    PIL.Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
