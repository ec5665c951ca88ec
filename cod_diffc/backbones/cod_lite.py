"""The CoD-Lite pipeline behind the [`~backbones.adapter.BackboneAdapter`] interface: CoD's adapter, with the
denoiser's `x0` prediction taken as it is."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .adapter import Condition, as_batch_scalar
from .cod import CodBackbone, load_pipeline_backbone


if TYPE_CHECKING:
    from cod_diffc.pipelines import CodLitePipeline


class CodLiteBackbone(CodBackbone):
    r"""
    A [`~cod_diffc.CodLitePipeline`] as a backbone: the condition (the side information), guidance and fingerprint
    as [`~backbones.cod.CodBackbone`]'s. The denoiser predicts `x0`, which the codecs get as it is, with the
    `eps_hat` that gives back the noisy latent; `predict_velocity` is the release sampler's, `(x_flow - x0_hat) /
    max(s, 0.05)`.

    Args:
        pipeline ([`~cod_diffc.CodLitePipeline`]): the model; its denoiser's device and dtype are the adapter's.
    """

    name = "cod-lite"
    pipeline: CodLitePipeline

    def working_memory_bytes(self, height: int, width: int) -> int:
        """Activations of one guided denoiser pass, dominated by the per-pixel head (the unfolded pixels, their
        condition features and DCT positions, and about ten `hidden_size_x`-wide float32 tensors per pixel), and of
        the condition codec. The convolutional backbone has no attention, so the estimate is linear in pixels."""
        head_width = self.pipeline.transformer.config.hidden_size_x
        per_pixel = 4 * (3 + 64 + 10 * head_width)
        codec = 24 * self.pipeline.condition_codec.config.base_channels
        return height * width * (per_pixel + codec)

    @torch.no_grad()
    def predict_x0_and_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = as_batch_scalar(t, z_t)
        x_flow = torch.sqrt((1 - s) ** 2 + s**2) * z_t
        x0_hat = self.guided(self.pipeline.guided_prediction, x_flow, t, condition, guidance_scale).to(z_t.dtype)
        # eps_hat such that alpha * x0_hat + sigma * eps_hat = z_t; at s = 0 it is finite, and its weight sigma 0
        eps_hat = (x_flow - (1 - s) * x0_hat) / s.clamp_min(1e-12)
        return x0_hat, eps_hat


def load_cod_lite_backbone(
    model: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    allow_download: bool = False,
) -> CodLiteBackbone:
    """
    Registry factory of the `cod-lite` backbone: a saved [`~cod_diffc.CodLitePipeline`] directory (from `cod-diffc
    convert --variant cod-lite-pretrain`) or a hub id (only with `allow_download=True`, or when it is in the local
    cache). No CoD-Lite ships inside the package, so `model` is required.
    """
    from cod_diffc.pipelines import CodLitePipeline

    if model is None:
        raise ValueError(
            "the cod-lite backbone needs --model: a CodLitePipeline directory, such as one written by "
            "cod-diffc convert --variant cod-lite-pretrain"
        )
    return load_pipeline_backbone(
        CodLiteBackbone, CodLitePipeline, model, device=device, dtype=dtype, allow_download=allow_download
    )
