r"""Sampling in VP terms on any backbone: the Gaussian reverse step, one model step, and the probability-flow ODE.

What every codec built on [`~backbones.adapter.BackboneAdapter`] shares: DiffC sends a sample of the posterior of a
reverse step, the DDCM family picks that step's noise from a codebook, and both denoise with the same ODE.
"""

import math
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from .adapter import BackboneAdapter, Condition


@dataclass(frozen=True)
class ReverseStep:
    r"""
    The Gaussian reverse step from `t` to `s < t` in VP form, shared by the model `p` and the posterior `q`:

        mean = z_coefficient * z_t + x0_coefficient * x0,    std = std,

    with `x0 = x0_hat` (the model's prediction) for `p` and the true `z_0` for `q` (DDPM posterior
    `q(z_s | z_t, z_0)`). In terms of `alpha_{t|s} = alpha_t / alpha_s` and `sigma_{t|s}**2 = sigma_t**2 -
    alpha_{t|s}**2 sigma_s**2 = (alpha_s**2 - alpha_t**2) / alpha_s**2`:

        z_coefficient = alpha_{t|s} sigma_s**2 / sigma_t**2,   x0_coefficient = alpha_s sigma_{t|s}**2 / sigma_t**2,
        std = sigma_{t|s} sigma_s / sigma_t.

    At `alpha_t = 0` the step forgets `z_t`: `q` is the marginal `N(alpha_s z_0, sigma_s**2 I)`.
    """

    z_coefficient: float
    x0_coefficient: float
    std: float

    @classmethod
    def between(cls, alpha_t: float, sigma_t: float, alpha_s: float, sigma_s: float) -> "ReverseStep":
        """The step from VP coefficients `(alpha_t, sigma_t)` at `t` to `(alpha_s, sigma_s)` at `s`, computed in
        float64; requires `0 <= alpha_t < alpha_s` and `sigma_s > 0`."""
        if not (0 <= alpha_t < alpha_s and sigma_s > 0):
            raise ValueError(
                f"a reverse step needs 0 <= alpha_t < alpha_s and sigma_s > 0, got alpha_t={alpha_t}, "
                f"alpha_s={alpha_s}, sigma_s={sigma_s}"
            )
        sigma_ts_squared = (alpha_s**2 - alpha_t**2) / alpha_s**2
        return cls(
            z_coefficient=alpha_t / alpha_s * sigma_s**2 / sigma_t**2,
            x0_coefficient=alpha_s * sigma_ts_squared / sigma_t**2,
            std=math.sqrt(sigma_ts_squared) * sigma_s / sigma_t,
        )


def time_tensor(t: float, adapter: BackboneAdapter) -> torch.Tensor:
    """The 0-dim float32 time tensor a prediction takes, on the adapter's device."""
    return torch.tensor(t, dtype=torch.float32, device=adapter.device)


def model_reverse_step(
    adapter: BackboneAdapter,
    latent: torch.Tensor,
    t: float,
    s: float,
    condition: Condition,
    guidance_scale: float,
) -> tuple[ReverseStep, torch.Tensor, torch.Tensor]:
    r"""
    The model's reverse step from `t` to `s < t` at `latent = z_t`, as encoder and decoder both compute it.

    The step's coefficients are evaluated in float64 on the CPU, so both sides get the same numbers on any device.

    Returns:
        `(step, x0_hat, p_mean)`: the [`ReverseStep`], the model's `(1, C, h, w)` float32 `x0_hat` at `z_t`, and
        the mean `z_coefficient * z_t + x0_coefficient * x0_hat` of `p(z_s | z_t)`.
    """
    alpha, sigma = (c.numpy().tolist() for c in adapter.alpha_sigma(torch.tensor([t, s], dtype=torch.float64)))
    step = ReverseStep.between(alpha[0], sigma[0], alpha[1], sigma[1])
    x0_hat, _ = adapter.predict_x0_and_epsilon(latent, time_tensor(t, adapter), condition, guidance_scale)
    x0_hat = x0_hat.to(torch.float32)
    return step, x0_hat, step.z_coefficient * latent + step.x0_coefficient * x0_hat


@torch.no_grad()
def denoise(
    latent: torch.Tensor,
    t: float,
    adapter: BackboneAdapter,
    condition: Condition,
    guidance_scale: float,
    num_steps: int = 25,
    *,
    progress: bool = True,
) -> torch.Tensor:
    r"""
    Denoises a noisy latent from time `t` to `t = 0` with the deterministic probability-flow ODE (DDIM, eta = 0).

    Each step from `t_k` to `t_{k+1}` (uniform in `t`) maps `z -> alpha(t_{k+1}) x0_hat + sigma(t_{k+1}) eps_hat`;
    the last step, to `t = 0`, returns `x0_hat`, so `num_steps = 1` is the one-step (posterior-mean) decode.

    Args:
        latent (`torch.Tensor`): `(1, C, h, w)` noisy latent at time `t`.
        t (`float`): Its time in (0, 1].
        adapter ([`~backbones.adapter.BackboneAdapter`]): The backbone.
        condition ([`~backbones.adapter.Condition`]): The image's condition.
        guidance_scale (`float`): Guidance scale.
        num_steps (`int`, defaults to `25`): Number of ODE steps, >= 1.
        progress (`bool`, defaults to `True`): Show a progress bar.

    Returns:
        `torch.Tensor`: `(1, C, h, w)` clean latent estimate.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 0 < t <= 1:
        raise ValueError(f"t must lie in (0, 1], got {t}")
    times = [t * (1 - k / num_steps) for k in range(num_steps + 1)]
    latent = latent.to(torch.float32)
    for k in tqdm(range(num_steps), desc="denoise", disable=not progress):
        x0_hat, eps_hat = adapter.predict_x0_and_epsilon(
            latent, time_tensor(times[k], adapter), condition, guidance_scale
        )
        x0_hat = x0_hat.to(torch.float32)
        if k + 1 < num_steps:
            alpha, sigma = (float(c) for c in adapter.alpha_sigma(torch.tensor(times[k + 1], dtype=torch.float64)))
            latent = alpha * x0_hat + sigma * eps_hat.to(torch.float32)
    # The last step lands on t = 0 (data) exactly: x0_hat, whatever alpha(0) the backbone's schedule has.
    return x0_hat
