"""Distortion metrics on 8-bit images, the way codec papers report them."""

from __future__ import annotations

import numpy as np
import torch


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A `(1, 3, H, W)` image in [0, 1] → `(H, W, 3)` uint8, rounding half up."""
    return (image[0].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def psnr(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB of two uint8 images of the same shape (RGB, peak 255); `inf` when they are equal."""
    if reference.shape != reconstruction.shape:
        raise ValueError(f"image shapes differ: {reference.shape} vs {reconstruction.shape}")
    mse = np.mean((reference.astype(np.float64) - reconstruction.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))
