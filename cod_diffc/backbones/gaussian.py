"""An analytic backbone: Gaussian data, for which the optimal denoiser is known in closed form.

With data `z_0 ~ N(m, s**2 I)` and `z_t = alpha * z_0 + sigma * eps`, the posterior is Gaussian and

    E[z_0 | z_t] = m + alpha * s**2 / r**2 * (z_t - alpha * m),    E[eps | z_t] = sigma / r**2 * (z_t - alpha * m),

with `r**2 = alpha**2 * s**2 + sigma**2`, so a codec's rates and distortions can be checked against theory. It uses the
noise schedule of a flow-matching model (`alpha = (1 - t) / n`, `sigma = t / n`, `n = sqrt((1 - t)**2 + t**2)`), like
CoD, and is registered as the `"gaussian"` backbone: a toy for tests, demos and new codec code. The `"gaussian-vp"`
backbone ([`GaussianVPBackbone`]) serves the same exact denoiser through the discrete-VP path of Stable Diffusion.
"""

import hashlib
import math
import struct

import torch
import torch.nn.functional as F

from .adapter import FINGERPRINT_SIZE, BackboneAdapter, Condition, as_batch_scalar
from .discrete_vp import DiscreteVPAdapterMixin
from .flow import flow_alpha_sigma


class GaussianBackbone(BackboneAdapter):
    r"""
    The exact denoiser of Gaussian data `z_0 ~ N(mean, std**2 I)` on a `(3, H / patch_size, W / patch_size)` latent.

    `encode_image` maps an image to `2 * image - 1` averaged over `patch_size x patch_size` patches; `decode_latent`
    inverts that (nearest upsampling, clamped to [0, 1]). The backbone has no condition and ignores the guidance
    scale.

    Parameters:
        mean (`float`, defaults to `0.0`): Mean `m` of every latent coordinate.
        std (`float`, defaults to `1.0`): Standard deviation `s` of every latent coordinate, > 0.
        patch_size (`int`, defaults to `1`): Image pixels per latent coordinate along each side.
        device (`torch.device` or `str`, defaults to `"cpu"`): Where latents live.
    """

    name = "gaussian"

    def __init__(self, mean: float = 0.0, std: float = 1.0, patch_size: int = 1, device: torch.device | str = "cpu"):
        if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
            raise ValueError(f"GaussianBackbone needs a finite mean and a positive std, got mean={mean}, std={std}")
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.mean = float(mean)
        self.std = float(std)
        self.patch_size = self.size_multiple = int(patch_size)
        self._device = torch.device(device)

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        if height % self.patch_size or width % self.patch_size or height < 1 or width < 1:
            raise ValueError(f"image size {height}x{width} is not a positive multiple of patch_size {self.patch_size}")
        return 3, height // self.patch_size, width // self.patch_size

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        image = image.to(self.device, torch.float32)
        return 2 * F.avg_pool2d(image, self.patch_size) - 1  # (1, 3, h, w)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        image = (latent.to(torch.float32) + 1) / 2
        return F.interpolate(image, scale_factor=self.patch_size, mode="nearest").clamp(0, 1)  # (1, 3, H, W)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flow_alpha_sigma(t)

    def _posterior_means(self, z_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(E[z_0 | z_t], E[eps | z_t])` in closed form; both finite for every `t` in [0, 1]."""
        alpha, sigma = (as_batch_scalar(coefficient, z_t) for coefficient in self.alpha_sigma(t))
        return self.posterior_means(z_t, alpha, sigma)

    def posterior_means(
        self, z_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(E[z_0 | z_t], E[eps | z_t])` of `z_t = alpha * z_0 + sigma * eps` (coefficients broadcastable to
        `z_t`)."""
        residual = z_t - alpha * self.mean
        variance = alpha**2 * self.std**2 + sigma**2  # Var(z_t), per coordinate
        return self.mean + alpha * self.std**2 / variance * residual, sigma / variance * residual

    def predict_x0_and_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self._posterior_means(z_t, t)

    def predict_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        return self._posterior_means(z_t, t)[1]

    def fingerprint(self) -> bytes:
        settings = struct.pack("<ddq", self.mean, self.std, self.patch_size)
        return hashlib.blake2b(b"gaussian|" + settings, digest_size=FINGERPRINT_SIZE).digest()

    def posterior_mse(self, t: float) -> float:
        """Per-coordinate MSE of the posterior mean `E[z_0 | z_t]` (the one-step decode from an exact `z_t`)."""
        alpha, sigma = (float(c) for c in self.alpha_sigma(torch.tensor(t, dtype=torch.float64)))
        return self.std**2 * sigma**2 / (alpha**2 * self.std**2 + sigma**2)

    def flow_decode_mse(self, t: float) -> float:
        """Per-coordinate MSE of the probability-flow ODE decode from an exact `z_t`: the ODE maps `z_t` to
        `m + s / r * (z_t - alpha * m)`, whose error is `2 s**2 (1 - alpha * s / r)`."""
        alpha, sigma = (float(c) for c in self.alpha_sigma(torch.tensor(t, dtype=torch.float64)))
        marginal_std = math.sqrt(alpha**2 * self.std**2 + sigma**2)
        return 2 * self.std**2 * (1 - alpha * self.std / marginal_std)


def load_gaussian_backbone(
    model: str | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    patch_size: int = 1,
) -> GaussianBackbone:
    """Registry factory of the `"gaussian"` backbone: it has no weights (`model` must be `None`), computes in
    float32, and takes the [`GaussianBackbone`] settings (`mean`, `std`, `patch_size`) as options."""
    _check_no_weights("gaussian", model, dtype)
    return GaussianBackbone(mean=mean, std=std, patch_size=patch_size, device=device)


class GaussianVPBackbone(DiscreteVPAdapterMixin, GaussianBackbone):
    r"""
    The exact denoiser of the same Gaussian data served the way a DDPM-trained network is: a raw output of
    `prediction_type` at a fractional training timestep of a discrete `alphas_cumprod` table (Stable Diffusion's by
    default), read through [`~backbones.discrete_vp.DiscreteVPAdapterMixin`]. The path Stable Diffusion takes is then
    held to the same bounds as the flow path: a wrong time map or conversion shows up as lost quality.

    The output is computed from the timestep it is given, independently of the mixin's `alpha_sigma`: the table's
    log-SNR interpolated linearly between the neighbouring integer steps (the mixin's documented map).

    Parameters:
        mean, std, patch_size, device: As for [`GaussianBackbone`].
        prediction_type (`str`, defaults to `"epsilon"`): `"epsilon"`, `"v_prediction"` or `"sample"`.
        alphas_cumprod (`torch.Tensor`, *optional*): `(T,)` the schedule's table; Stable Diffusion 1.x's (1,000
            scaled-linear steps from 0.00085 to 0.012) by default.
    """

    name = "gaussian-vp"

    def __init__(
        self,
        mean: float = 0.0,
        std: float = 1.0,
        patch_size: int = 1,
        prediction_type: str = "epsilon",
        alphas_cumprod: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ):
        GaussianBackbone.__init__(self, mean=mean, std=std, patch_size=patch_size, device=device)
        if alphas_cumprod is None:
            from diffusers import DDPMScheduler

            from cod_diffc.schedulers.stable_diffusion_schedule import STABLE_DIFFUSION_SCHEDULE

            alphas_cumprod = DDPMScheduler(**STABLE_DIFFUSION_SCHEDULE).alphas_cumprod
        self.set_discrete_schedule(alphas_cumprod, prediction_type)

    def predict_model_output(
        self, z_t: torch.Tensor, timestep: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        log_snr = self.alphas_cumprod.log() - (-self.alphas_cumprod).log1p()  # (T,)
        tau = timestep.to("cpu", torch.float64)  # (B,)
        lower = tau.floor().long().clamp(max=len(log_snr) - 2)
        snr = torch.lerp(log_snr[lower], log_snr[lower + 1], tau - lower).exp()
        alpha = as_batch_scalar((snr / (1 + snr)).sqrt().to(z_t.device, torch.float32), z_t)
        sigma = as_batch_scalar((1 / (1 + snr)).sqrt().to(z_t.device, torch.float32), z_t)
        x0, epsilon = self.posterior_means(z_t, alpha, sigma)
        if self.prediction_type == "epsilon":
            return epsilon
        if self.prediction_type == "v_prediction":
            return alpha * epsilon - sigma * x0
        return x0

    def fingerprint(self) -> bytes:
        settings = struct.pack("<ddq", self.mean, self.std, self.patch_size) + self.prediction_type.encode()
        table = self.alphas_cumprod.numpy().tobytes()
        return hashlib.blake2b(b"gaussian-vp|" + settings + table, digest_size=FINGERPRINT_SIZE).digest()


def load_gaussian_vp_backbone(
    model: str | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    mean: float = 0.0,
    std: float = 1.0,
    patch_size: int = 1,
    prediction_type: str = "epsilon",
) -> GaussianVPBackbone:
    """Registry factory of the `"gaussian-vp"` backbone: no weights, float32, the [`GaussianVPBackbone`] settings as
    options."""
    _check_no_weights("gaussian-vp", model, dtype)
    return GaussianVPBackbone(mean, std, patch_size, prediction_type, device=device)


def _check_no_weights(name: str, model: str | None, dtype: torch.dtype | None) -> None:
    """`ValueError` for a model or a dtype other than float32 given to a backbone without weights."""
    if model is not None:
        raise ValueError(f"the {name!r} backbone has no weights to load, got model={model!r}")
    if dtype not in (None, torch.float32):
        raise ValueError(f"the {name!r} backbone computes in float32, got dtype={dtype}")
