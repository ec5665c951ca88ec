"""`LatentDiffusionPipeline`: an unconditional latent diffusion model of the Stable Diffusion family (a diffusers
`UNet2DModel` on the latents of an `AutoencoderKL`, trained on a discrete DDPM schedule), such as `ldm-small`."""

from __future__ import annotations

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, ImagePipelineOutput, UNet2DModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from cod_diffc.models.latent_space import latents_to_images
from cod_diffc.models.vae_geometry import unet_downsampling, vae_downsampling
from cod_diffc.pipelines.portable_save import PortableSaveMixin


class LatentDiffusionPipeline(PortableSaveMixin, DiffusionPipeline):
    r"""
    Unconditional latent diffusion: `UNet2DModel` denoises `vae` latents scaled by the VAE's `scaling_factor` (the
    diffusers convention: `latents = posterior * scaling_factor`, about unit variance), on the discrete VP schedule of
    `scheduler` (`alphas_cumprod`, epsilon- or v-prediction).

    Calling it samples images from noise with the scheduler's own sampler; the codecs of the library use the model
    through the `ldm` backbone instead ([`~backbones.latent_diffusion.LatentDiffusionAdapter`]).

    Parameters:
        unet ([`UNet2DModel`]): the denoiser; its `in_channels` and `out_channels` are the VAE's `latent_channels`.
        vae ([`AutoencoderKL`]): the autoencoder whose latents the UNet denoises.
        scheduler ([`SchedulerMixin`]): a diffusers scheduler with `alphas_cumprod` (DDPM, DDIM, ...).
    """

    model_cpu_offload_seq = "unet->vae"

    def __init__(self, unet: UNet2DModel, vae: AutoencoderKL, scheduler: SchedulerMixin):
        super().__init__()
        channels = vae.config.latent_channels
        if not unet.config.in_channels == unet.config.out_channels == channels:
            raise ValueError(
                f"the UNet maps {unet.config.in_channels} to {unet.config.out_channels} channels, but the VAE's latent "
                f"has {channels}"
            )
        self.register_modules(unet=unet, vae=vae, scheduler=scheduler)

    @torch.no_grad()
    def __call__(
        self,
        batch_size: int = 1,
        height: int = 128,
        width: int = 128,
        num_inference_steps: int = 50,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        r"""
        Samples `batch_size` images.

        Args:
            batch_size (`int`, defaults to 1): how many images.
            height, width (`int`, default to 128): image size, multiples of the VAE's downsampling factor times the
                UNet's.
            num_inference_steps (`int`, defaults to 50): sampler steps.
            generator (`torch.Generator`, *optional*): for reproducible noise.
            output_type (`str`, defaults to `"pil"`): `"pil"`, `"np"` (`(B, H, W, 3)` float32 in [0, 1]) or `"pt"`
                (`(B, 3, H, W)` float32 in [0, 1]).
            return_dict (`bool`, defaults to `True`): return an `ImagePipelineOutput` rather than a tuple.
        """
        factor = vae_downsampling(self.vae) * unet_downsampling(self.unet)
        if height % factor or width % factor or height < 1 or width < 1:
            raise ValueError(f"height and width must be positive multiples of {factor}, got {height}x{width}")
        latent_factor = vae_downsampling(self.vae)
        shape = (batch_size, self.unet.config.in_channels, height // latent_factor, width // latent_factor)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        latents = latents * self.scheduler.init_noise_sigma
        for timestep in self.progress_bar(self.scheduler.timesteps):
            model_input = self.scheduler.scale_model_input(latents, timestep)
            output = self.unet(model_input, timestep).sample  # (B, C, h, w)
            latents = self.scheduler.step(output, timestep, latents, generator=generator).prev_sample
        images = latents_to_images(self.vae, latents)  # (B, 3, H, W)
        if output_type == "pt":
            result = images
        elif output_type in ("np", "pil"):
            result = images.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)  # (B, H, W, 3)
            if output_type == "pil":
                result = [PIL.Image.fromarray((image * 255).round().astype(np.uint8)) for image in result]
        else:
            raise ValueError(f"output_type must be 'pil', 'np' or 'pt', got {output_type!r}")
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=result) if return_dict else (result,)
