"""CoD's diffusion space, the one definition that `CodPipeline` (and through it every codec on the `cod` backbone)
and `cod-diffc train` share, so that training and inference cannot drift apart.

Pixel CoD denoises pixels in [-1, 1]. Latent CoD denoises `AutoencoderKL` latents times `scaling_factor ** 2`: the
release scales them twice (once in its VAE wrapper, once in the model), and its models are trained on that scale. The
Stable Diffusion family scales once ([`~cod_diffc.models.latent_space`]).
"""

import torch
from diffusers import AutoencoderKL

from cod_diffc.models.vae_geometry import vae_downsampling


def latent_scale(vae: AutoencoderKL | None) -> float:
    """Factor between the VAE's raw latents and CoD's diffusion space: `scaling_factor ** 2`, 1 in pixel space."""
    return 1.0 if vae is None else float(vae.config.scaling_factor) ** 2


def sample_shape(vae: AutoencoderKL | None, height: int, width: int) -> tuple[int, int, int]:
    """Shape `(C, h, w)` of the diffusion space for an image of `height x width` pixels."""
    if vae is None:
        return (3, height, width)
    factor = vae_downsampling(vae)
    return (vae.config.latent_channels, height // factor, width // factor)


def images_to_samples(
    vae: AutoencoderKL | None, images: torch.Tensor, posterior_noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Images `(B, 3, H, W)` in [0, 1] → diffusion-space samples `(B, *sample_shape)`, in the VAE's dtype.

    Latent models take the posterior mean, or with `posterior_noise` (standard normal, the samples' shape) the
    posterior sample `mean + std * posterior_noise`, as the release trains on.
    """
    pixels = 2.0 * images - 1.0
    if vae is None:
        return pixels
    posterior = vae.encode(pixels.to(vae.dtype)).latent_dist
    latents = posterior.mean
    if posterior_noise is not None:
        latents = latents + posterior.std * posterior_noise.to(device=latents.device, dtype=latents.dtype)
    return latents * latent_scale(vae)


def samples_to_images(vae: AutoencoderKL | None, samples: torch.Tensor) -> torch.Tensor:
    """Diffusion-space samples → images `(B, 3, H, W)` in [-1, 1] (not clipped), in the VAE's dtype."""
    if vae is None:
        return samples
    return vae.decode((samples / latent_scale(vae)).to(vae.dtype)).sample
