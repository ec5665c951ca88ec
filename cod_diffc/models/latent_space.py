"""The latent space of the Stable Diffusion family: images in [0, 1] ↔ `AutoencoderKL` latents times the VAE's
`scaling_factor` (the diffusers convention; CoD scales by `scaling_factor ** 2` instead, see `CodPipeline`).

One owner for the convention: the `sd` and `ldm` backbones code through it and `cod-diffc train` (`model.kind: ldm`)
trains through it, so training and coding cannot drift apart.
"""

import torch
from diffusers import AutoencoderKL


def images_to_latents(
    vae: AutoencoderKL, images: torch.Tensor, posterior_noise: torch.Tensor | None = None
) -> torch.Tensor:
    """`(B, 3, H, W)` images in [0, 1] → `(B, C, H/f, W/f)` float32 latents times `scaling_factor`.

    Without `posterior_noise` the posterior *mean* (a deterministic function of the image, what a codec needs);
    with it (standard normal, the latents' shape) the posterior sample `mean + std * posterior_noise` that training
    takes.
    """
    pixels = (2 * images - 1).to(vae.device, vae.dtype)
    posterior = vae.encode(pixels).latent_dist
    latents = posterior.mean
    if posterior_noise is not None:
        latents = latents + posterior.std * posterior_noise.to(latents.dtype)
    return latents.float() * vae.config.scaling_factor


def latents_to_images(vae: AutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """`(B, C, h, w)` latents times `scaling_factor` → `(B, 3, h*f, w*f)` float32 images clamped to [0, 1]."""
    decoded = vae.decode((latents / vae.config.scaling_factor).to(vae.device, vae.dtype)).sample
    return ((decoded.float() + 1) / 2).clamp(0, 1)
