"""The geometry of a diffusers `AutoencoderKL`: how many pixels one latent position covers."""

from diffusers import AutoencoderKL


def vae_downsampling(vae: AutoencoderKL) -> int:
    """Pixels per latent position along each side: the encoder halves the resolution after every block but the last."""
    return 2 ** (len(vae.config.block_out_channels) - 1)
