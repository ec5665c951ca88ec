r"""FID and KID as CoD's and DDCM's tables report them: over overlapping patches of the reconstructions against the
originals' patches, through torchmetrics.

A dataset of a few dozen images gives too few samples for a distribution metric on whole images, so every image is cut
into `PATCH_SIZE` x `PATCH_SIZE` patches `PATCH_STRIDE` apart (overlapping), and FID / KID compare the patches of the
reconstructions at one target rate with the patches of the originals. The features are torchmetrics' Inception v3
(torch-fidelity's weights, 2048 features, patches resized to 299 x 299) unless a custom extractor is given.

Nothing is downloaded: the Inception weights must already be in torch's hub cache
(`TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth`), else [`load_distribution_metrics`] says
why the metrics are skipped, as the perceptual metrics do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from cod_diffc.optional_dependencies import is_available


PATCH_SIZE = 64
PATCH_STRIDE = 32
"""Patches of 64 x 64 pixels every 32 pixels (half overlapping), as recorded in every result that uses them."""
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
"""torch-fidelity's Inception v3 weights file, which torchmetrics' FID and KID use."""
DISTRIBUTION_METRICS = ("fid", "kid")
_KID_SUBSET_SIZE = 1000


def image_patches(image: np.ndarray, size: int = PATCH_SIZE, stride: int = PATCH_STRIDE) -> torch.Tensor:
    """`(N, 3, size, size)` uint8 patches of an `(H, W, 3)` uint8 image, top-left corners every `stride` pixels
    (an image smaller than `size` gives none)."""
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W)
    if min(pixels.shape[1:]) < size:
        return torch.empty(0, 3, size, size, dtype=torch.uint8)
    windows = pixels.unfold(1, size, stride).unfold(2, size, stride)  # (3, rows, cols, size, size)
    return windows.permute(1, 2, 0, 3, 4).reshape(-1, 3, size, size).contiguous()


def inception_weights_path() -> Path:
    """Where torchmetrics' Inception weights must be for FID and KID (torch's hub cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


def load_distribution_metrics(
    names: Sequence[str], feature: torch.nn.Module | None = None, device: torch.device | str = "cpu"
) -> tuple[PatchDistributionMetrics | None, list[str]]:
    """The patch FID / KID of `names` (a subset of `("fid", "kid")`), and one note per metric that is skipped.

    Args:
        names (`Sequence[str]`): Which metrics.
        feature (`torch.nn.Module`, *optional*): A feature extractor (uint8 `(N, 3, h, w)` → `(N, d)`) instead of
            Inception v3, e.g. a small network in tests.
        device (`torch.device` or `str`, defaults to `"cpu"`): Where the features are computed.
    """
    names = [name for name in DISTRIBUTION_METRICS if name in names]
    if not names:
        return None, []
    reason = None
    if not is_available("torchmetrics") or (feature is None and not is_available("torch_fidelity")):
        reason = 'needs torchmetrics and torch-fidelity: pip install "cod-diffc[metrics]"'
    elif feature is None and not inception_weights_path().is_file():
        reason = f"the Inception weights are not installed ({inception_weights_path()})"
    if reason is not None:
        return None, [f"{name}: skipped, {reason}" for name in names]
    return PatchDistributionMetrics(names, feature, device), []


class SharedFeatures(torch.nn.Module):
    """A feature extractor whose last call is remembered: FID and KID, updated with the same patches one after the
    other, compute the features once."""

    def __init__(self, feature: torch.nn.Module):
        super().__init__()
        self.feature = feature
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, features)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if self._last is None or self._last[0] is not patches:
            self._last = (patches, self.feature(patches))
        return self._last[1]


