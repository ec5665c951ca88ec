"""`AutoencoderTrainer`: trains the `AutoencoderKL` a latent CoD model works in, with the loop of [`Trainer`].

The objective is the reconstruction MSE of a posterior sample plus `loss.kl` times the KL divergence of the posterior
from N(0, I) per latent element: a PSNR-oriented autoencoder whose latent stays near unit scale. The export is a
diffusers `AutoencoderKL` folder (`run.output_dir/vae`) that a latent CoD run names in `model.vae_path`, and that
ships as a `CodPipeline`'s `vae`. Its `scaling_factor` is set so that CoD's diffusion space (posterior samples times
`scaling_factor ** 2`, as in the release) has unit standard deviation on the validation images (a small sample: the
factor only needs to be about right).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.utils import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file
from torch import nn

from cod_diffc.evaluation.metrics import psnr
from cod_diffc.models.vae_geometry import vae_downsampling
from cod_diffc.training.components import check_constructor_keys
from cod_diffc.training.config import TrainConfig
from cod_diffc.training.export import save_atomically
from cod_diffc.training.seeds import derive_seed
from cod_diffc.training.trainer import Trainer


logger = logging.getLogger(__name__)


class AutoencoderObjective(nn.Module):
    """
    An `AutoencoderKL` and its training loss.

    Parameters:
        vae (`AutoencoderKL`): the autoencoder being trained.
        kl_weight (`float`): weight of the posterior's KL divergence from N(0, I), per latent element.
    """

    def __init__(self, vae: AutoencoderKL, kl_weight: float):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight

    def forward(self, pixels: torch.Tensor, posterior_noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """`pixels`: `(B, 3, R, R)` in [-1, 1]; `posterior_noise`: `(B, C, R/f, R/f)` standard normal."""
        posterior = self.vae.encode(pixels).latent_dist
        latents = posterior.mean + posterior.std * posterior_noise  # (B, C, R/f, R/f)
        reconstruction = self.vae.decode(latents).sample  # (B, 3, R, R)
        reconstruction_loss = F.mse_loss(reconstruction.float(), pixels.float())
        kl = posterior.kl().mean() / latents[0].numel()
        return {"loss": reconstruction_loss + self.kl_weight * kl, "reconstruction": reconstruction_loss, "kl": kl}


def build_autoencoder(arguments: dict) -> AutoencoderKL:
    """The `AutoencoderKL` of `model.autoencoder`; `ValueError` naming an argument it does not take."""
    check_constructor_keys("model.autoencoder", arguments, AutoencoderKL)
    return AutoencoderKL(**arguments)


@torch.no_grad()
def autoencode(vae: AutoencoderKL, images: torch.Tensor, batch_size: int) -> tuple[dict[str, float], torch.Tensor]:
    """Reconstructs `images` (`(N, 3, R, R)` uint8) from their posterior means.

    Returns:
        `({"psnr": mean PSNR (dB), "latent_std": standard deviation of posterior samples}, reconstructions)`, the
        reconstructions uint8 like `images`. The standard deviation is exact, from the posterior means and variances
        (`var(mean) + E[variance]`), not from drawn samples.
    """
    reconstructions, means, variances = [], [], []
    for start in range(0, images.shape[0], batch_size):
        pixels = images[start : start + batch_size].to(vae.device, torch.float32) / 127.5 - 1.0  # (B, 3, R, R)
        posterior = vae.encode(pixels).latent_dist
        decoded = vae.decode(posterior.mean).sample  # (B, 3, R, R)
        reconstructions.append(((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu())
        means.append(posterior.mean.float().cpu())  # (B, C, R/f, R/f)
        variances.append(posterior.var.float().cpu())
    reconstructed = torch.cat(reconstructions)
    scores = [psnr(a.numpy(), b.numpy()) for a, b in zip(images.cpu(), reconstructed)]
    sample_variance = torch.cat(means).var() + torch.cat(variances).mean()
    return {"psnr": float(np.mean(scores)), "latent_std": float(sample_variance.sqrt())}, reconstructed


class AutoencoderTrainer(Trainer):
    """
    Trains an `AutoencoderKL` described by a [`TrainConfig`] with `model.kind: autoencoder`.

    Parameters:
        config ([`TrainConfig`]): the run (`model.autoencoder` holds the `AutoencoderKL` arguments, `loss.kl` the
            KL weight; the CoD keys of `model` and `loss` are refused).
        resume (`bool` or `str`, *optional*, defaults to `False`): see [`Trainer`].

    Examples:
        >>> from cod_diffc.training import AutoencoderTrainer, load_train_config
        >>> config = load_train_config("configs/train/embedded_vae.yaml", ["run.max_steps=10"])
        >>> vae_dir = AutoencoderTrainer(config).train()  # doctest: +SKIP
    """

    export_dirname = "vae"
    training_model: AutoencoderObjective

    def __init__(self, config: TrainConfig, resume: bool | str = False):
        self._ema_vae: AutoencoderKL | None = None
        super().__init__(config, resume)

    @property
    def model_description(self) -> str:
        arguments = ", ".join(f"{key}={value}" for key, value in self.config.model.autoencoder.items())
        return f"AutoencoderKL({arguments})"

    def build_training_model(self) -> AutoencoderObjective:
        vae = build_autoencoder(self.config.model.autoencoder)
        factor = vae_downsampling(vae)
        if self.config.data.resolution % factor:
            raise ValueError(
                f"data.resolution={self.config.data.resolution} must be a multiple of the autoencoder's "
                f"downsampling factor {factor}"
            )
        side = self.config.data.resolution // factor
        self.latent_shape = (vae.config.latent_channels, side, side)
        if self.config.run.gradient_checkpointing:
            vae.enable_gradient_checkpointing()
        return AutoencoderObjective(vae, self.config.loss.kl)

    def read_init_weights(self, path: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Path]:
        """Also accepts a saved `AutoencoderKL` folder (an export such as `runs/embedded_vae/vae`, in any dtype):
        its weights start both the model and the average."""
        folder = Path(path)
        weights_file = folder / SAFETENSORS_WEIGHTS_NAME
        if not (folder / CONFIG_NAME).is_file() or not weights_file.is_file():
            return super().read_init_weights(path)
        weights = {name: value.float() for name, value in load_file(str(weights_file)).items()}  # as ema_module's
        return {f"vae.{name}": value for name, value in weights.items()}, weights, folder

    def ema_module(self) -> nn.Module:
        return self.training_model.vae

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = self.accelerator.device
        pixels = batch["image"].to(device, non_blocking=True).float() / 127.5 - 1.0  # (b, 3, R, R)
        noise = []  # one generator per sample, keyed by its global position: resuming continues the same draws
        for position in batch["position"].tolist():
            generator = torch.Generator(device).manual_seed(derive_seed(self.config.run.seed, position, 2))
            noise.append(torch.randn(self.latent_shape, generator=generator, device=device))
        return self.model(pixels, torch.stack(noise))

    def _ema_autoencoder(self, ema_state: dict[str, torch.Tensor]) -> AutoencoderKL:
        """A copy of the autoencoder (made once) holding the EMA weights."""
        if self._ema_vae is None:
            self._ema_vae = AutoencoderKL.from_config(self.training_model.vae.config).to(self.accelerator.device)
            self._ema_vae.eval()
        self._ema_vae.load_state_dict(ema_state, strict=True)
        return self._ema_vae

    def validate_ema(
        self, ema_state: dict[str, torch.Tensor], images: torch.Tensor
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        """PSNR of the reconstructions from the posterior means, and the latents' standard deviation."""
        metrics, reconstructions = autoencode(
            self._ema_autoencoder(ema_state), images, self.config.validation.batch_size
        )
        return metrics, [images.cpu(), reconstructions]

    def export_ema(self, ema_state: dict[str, torch.Tensor], path: Path) -> None:
        vae = self._ema_autoencoder(ema_state)
        metrics, _ = autoencode(vae, self.validation_images(), self.config.validation.batch_size)
        vae.register_to_config(scaling_factor=metrics["latent_std"] ** -0.5)  # latent_std * sf**2 = 1
        save_atomically(vae, path)
        logger.info(
            "autoencoder at step %d: %.2f dB on the validation images, scaling_factor %.4f",
            self.step,
            metrics["psnr"],
            vae.config.scaling_factor,
        )
