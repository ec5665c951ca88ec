"""`CodLitePipeline`: CoD-Lite, the convolutional CoD, as a [`CodPipeline`] whose denoiser predicts the image."""

from __future__ import annotations

import torch

from cod_diffc.models.condition_codec_cod import CodConditionCodec
from cod_diffc.models.denoiser_cod_lite import CodLiteDenoiserModel
from cod_diffc.pipelines.pipeline_cod import CodPipeline
from cod_diffc.schedulers.scheduling_cod_flow_match import CodFlowMatchScheduler


VELOCITY_MIN_SIGMA = 0.05
"""CoD-Lite's velocity divides by the noise level clamped to this (the release's `max(1 - t, 0.05)`)."""


class CodLitePipeline(CodPipeline):
    r"""
    CoD-Lite ([arXiv 2604.12525](https://arxiv.org/abs/2604.12525)): CoD's condition codec (with a light decoder
    and windowed inference attention) feeding a convolutional pixel-space denoiser, [`CodLiteDenoiserModel`], which
    predicts the clean image `x0` rather than CoD's velocity. Everything else is [`CodPipeline`]'s: the condition,
    the standalone `.cod` codec (whose header CoD-Lite writes width first), generation and the callbacks. The
    release samples with 100 Euler steps (`CodFlowMatchScheduler(solver_order=1)`), guidance 3.0 for noise levels
    below 0.9.

    Parameters:
        transformer ([`CodLiteDenoiserModel`]): the denoiser (`x0` prediction, diffusers' flow convention at its
            input).
        condition_codec ([`CodConditionCodec`]): encoder, vector quantiser and decoder of the condition.
        scheduler ([`CodFlowMatchScheduler`]): the sampler (the release's: Euler, last step 0.04).
        vae (`None`): always `None`, CoD-Lite works in pixel space (the component is [`CodPipeline`]'s).
        default_guidance_scale (`float`, *optional*, defaults to 3.0): the classifier-free guidance used when a
            call does not say.
        guidance_interval (`tuple[float, float]`, *optional*, defaults to `(0.0, 0.9)`): guidance applies for noise
            levels strictly inside this interval (the release's `0.1 < t < 1` in its time).
    """

    denoiser_class = CodLiteDenoiserModel
    cod_file_width_first = True

    def __init__(
        self,
        transformer: CodLiteDenoiserModel,
        condition_codec: CodConditionCodec,
        scheduler: CodFlowMatchScheduler,
        vae: None = None,
        default_guidance_scale: float = 3.0,
        guidance_interval: tuple[float, float] | list[float] = (0.0, 0.9),
    ):
        super().__init__(transformer, condition_codec, scheduler, vae, default_guidance_scale, guidance_interval)

    def guided_velocity(
        self,
        sample: torch.Tensor,
        sigma: torch.Tensor,
        condition: torch.Tensor,
        null_condition: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """The velocity of the guided `x0` prediction ([`velocity_of_prediction`]), as the release samples."""
        x0_hat = self.guided_prediction(sample, sigma, condition, null_condition, guidance_scale)
        return self.velocity_of_prediction(sample, sigma, x0_hat)

    @staticmethod
    def velocity_of_prediction(sample: torch.Tensor, sigma: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
        """`(sample - x0_hat) / max(sigma, 0.05)`: near the data end the clamp makes a sampler step move only part
        of the way to `x0_hat`, as the release's does. `sigma` a scalar tensor or one that broadcasts."""
        return (sample - x0_hat) / sigma.to(x0_hat.dtype).clamp_min(VELOCITY_MIN_SIGMA)
