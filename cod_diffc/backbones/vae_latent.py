"""The image side of backbones whose denoiser works on `AutoencoderKL` latents in the Stable Diffusion convention
(`latents = posterior mean x scaling_factor`, [`~cod_diffc.models.latent_space`]): Stable Diffusion, `ldm`."""

import torch
from diffusers import AutoencoderKL

from cod_diffc.models.latent_space import images_to_latents, latents_to_images
from cod_diffc.models.vae_geometry import vae_downsampling

from .resources import vae_decode_bytes_per_pixel


class VaeLatentAdapterMixin:
    """
    `size_multiple`, `latent_shape`, `encode_image`, `decode_latent` and `working_memory_bytes` of a
    [`~backbones.adapter.BackboneAdapter`] from its float32 `vae`.

    `encode_image` takes the *mean* of the VAE's posterior, not a sample: the clean latent must be a deterministic
    function of the image.
    """

    name: str
    vae: AutoencoderKL
    device: torch.device

    @property
    def size_multiple(self) -> int:
        return vae_downsampling(self.vae)

    def working_memory_bytes(self, height: int, width: int) -> int:
        """The VAE decode at full resolution dominates (the denoiser runs on a latent many times smaller)."""
        return height * width * vae_decode_bytes_per_pixel(self.vae.config.block_out_channels)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = self.size_multiple  # the VAE's downsampling, or a multiple of it
        if height < 1 or width < 1 or height % factor or width % factor:
            raise ValueError(
                f"the {self.name} backbone needs image sides that are positive multiples of {factor}, got "
                f"{height}x{width}"
            )
        downsampling = vae_downsampling(self.vae)
        return self.vae.config.latent_channels, height // downsampling, width // downsampling

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return images_to_latents(self.vae, image.to(self.device, torch.float32))  # (1, C, h, w)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        return latents_to_images(self.vae, latent.to(self.device, torch.float32))  # (1, 3, H, W)
