"""Named CoD and CoD-Lite configurations: the released sizes, and tiny ones for tests and quick looks.

`NAMED_CONFIGS` maps a name to the constructor arguments of each component; the CLI takes its `choices` from it and
[`CodPipeline.from_named_config`] builds a (randomly initialised) pipeline from it. Released weights are loaded with
`cod-diffc convert` / [`CodPipeline.from_pretrained`], not from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CodNamedConfig:
    """
    One CoD configuration.

    Args:
        description: one line for listings.
        condition_codec: keyword arguments of [`CodConditionCodec`].
        transformer: keyword arguments of the pipeline's denoiser ([`CodTransformer2DModel`] or
            [`CodLiteDenoiserModel`]).
        default_guidance_scale: the classifier-free guidance weight the release uses for this model.
        vae: keyword arguments of a random [`diffusers.AutoencoderKL`] for tiny latent configs; `None` otherwise.
        vae_pretrained: the hub id of the autoencoder a released latent model needs (passed in by the user).
        image_size: the side the model was made for (the released models: 512).
        pipeline: the pipeline class the configuration is for ([`CodPipeline`] or [`CodLitePipeline`]).
        scheduler: keyword arguments of its [`CodFlowMatchScheduler`] (the release's sampler of that model).
    """

    description: str
    condition_codec: dict[str, Any]
    transformer: dict[str, Any]
    default_guidance_scale: float
    vae: dict[str, Any] | None = None
    vae_pretrained: str | None = None
    image_size: int = 512
    pipeline: str = "CodPipeline"
    scheduler: dict[str, Any] = field(default_factory=dict)

    @property
    def is_latent(self) -> bool:
        return self.transformer.get("in_channels", 3) != 3


_RELEASED_LATENT_TRANSFORMER = {
    "in_channels": 4,
    "patch_size": 2,
    "num_layers": 22,
    "num_head_layers": 6,
    "head_type": "latent",
}
# The official code hard-codes codebook dim 128, encoder width 128 and 32 GroupNorm groups; the tiny
# configurations shrink them the way the reference vectors of `shared/reference/cod_official` were made.
_TINY_CODEC = {"base_channels": 8, "codebook_dim": 8, "norm_num_groups": 4, "condition_channels": 32}
_TINY_TRANSFORMER = {"hidden_size": 32, "num_attention_heads": 2, "num_layers": 2, "num_head_layers": 1}
_TINY_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 8, 8, 8],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 64,
    "scaling_factor": 0.18215,
}

# CoD-Lite: CoD's condition codec with a light decoder and windowed inference attention, and the convolutional
# denoiser; the release samples with 100 Euler steps (guidance 3.0 for 0.1 < t < 1 in its time, as CoD).
_COD_LITE_CODEC = {"light_decoder": True, "attention_window": 32}
_COD_LITE_SCHEDULER = {"solver_order": 1, "last_step_size": 0.04}

NAMED_CONFIGS: dict[str, CodNamedConfig] = {
    "cod-pixel-xl": CodNamedConfig(
        description="released pixel CoD (CoD_pixel_vpred.pt): 0.0039 bpp condition, 26+4 blocks, C 1152",
        condition_codec={},
        transformer={},
        default_guidance_scale=3.0,
    ),
    "cod-latent-xl": CodNamedConfig(
        description="released latent CoD (CoD_latent_vpred.pt): 0.0039 bpp condition, 22+6 blocks on the SD VAE",
        condition_codec={},
        transformer=_RELEASED_LATENT_TRANSFORMER,
        default_guidance_scale=1.25,
        vae_pretrained="stabilityai/sd-vae-ft-ema",
    ),
    "cod-latent-64bits-xl": CodNamedConfig(
        description="released 64-bit latent CoD (CoD_latent_vpred_64bits.pt): 64 bits per 512x512 image",
        condition_codec={"downsampling": 128},
        transformer=_RELEASED_LATENT_TRANSFORMER,
        default_guidance_scale=3.0,
        vae_pretrained="stabilityai/sd-vae-ft-ema",
    ),
    "cod-pixel-tiny": CodNamedConfig(
        description="tiny pixel CoD (random weights) for tests; the sizes of the official reference vectors",
        condition_codec=_TINY_CODEC,
        transformer={**_TINY_TRANSFORMER, "head_hidden_size": 16, "head_mlp_ratio": 2},
        default_guidance_scale=3.0,
        image_size=64,
    ),
    "cod-latent-tiny": CodNamedConfig(
        description="tiny latent CoD (random weights, tiny random VAE) for tests",
        condition_codec=_TINY_CODEC,
        transformer={**_TINY_TRANSFORMER, "in_channels": 4, "patch_size": 2, "head_type": "latent"},
        default_guidance_scale=1.25,
        vae=_TINY_VAE,
        image_size=64,
    ),
    "cod-lite-xl": CodNamedConfig(
        description="released CoD-Lite (CoD_Lite_pretrain.pt): 0.0039 bpp condition, 21 DiCo + 3 head blocks, C 384",
        condition_codec={**_COD_LITE_CODEC, "condition_channels": 384},
        transformer={},
        default_guidance_scale=3.0,
        pipeline="CodLitePipeline",
        scheduler=_COD_LITE_SCHEDULER,
    ),
    "cod-lite-tiny": CodNamedConfig(
        description="tiny CoD-Lite (random weights) for tests; the sizes of the official reference vectors",
        condition_codec={**_TINY_CODEC, **_COD_LITE_CODEC},
        transformer={
            "hidden_size": 32,
            "hidden_size_x": 8,
            "bottleneck_dim": 16,
            "num_backbone_blocks": 2,
            "num_head_blocks": 2,
        },
        default_guidance_scale=3.0,
        image_size=64,
        pipeline="CodLitePipeline",
        scheduler=_COD_LITE_SCHEDULER,
    ),
}


def get_named_config(name: str) -> CodNamedConfig:
    """The configuration called `name`; `ValueError` listing the known names otherwise."""
    try:
        return NAMED_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown CoD configuration {name!r}; known: {', '.join(NAMED_CONFIGS)}") from None
