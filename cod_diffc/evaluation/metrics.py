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
    How many MS-SSIM scales an image of this size supports: 5, or fewer when the coarsest scale would be smaller than
    the 11-pixel window (images under 176 pixels on their short side). Raises `ValueError` below 11 pixels.
    """
    short_side = min(height, width)
    if short_side < _SSIM_WINDOW_SIZE:
        raise ValueError(f"MS-SSIM needs images of at least {_SSIM_WINDOW_SIZE} pixels a side, got {height}x{width}")
    scales = 1
    while scales < len(MS_SSIM_WEIGHTS) and short_side >> scales >= _SSIM_WINDOW_SIZE:
        scales += 1
    return scales


def ms_ssim(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    r"""
    Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) of two `(H, W, 3)` uint8 images, averaged over the RGB channels.

    Each scale compares local statistics under an 11x11 Gaussian window (sigma 1.5, no padding) with
    `C1 = (0.01 * 255)**2`, `C2 = (0.03 * 255)**2`; the image is then averaged over 2x2 blocks for the next scale. The
    result is `l_M**w_M * prod_j cs_j**w_j` with the standard weights [`MS_SSIM_WEIGHTS`] (negative terms clipped to
    zero). Images too small for five scales use the first [`ms_ssim_scales`] weights, renormalised to sum to one.
    """
    if reference.shape != reconstruction.shape:
        raise ValueError(f"image shapes differ: {reference.shape} vs {reconstruction.shape}")
    scales = ms_ssim_scales(*reference.shape[:2])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    coordinates = torch.arange(_SSIM_WINDOW_SIZE, dtype=torch.float64) - _SSIM_WINDOW_SIZE // 2
    profile = torch.exp(-(coordinates**2) / (2 * _SSIM_WINDOW_SIGMA**2))
    profile = profile / profile.sum()
    window = (profile[:, None] * profile[None, :]).expand(3, 1, -1, -1)  # (3, 1, 11, 11), one per channel
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(x, window, groups=3)

    x, y = (torch.tensor(a, dtype=torch.float64).permute(2, 0, 1).unsqueeze(0) for a in (reference, reconstruction))
    terms = []  # per scale: (3,) contrast-structure terms, and the luminance term at the coarsest scale
    for scale in range(scales):
        mean_x, mean_y = local_mean(x), local_mean(y)  # (1, 3, h, w)
        variance_x = local_mean(x * x) - mean_x**2
        variance_y = local_mean(y * y) - mean_y**2
        covariance = local_mean(x * y) - mean_x * mean_y
        contrast_structure = (2 * covariance + c2) / (variance_x + variance_y + c2)
        if scale + 1 < scales:
            terms.append(contrast_structure.mean(dim=(0, 2, 3)))
            x, y = (torch.nn.functional.avg_pool2d(image, 2) for image in (x, y))
        else:
            luminance = (2 * mean_x * mean_y + c1) / (mean_x**2 + mean_y**2 + c1)
            terms.append((luminance * contrast_structure).mean(dim=(0, 2, 3)))
    per_channel = torch.prod(torch.stack(terms).clamp(min=0) ** weights[:, None], dim=0)  # (3,)
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
