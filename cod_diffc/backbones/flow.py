"""Flow-matching backbones (CoD, diffusers flow models): the one conversion between the flow convention and VP time."""

from abc import abstractmethod

import torch

from .adapter import BackboneAdapter, Condition, as_batch_scalar


def flow_alpha_sigma(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""
    VP coefficients of the flow noise level `s`: `x_flow = (1 - s) * x0 + s * eps` rescaled by
    `n = sqrt((1 - s)**2 + s**2)` is the VP latent `z = x_flow / n`, with `alpha = (1 - s) / n`, `sigma = s / n`.
    """
    norm = torch.sqrt((1 - s) ** 2 + s**2)
    return (1 - s) / norm, s / norm


class FlowMatchingAdapterMixin(BackboneAdapter):
    r"""
    A [`~backbones.adapter.BackboneAdapter`] for flow-matching models in the diffusers flow convention.

    The model sees `x_flow = (1 - s) * x0 + s * eps` at noise level `s` in [0, 1] (`s = 1` pure noise) and predicts
    the velocity `v = eps - x0`. The adapter's time is the noise level itself, `t = s`. This mixin converts once, in
    both directions: with `n = sqrt((1 - s)**2 + s**2)`,

        alpha = (1 - s) / n,   sigma = s / n,   x_flow = n * z_t,
        x0_hat = x_flow - s * v,   eps_hat = x_flow + (1 - s) * v.

    Both predictions stay finite at `s = 1`, where `alpha = 0`. A subclass implements only [`predict_velocity`]
    (plus the image/latent, condition and fingerprint methods); a model trained in another time direction (the
    official CoD code uses `t = 1` for data) converts its time inside `predict_velocity`.
    """

    @abstractmethod
    def predict_velocity(
        self, x_flow: torch.Tensor, s: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        r"""
        The (guided) velocity `v_hat = eps - x0` at flow noise level `s`.

        Args:
            x_flow (`torch.Tensor`): `(1, C, h, w)` float32 flow-space sample `(1 - s) * x0 + s * eps`.
            s (`torch.Tensor`): 0-dim noise level in [0, 1].
            condition ([`~backbones.adapter.Condition`]): The image's condition.
            guidance_scale (`float`): Classifier-free guidance scale.

        Returns:
            `torch.Tensor`: `(1, C, h, w)` velocity, float32.
        """

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flow_alpha_sigma(t)

    def predict_x0_and_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        s = as_batch_scalar(t, z_t)
        x_flow = torch.sqrt((1 - s) ** 2 + s**2) * z_t
        velocity = self.predict_velocity(x_flow, t, condition, guidance_scale).to(z_t.dtype)
        return x_flow - s * velocity, x_flow + (1 - s) * velocity

    def predict_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        return self.predict_x0_and_epsilon(z_t, t, condition, guidance_scale)[1]
