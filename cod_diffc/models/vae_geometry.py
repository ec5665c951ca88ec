"""The geometry of diffusers autoencoders and UNets: how many pixels one latent position covers, and the multiple a
UNet needs its input sides to be."""

from diffusers import AutoencoderKL, UNet2DModel


def vae_downsampling(vae: AutoencoderKL) -> int:
    """Pixels per latent position along each side: the encoder halves the resolution after every block but the last."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def unet_downsampling(unet: UNet2DModel) -> int:
    """The multiple a `UNet2DModel`'s input sides must be: it halves them after every down block but the last, and
    its skip connections need the halves to be whole."""
    return 2 ** (len(unet.config.down_block_types) - 1)