class PatchDistributionMetrics:
    r"""FID and KID between the patches of original images and of their reconstructions, one set at a time.

    The originals' features are computed once ([`add_originals`]); each set of reconstructions (a method at a target
    rate) is then scored with [`score`], which keeps the originals' statistics.

    Args:
        names (`Sequence[str]`): `"fid"` and/or `"kid"`.
        feature (`torch.nn.Module`, *optional*): Feature extractor instead of torchmetrics' Inception v3.
        device (`torch.device` or `str`, defaults to `"cpu"`): Where the features are computed.
    """

    def __init__(
        self, names: Sequence[str], feature: torch.nn.Module | None = None, device: torch.device | str = "cpu"
    ):
        from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
        from torchmetrics.image.kid import KernelInceptionDistance

        if feature is None:  # torchmetrics' Inception v3 (2048 pool features) from the local weights only
            weights = str(inception_weights_path())
            feature = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights)
        feature = SharedFeatures(feature)  # one network pass per batch of patches for both metrics
        self.metrics = {}
        if "fid" in names:
            self.metrics["fid"] = FrechetInceptionDistance(
                feature=feature, reset_real_features=False, input_img_size=(3, PATCH_SIZE, PATCH_SIZE)
            )
        if "kid" in names:
            self.metrics["kid"] = KernelInceptionDistance(
                feature=feature, reset_real_features=False, subset_size=_KID_SUBSET_SIZE
            )
        for metric in self.metrics.values():
            metric.to(device)
        self.device = torch.device(device)
        self.num_original_patches = 0

    @property
    def protocol(self) -> dict:
        """What a result records of how it was computed."""
        return {"patch_size": PATCH_SIZE, "patch_stride": PATCH_STRIDE, "original_patches": self.num_original_patches}

    @torch.no_grad()
    def add_originals(self, images: Iterable[np.ndarray]) -> None:
        """Adds the patches of the `(H, W, 3)` uint8 originals to the reference set."""
        for image in images:
            patches = image_patches(image).to(self.device)
            self.num_original_patches += len(patches)
            for metric in self.metrics.values():
                metric.update(patches, real=True)

    @torch.no_grad()
    def score(self, reconstructions: Iterable[np.ndarray]) -> dict[str, float]:
        """FID (and KID, the mean over random subsets) of the reconstructions' patches against the originals'."""
        num_patches = 0
        for image in reconstructions:
            patches = image_patches(image).to(self.device)
            num_patches += len(patches)
            for metric in self.metrics.values():
                metric.update(patches, real=False)
        if num_patches < 2 or self.num_original_patches < 2:
            raise ValueError(f"FID/KID need at least 2 patches of {PATCH_SIZE} px on each side, got {num_patches}")
        scores = {}
        for name, metric in self.metrics.items():
            if name == "kid":
                metric.subset_size = min(_KID_SUBSET_SIZE, num_patches, self.num_original_patches)
                with torch.random.fork_rng(devices=[]):  # KID's random subsets: the same on every run
                    torch.manual_seed(0)
                    scores[name] = float(metric.compute()[0])
            else:
                scores[name] = float(metric.compute())
            metric.reset()  # drops the reconstructions' features only (reset_real_features=False)
        return scores


def add_distribution_scores(
    metrics: PatchDistributionMetrics,
    results: Sequence[dict],
    run_dir: str | Path,
    images: Sequence[Path],
    target_bpps: Sequence[float],
) -> None:
    """Adds `fid` / `kid` lists (one value per target rate) and the patch protocol to each method's CompressAI
    result, from the run's kept reconstructions (`reconstructions/METHOD/IMAGE_bppX.png`) and `images`."""
    from cod_diffc.image_files import load_image

    from .metrics import to_uint8
    from .sweep import reconstruction_path

    metrics.add_originals(to_uint8(load_image(path)) for path in images)
    for result in results:
        scores = [
            metrics.score(
                to_uint8(load_image(reconstruction_path(Path(run_dir), result["name"], path.stem, target)))
                for path in images
            )
            for target in target_bpps
        ]
        for name in metrics.metrics:
            result["results"][name] = [score[name] for score in scores]
        result["distribution_metrics"] = metrics.protocol
