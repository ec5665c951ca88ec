"""The terms of CoD's training objective, and the random draws they take.

Time convention: diffusers' flow matching (see `cod_diffc.schedulers.scheduling_cod_flow_match`): the noise level
`sigma` is 1 for pure noise, `x_sigma = (1 - sigma) * x0 + sigma * noise` and the network predicts `v = noise - x0`.
CoD draws its time `t = 1 - sigma` as `sigmoid(N(0, 1))`; the logit-normal law is symmetric about 1/2, so `sigma`
is drawn the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cod_diffc.training.seeds import derive_seed


@dataclass
class TrainingNoise:
    """
    The random inputs of one micro-batch.

    Args:
        sigmas: `(B,)` noise levels, logit-normal.
        noise: `(B, *sample_shape)` standard normal noise.
        null_mask: `(B,)` booleans, `True` where the condition image is replaced by the null image.
        posterior_noise: `(B, *sample_shape)` standard normal noise for the VAE posterior sample (latent models),
            else `None`.
    """

    sigmas: torch.Tensor
    noise: torch.Tensor
    null_mask: torch.Tensor
    posterior_noise: torch.Tensor | None


def draw_training_noise(
    positions: Sequence[int],
    seed: int,
    sample_shape: Sequence[int],
    condition_dropout: float,
    latent: bool,
    device: torch.device,
) -> TrainingNoise:
    """Draws the noise of each sample from its own generator, seeded by `(seed, global sample position)`.

    Per-sample generators make the draws independent of how the batch is split over processes and accumulation
    steps and of where a run was resumed.
    """
    sigmas, noises, uniforms, posterior_noises = [], [], [], []
    for position in positions:
        generator = torch.Generator(device).manual_seed(derive_seed(seed, position, 1))
        sigmas.append(torch.sigmoid(torch.randn((), generator=generator, device=device)))
        uniforms.append(torch.rand((), generator=generator, device=device))
        noises.append(torch.randn(tuple(sample_shape), generator=generator, device=device))
        if latent:
            posterior_noises.append(torch.randn(tuple(sample_shape), generator=generator, device=device))
    return TrainingNoise(
        sigmas=torch.stack(sigmas),
        noise=torch.stack(noises),
        null_mask=torch.stack(uniforms) < condition_dropout,
        posterior_noise=torch.stack(posterior_noises) if latent else None,
    )


def add_noise(samples: torch.Tensor, noise: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """`x_sigma = (1 - sigma) * x0 + sigma * noise`, with `sigmas` of shape `(B,)`."""
    sigmas = sigmas.view(-1, *([1] * (samples.ndim - 1)))
    return (1.0 - sigmas) * samples + sigmas * noise


def flow_matching_loss(velocity: torch.Tensor, samples: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Rectified-flow loss: MSE between the predicted velocity and `noise - x0`."""
    return F.mse_loss(velocity.float(), (noise - samples).float())


def one_step_loss(velocity_at_noise: torch.Tensor, samples: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The "unified" stage's loss: MSE of the one-step estimate `noise - v(noise, sigma=1)` against `x0`."""
    return F.mse_loss((noise - velocity_at_noise).float(), samples.float())


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """MSE over the samples where `keep` (`(B,)` bool) is `True`; 0 (still in the graph) when none is kept."""
    per_sample = (prediction.float() - target.float()).square().flatten(1).mean(dim=1)  # (B,)
    weights = keep.to(per_sample.dtype)
    return (per_sample * weights).sum() / weights.sum().clamp(min=1.0)


def alignment_loss(projected: torch.Tensor, targets: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """REPA alignment: `1 - cosine similarity` between projected tokens and encoder tokens, both `(B, L, D)`.

    With `keep` (`(B,)` bool) only those samples count.
    """
    similarity = F.cosine_similarity(projected.float(), targets.float(), dim=-1).mean(dim=1)  # (B,)
    if keep is None:
        return 1.0 - similarity.mean()
    weights = keep.to(similarity.dtype)
    return ((1.0 - similarity) * weights).sum() / weights.sum().clamp(min=1.0)
