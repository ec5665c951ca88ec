r"""Discrete variance-preserving backbones (DDPM-trained UNets: Stable Diffusion, diffusers `UNet2DModel`, ...).

Time. A discrete VP model has training steps `i = 0..T-1` with `alpha_i**2 = alphas_cumprod[i]`. The adapter's
continuous time `t` in [0, 1] maps to the fractional training timestep

    tau(t) = t * (T - 1),

and the log-SNR `lambda = log(alpha**2 / sigma**2)` is interpolated linearly in `tau` between the two neighbouring
integer steps, so that

    alpha(t)**2 = sigmoid(lambda(tau)),    sigma(t)**2 = sigmoid(-lambda(tau)).

This agrees with `alphas_cumprod` exactly at integer steps, is continuous and strictly decreasing in between, and
keeps `alpha**2 + sigma**2 == 1`. The network is fed the fractional timestep `tau` (a sinusoidal timestep embedding
is defined for any real value). `t = 1` is training step `T - 1`, where `alpha` is small but not 0 (Stable
Diffusion: about 0.068), so `x0_hat = (z_t - sigma * eps_hat) / alpha` is defined on the whole interval.

Predictions. The network's raw output is converted once, here, for the three diffusers prediction types:

    "epsilon":       eps_hat = output
    "v_prediction":  v = alpha * eps - sigma * x0,  so  eps_hat = alpha * v + sigma * z_t,  x0_hat = alpha * z_t - sigma * v
    "sample":        x0_hat = output,  eps_hat = (z_t - alpha * x0_hat) / sigma
"""

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .adapter import BackboneAdapter, Condition, as_batch_scalar, fingerprint_state_dict


PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
"""The diffusers `prediction_type`s [`DiscreteVPAdapterMixin`] converts."""


class DiscreteVPAdapterMixin(BackboneAdapter):
    r"""
    A [`~backbones.adapter.BackboneAdapter`] for a model trained on a discrete VP schedule (DDPM and its samplers).

    A subclass calls [`set_discrete_schedule`] with its scheduler's `alphas_cumprod` and `prediction_type` (in
    `__init__`) and implements [`predict_model_output`], the (guided) network call at a fractional training
    timestep; this mixin provides `alpha_sigma`, `predict_epsilon` and `predict_x0_and_epsilon`. A diffusers
    `UNet2DModel` with its `DDPMScheduler` becomes a backbone in about 40 lines (docs/custom_backbone.md).
    """

    alphas_cumprod: torch.Tensor
    prediction_type: str

    def set_discrete_schedule(self, alphas_cumprod: torch.Tensor, prediction_type: str) -> None:
        r"""
        Sets the training schedule.

        Args:
            alphas_cumprod (`torch.Tensor`): `(T,)` cumulative products of the scheduler (`T >= 2`), strictly
                decreasing inside (0, 1).
            prediction_type (`str`): One of [`PREDICTION_TYPES`].

        Raises:
            `ValueError`: For another prediction type, or a table that is not a strictly decreasing VP schedule
                inside (0, 1) (zero-terminal-SNR schedules, which reach `alpha = 0`, are not supported).
        """
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction type {prediction_type!r} is not supported; expected one of {', '.join(PREDICTION_TYPES)}"
            )
        if not isinstance(alphas_cumprod, torch.Tensor) or alphas_cumprod.ndim != 1 or len(alphas_cumprod) < 2:
            raise ValueError("alphas_cumprod must be a (T,) tensor with T >= 2, the table of a discrete VP schedule")
        alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64)  # (T,)
        inside_unit_interval = bool(((alphas_cumprod > 0) & (alphas_cumprod < 1)).all())
        if not (inside_unit_interval and bool((alphas_cumprod.diff() < 0).all())):
            raise ValueError(
                "alphas_cumprod must decrease strictly inside (0, 1); schedules reaching alpha = 0 (zero terminal "
                "SNR) are not supported"
            )
        self.alphas_cumprod = alphas_cumprod
        self.prediction_type = prediction_type
        self._log_snr = alphas_cumprod.log() - (-alphas_cumprod).log1p()  # (T,), decreasing

    @property
    def num_train_timesteps(self) -> int:
        """`T`, the number of discrete training steps."""
        return len(self.alphas_cumprod)

    def training_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The fractional training timestep `tau = t * (T - 1)` of time `t`, in float64 on the CPU."""
        t = t.detach().to("cpu", torch.float64)
        if bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"t must lie in [0, 1], got {t.tolist()}")
        return t * (self.num_train_timesteps - 1)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        timestep = self.training_timestep(t)
        lower = timestep.floor().long().clamp(max=self.num_train_timesteps - 2)
        log_snr = torch.lerp(self._log_snr[lower], self._log_snr[lower + 1], timestep - lower)
        alpha, sigma = torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()
        return alpha.to(t.device, t.dtype), sigma.to(t.device, t.dtype)

    @abstractmethod
    def predict_model_output(
        self, z_t: torch.Tensor, timestep: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        r"""
        The network's (guided) raw output, of the mixin's `prediction_type`.

        Args:
            z_t (`torch.Tensor`): `(B, C, h, w)` float32 noisy latent.
            timestep (`torch.Tensor`): `(B,)` float32 fractional training timesteps on `self.device`.
            condition ([`~backbones.adapter.Condition`]): The image's condition.
            guidance_scale (`float`): Classifier-free guidance scale.

        Returns:
            `torch.Tensor`: `(B, C, h, w)` float32.
        """

    def predict_x0_and_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        timestep = self.training_timestep(t).to(self.device, torch.float32).expand(z_t.shape[0])  # (B,)
        output = self.predict_model_output(z_t, timestep, condition, guidance_scale).float()
        alpha, sigma = (as_batch_scalar(coefficient, z_t) for coefficient in self.alpha_sigma(t))
        z_t = z_t.float()
        if self.prediction_type == "epsilon":
            return (z_t - sigma * output) / alpha, output
        if self.prediction_type == "v_prediction":
            return alpha * z_t - sigma * output, alpha * output + sigma * z_t
        return output, (z_t - alpha * output) / sigma

    def predict_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        return self.predict_x0_and_epsilon(z_t, t, condition, guidance_scale)[1]

    def schedule_fingerprint(self, modules: Mapping[str, nn.Module], config: Mapping[str, Any]) -> bytes:
        """A digest of the `modules`' weights (named by their keys), `alphas_cumprod`, the prediction type and
        `config` ([`~backbones.adapter.fingerprint_state_dict`]): what a discrete-VP adapter's fingerprint holds."""
        weights = {
            f"{prefix}.{key}": tensor
            for prefix, module in modules.items()
            for key, tensor in module.state_dict().items()
        }
        weights["scheduler.alphas_cumprod"] = self.alphas_cumprod
        return fingerprint_state_dict(weights, {"prediction_type": self.prediction_type, **config})
