"""Distortion metrics on 8-bit images, the way codec papers report them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

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


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Exponents of the five MS-SSIM scales, finest first (Wang, Simoncelli & Bovik 2003)."""

_SSIM_WINDOW_SIZE = 11
_SSIM_WINDOW_SIGMA = 1.5


def ms_ssim_scales(height: int, width: int) -> int:
    """
    How many MS-SSIM scales an image of this size supports: 5, or fewer when the coarsest scale (each halves the
    sides, rounding up) would be smaller than the 11-pixel window: short sides up to 160 pixels, which
    `pytorch_msssim.ms_ssim` refuses. Raises `ValueError` below 11 pixels.
    """
    short_side = min(height, width)
    if short_side < _SSIM_WINDOW_SIZE:
        raise ValueError(f"MS-SSIM needs images of at least {_SSIM_WINDOW_SIZE} pixels a side, got {height}x{width}")
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and -(-short_side // 2**scales) >= _SSIM_WINDOW_SIZE:
        scales += 1
    return scales


def ms_ssim(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    r"""
    Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) of two `(H, W, 3)` uint8 images, averaged over the RGB channels,
    as `pytorch_msssim` (CompressAI's metric) computes it, in float64: 11x11 Gaussian window (sigma 1.5),
    `K = (0.01, 0.03)`, data range 255, the standard weights [`MS_SSIM_WEIGHTS`].

    Images whose short side exceeds 160 pixels go to `pytorch_msssim.ms_ssim` itself. Smaller ones, which it
    refuses, use the first [`ms_ssim_scales`] scales with their weights renormalised to sum to one, each scale
    computed by the same `pytorch_msssim` SSIM kernel and 2x2 pooling.
    """
    import pytorch_msssim
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    if reference.shape != reconstruction.shape:
        raise ValueError(f"image shapes differ: {reference.shape} vs {reconstruction.shape}")
    scales = ms_ssim_scales(*reference.shape[:2])
    x, y = (torch.tensor(a, dtype=torch.float64).permute(2, 0, 1).unsqueeze(0) for a in (reference, reconstruction))
    if scales == len(MS_SSIM_WEIGHTS):
        return float(pytorch_msssim.ms_ssim(x, y, data_range=255, win_size=_SSIM_WINDOW_SIZE))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    window = _fspecial_gauss_1d(_SSIM_WINDOW_SIZE, _SSIM_WINDOW_SIGMA).repeat(3, 1, 1, 1)
    terms = []  # per scale (1, 3): contrast-structure terms, then the SSIM of the coarsest scale
    for scale in range(scales):
        ssim, contrast_structure = _ssim(x, y, data_range=255, win=window, size_average=False)
        if scale + 1 < scales:
            terms.append(torch.relu(contrast_structure))
            padding = [side % 2 for side in x.shape[2:]]
            x, y = (torch.nn.functional.avg_pool2d(image, kernel_size=2, padding=padding) for image in (x, y))
        else:
            terms.append(torch.relu(ssim))
    per_channel = torch.prod(torch.stack(terms) ** weights[:, None, None], dim=0)  # (1, 3)
    return float(per_channel.mean())


PerceptualMetric = Callable[[torch.Tensor, torch.Tensor], float]
"""`metric(reference, reconstruction) -> float` on `(1, 3, H, W)` images in [0, 1]; lower is better."""


def _hub_checkpoint(weights_enum_name: str) -> Path:
    """Where torchvision keeps the ImageNet weights named by `weights_enum_name` (e.g. `"AlexNet_Weights"`)."""
    import torchvision.models

    url = getattr(torchvision.models, weights_enum_name).IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _load_lpips(device: torch.device) -> PerceptualMetric:
    import lpips

    network = lpips.LPIPS(net="alex", version="0.1", verbose=False).to(device).eval()

    def metric(reference: torch.Tensor, reconstruction: torch.Tensor) -> float:
        with torch.no_grad():
            return float(network(reference.to(device), reconstruction.to(device), normalize=True))

    return metric


def _load_dists(device: torch.device) -> PerceptualMetric:
    from DISTS_pytorch import DISTS

    network = DISTS().to(device).eval()

    def metric(reference: torch.Tensor, reconstruction: torch.Tensor) -> float:
        with torch.no_grad():
            return float(network(reference.to(device), reconstruction.to(device)))

    return metric


# name -> (importable module, torchvision weights it loads, loader)
_PERCEPTUAL_METRICS = {
    "lpips": ("lpips", "AlexNet_Weights", _load_lpips),
    "dists": ("DISTS_pytorch", "VGG16_Weights", _load_dists),
}


def load_perceptual_metrics(device: torch.device | str = "cpu") -> tuple[dict[str, PerceptualMetric], list[str]]:
    r"""
    LPIPS (AlexNet, v0.1; the `lpips` package) and DISTS (the `DISTS_pytorch` package), for those whose package is
    installed and whose ImageNet backbone weights are already in the torch hub cache: nothing is downloaded.

    Args:
        device (`torch.device` or `str`, defaults to `"cpu"`): Where the networks run.

    Returns:
        `tuple[dict[str, PerceptualMetric], list[str]]`: The metrics that loaded, by result key (`"lpips"`,
        `"dists"`), and one note per metric that did not, saying why.
    """
    import importlib.util

    metrics: dict[str, PerceptualMetric] = {}
    notes = []
    for name, (module, weights_enum_name, load) in _PERCEPTUAL_METRICS.items():
        if importlib.util.find_spec(module) is None:
            notes.append(f"{name}: skipped, the `{module}` package is not installed")
            continue
        checkpoint = _hub_checkpoint(weights_enum_name)
        if not checkpoint.is_file():
            notes.append(f"{name}: skipped, its backbone weights are not in the torch hub cache ({checkpoint})")
            continue
        metrics[name] = load(torch.device(device))
    return metrics, notes
