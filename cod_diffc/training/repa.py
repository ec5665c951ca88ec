"""REPA (representation alignment, Yu et al. 2024) for CoD: the frozen DINOv2 encoder whose patch features the
backbone and the condition map are aligned to.

The encoder is whatever `transformers.AutoModel.from_pretrained(path)` loads from a local directory the user
supplies (the release uses DINOv2 ViT-B/14); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cod_diffc.optional_dependencies import require


# DINOv2 was trained on ImageNet-normalised inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class RepaFeatureEncoder(nn.Module):
    """
    A frozen ViT (DINOv2) that maps images to one feature vector per CoD token.

    The image is resized so that the ViT's patch grid equals the token grid (`H / 16` x `W / 16`), e.g. 256 px
    images become 224 px for patch 14, and the class and register tokens are dropped.

    Parameters:
        path (`str` or `Path`): local directory of a `transformers` vision model with `config.patch_size`.
    """

    def __init__(self, path: str | Path):
        super().__init__()
        transformers = require("transformers", "the REPA loss (its DINOv2 encoder)")
        if not Path(path).is_dir():
            raise FileNotFoundError(f"REPA encoder directory {path} not found (loss.repa_encoder_path)")
        self.model = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
        self.model.requires_grad_(False).eval()
        config = self.model.config
        if not hasattr(config, "patch_size") or not hasattr(config, "hidden_size"):
            raise ValueError(f"{path} holds no ViT with a patch size (got a {type(self.model).__name__})")
        self.patch_size = int(config.patch_size)
        self.num_prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        return int(self.model.config.hidden_size)

    def train(self, mode: bool = True) -> RepaFeatureEncoder:
        # Always frozen and in eval mode.
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
        """
        Args:
            images: `(B, 3, H, W)` in [0, 1].
            grid_size: the token grid `(h, w)`.

        Returns:
            `(B, h * w, feature_dim)` patch features, row-major like CoD's tokens.
        """
        size = (grid_size[0] * self.patch_size, grid_size[1] * self.patch_size)
        pixels = F.interpolate(images.float(), size=size, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
        pixels = (pixels - self.mean) / self.std
        hidden_states = self.model(pixel_values=pixels.to(self.model.dtype)).last_hidden_state
        features = hidden_states[:, self.num_prefix_tokens :]  # (B, h * w, D)
        if features.shape[1] != grid_size[0] * grid_size[1]:
            raise ValueError(
                f"the REPA encoder gave {features.shape[1]} patch tokens for a {grid_size[0]}x{grid_size[1]} grid"
            )
        return features


class RepaProjector(nn.Sequential):
    """The REPA projection MLP: Linear(C, H), SiLU, Linear(H, H), SiLU, Linear(H, D) applied to every token."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__(
            nn.Linear(in_features, hidden_features),
            nn.SiLU(),
            nn.Linear(hidden_features, hidden_features),
            nn.SiLU(),
            nn.Linear(hidden_features, out_features),
        )
