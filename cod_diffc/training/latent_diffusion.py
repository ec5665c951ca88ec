"""`LatentDiffusionTrainer`: trains a conventional latent diffusion model of the Stable Diffusion family (a diffusers
`UNet2DModel` on a frozen `AutoencoderKL`, the DDPM objective on a discrete schedule) with the loop of [`Trainer`].

It exists for the A/B against CoD: trained on the same autoencoder latents, images, crops and budget as a latent
CoD, it differs from CoD in what CoD's paper says makes the difference (no compressed condition; the DDPM
objective instead of rectified flow). The objective: a training step `i` drawn uniformly from `0..T-1`,
`z_i = sqrt(alphas_cumprod[i]) * x0 + sqrt(1 - alphas_cumprod[i]) * noise`, and the MSE of the UNet's prediction of
`noise` (or of `v` for `prediction_type: v_prediction`). The export is a [`LatentDiffusionPipeline`] folder that the
`ldm` backbone loads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from torch import nn

from cod_diffc.evaluation.metrics import psnr
from cod_diffc.models.latent_space import images_to_latents, latents_to_images
from cod_diffc.models.vae_geometry import vae_downsampling
from cod_diffc.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from cod_diffc.schedulers.stable_diffusion_schedule import STABLE_DIFFUSION_SCHEDULE
from cod_diffc.training.components import check_constructor_keys
from cod_diffc.training.config import TrainConfig
from cod_diffc.training.export import save_atomically
from cod_diffc.training.seeds import derive_seed
from cod_diffc.training.trainer import Trainer


logger = logging.getLogger(__name__)


VALIDATION_TIMESTEPS = (250, 500)
"""Training steps at which validation reports the PSNR of the one-step estimate of the clean image."""


class DenoisingObjective(nn.Module):
    """
    A `UNet2DModel` and the DDPM loss on the discrete schedule `alphas_cumprod`.

    Parameters:
        unet (`UNet2DModel`): the denoiser being trained.
        alphas_cumprod (`torch.Tensor`): `(T,)` the schedule's cumulative products.
        prediction_type (`str`): `"epsilon"` or `"v_prediction"`.
    """

    def __init__(self, unet: UNet2DModel, alphas_cumprod: torch.Tensor, prediction_type: str):
        super().__init__()
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"model.noise_schedule.prediction_type must be epsilon or v_prediction, got {prediction_type!r}"
            )
        self.unet = unet
        self.prediction_type = prediction_type
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

    def noisy(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """`z_i = alpha_i * latents + sigma_i * noise` for integer `timesteps` `(B,)`."""
        alpha_squared = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        return alpha_squared.sqrt() * latents + (1 - alpha_squared).sqrt() * noise

    def forward(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> dict[str, torch.Tensor]:
        """`latents`, `noise`: `(B, C, h, w)`; `timesteps`: `(B,)` integer training steps."""
        output = self.unet(self.noisy(latents, noise, timesteps), timesteps).sample  # (B, C, h, w)
        target = noise
        if self.prediction_type == "v_prediction":
            alpha_squared = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
            target = alpha_squared.sqrt() * noise - (1 - alpha_squared).sqrt() * latents
        loss = F.mse_loss(output.float(), target.float())
        return {"loss": loss, "denoising": loss}


class LatentDiffusionTrainer(Trainer):
    """
    Trains the `UNet2DModel` of a [`TrainConfig`] with `model.kind: ldm` (`model.unet`: its arguments;
    `model.noise_schedule`: `DDPMScheduler` arguments over Stable Diffusion's scaled-linear schedule; `model.vae_path`:
    the frozen autoencoder; `model.vae_scaling_factor`: the latent scale, if not the VAE's own).

    Parameters:
        config ([`TrainConfig`]): the run.
        resume (`bool` or `str`, *optional*, defaults to `False`): see [`Trainer`].

    Examples:
        >>> from cod_diffc.training import LatentDiffusionTrainer, load_train_config
        >>> config = load_train_config("configs/train/ldm_small.yaml", ["run.max_steps=10"])
        >>> pipeline_dir = LatentDiffusionTrainer(config).train()  # doctest: +SKIP
    """

    export_dirname = "pipeline"
    training_model: DenoisingObjective

    def __init__(self, config: TrainConfig, resume: bool | str = False):
        self._ema_copy: UNet2DModel | None = None
        super().__init__(config, resume)

    @property
    def model_description(self) -> str:
        parameters = sum(parameter.numel() for parameter in self.training_model.unet.parameters())
        return f"a latent diffusion UNet2DModel ({parameters:,} parameters)"

    def build_training_model(self) -> DenoisingObjective:
        model = self.config.model
        check_constructor_keys("model.unet", model.unet, UNet2DModel)
        check_constructor_keys("model.noise_schedule", model.noise_schedule, DDPMScheduler)
        self.scheduler = DDPMScheduler(**{**STABLE_DIFFUSION_SCHEDULE, **model.noise_schedule})
        self.vae = load_frozen_vae(model.vae_path, model.vae_scaling_factor).to(self.accelerator.device)
        unet = UNet2DModel(**model.unet)
        channels = self.vae.config.latent_channels
        if not unet.config.in_channels == unet.config.out_channels == channels:
            raise ValueError(f"model.unet must map {channels} to {channels} channels, the VAE's latent channels")
        factor = vae_downsampling(self.vae)
        if self.config.data.resolution % factor:
            raise ValueError(
                f"data.resolution={self.config.data.resolution} must be a multiple of the VAE's downsampling {factor}"
            )
        self.latent_shape = (channels, self.config.data.resolution // factor, self.config.data.resolution // factor)
        if self.config.run.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        return DenoisingObjective(unet, self.scheduler.alphas_cumprod, self.scheduler.config.prediction_type)

    def ema_module(self) -> nn.Module:
        return self.training_model.unet

    def draw(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each sample's training step, noise and posterior noise, from its own generator keyed by the run's seed and
        its global position (resuming continues the same draws). Returns `(B,)` long, `(B, C, h, w)` twice."""
        device = self.accelerator.device
        steps, noises, posterior_noises = [], [], []
        for position in positions:
            generator = torch.Generator(device).manual_seed(derive_seed(self.config.run.seed, position, 3))
            steps.append(
                torch.randint(self.scheduler.config.num_train_timesteps, (), generator=generator, device=device)
            )
            noises.append(torch.randn(self.latent_shape, generator=generator, device=device))
            posterior_noises.append(torch.randn(self.latent_shape, generator=generator, device=device))
        return torch.stack(steps), torch.stack(noises), torch.stack(posterior_noises)

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        images = batch["image"].to(self.accelerator.device, non_blocking=True).float() / 255.0  # (b, 3, R, R)
        timesteps, noise, posterior_noise = self.draw(batch["position"].tolist())
        with torch.no_grad():
            latents = images_to_latents(self.vae, images, posterior_noise)  # (b, C, R/f, R/f)
        return self.model(latents, noise, timesteps)

    @torch.no_grad()
    def validate_ema(
        self, ema_state: dict[str, torch.Tensor], images: torch.Tensor
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        """PSNR of the one-step estimate of the clean image from the noisy latents at [`VALIDATION_TIMESTEPS`]
        (fixed noise): cheap, and it falls as the denoiser learns."""
        objective = DenoisingObjective(
            self._ema_unet(ema_state), self.training_model.alphas_cumprod, self.training_model.prediction_type
        )
        pixels = images.to(self.accelerator.device).float() / 255.0
        latents = images_to_latents(self.vae, pixels)
        generator = torch.Generator(latents.device).manual_seed(self.config.validation.seed)
        noise = torch.randn(latents.shape, generator=generator, device=latents.device)
        metrics, rows = {}, [images.cpu()]
        for step in VALIDATION_TIMESTEPS:
            timesteps = torch.full((latents.shape[0],), step, device=latents.device)
            estimate = one_step_estimate(objective, objective.noisy(latents, noise, timesteps), timesteps)
            decoded = (latents_to_images(self.vae, estimate) * 255).round().to(torch.uint8).cpu()
            metrics[f"psnr_x0_t{step}"] = float(
                np.mean([psnr(a.numpy(), b.numpy()) for a, b in zip(images.cpu(), decoded)])
            )
            rows.append(decoded)
        return metrics, rows

    def _ema_unet(self, ema_state: dict[str, torch.Tensor]) -> UNet2DModel:
        """A copy of the UNet (made once) holding the EMA weights."""
        if self._ema_copy is None:
            self._ema_copy = (
                UNet2DModel.from_config(self.training_model.unet.config).to(self.accelerator.device).eval()
            )
        self._ema_copy.load_state_dict(ema_state, strict=True)
        return self._ema_copy

    def export_ema(self, ema_state: dict[str, torch.Tensor], path: Path) -> None:
        pipeline = LatentDiffusionPipeline(unet=self._ema_unet(ema_state), vae=self.vae, scheduler=self.scheduler)
        save_atomically(pipeline, path)


def load_frozen_vae(path: str | None, scaling_factor: float | None) -> AutoencoderKL:
    """The frozen autoencoder of `model.vae_path`, in float32, with `scaling_factor` replacing its own if given."""
    if path is None:
        raise ValueError("model.vae_path is not set: a latent diffusion run needs the folder of its AutoencoderKL")
    if not Path(path).is_dir():
        raise FileNotFoundError(f"VAE directory {path} not found (model.vae_path)")
    vae = AutoencoderKL.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    if scaling_factor is not None:
        vae.register_to_config(scaling_factor=scaling_factor)
    return vae.requires_grad_(False).eval()


def one_step_estimate(objective: DenoisingObjective, noisy: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The clean latents the UNet's prediction at `timesteps` implies: `(z - sigma * eps_hat) / alpha`."""
    alpha_squared = objective.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    alpha, sigma = alpha_squared.sqrt(), (1 - alpha_squared).sqrt()
    output = objective.unet(noisy, timesteps).sample.float()
    if objective.prediction_type == "v_prediction":
        return alpha * noisy - sigma * output
    return (noisy - sigma * output) / alpha
