"""The components a training run starts from: a named configuration plus constructor overrides."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusers import AutoencoderKL

from cod_diffc.models import cod_diffusion_space
from cod_diffc.models.condition_codec_cod import CONDITION_STRIDE, CodConditionCodec
from cod_diffc.models.transformer_cod import CodTransformer2DModel
from cod_diffc.pipelines.named_configs import get_named_config
from cod_diffc.training.config import ModelConfig


@dataclass
class CodComponents:
    """
    The freshly built components of a run.

    Args:
        transformer: the denoiser, randomly initialised.
        condition_codec: the condition codec, randomly initialised.
        vae: the frozen autoencoder of a latent model, `None` in pixel space.
        guidance_scale: the classifier-free guidance for validation and export.
    """

    transformer: CodTransformer2DModel
    condition_codec: CodConditionCodec
    vae: AutoencoderKL | None
    guidance_scale: float

    def sample_shape(self, resolution: int) -> tuple[int, int, int]:
        """Shape `(C, h, w)` of the diffusion space for square images of side `resolution`."""
        return cod_diffusion_space.sample_shape(self.vae, resolution, resolution)

    def check_resolution(self, resolution: int) -> None:
        """`ValueError` unless square images of side `resolution` fit the codec, the VAE and the patch size."""
        stride = self.condition_codec.code_stride
        if resolution % stride or resolution % CONDITION_STRIDE:
            raise ValueError(
                f"data.resolution={resolution} must be a multiple of the codec's code stride {stride} and of "
                f"{CONDITION_STRIDE}"
            )
        _, height, _ = self.sample_shape(resolution)
        patch_size = self.transformer.config.patch_size
        if height % patch_size or height // patch_size != resolution // CONDITION_STRIDE:
            raise ValueError(
                f"at data.resolution={resolution} the diffusion space ({height} px, patch {patch_size}) does not "
                f"give the condition's {resolution // CONDITION_STRIDE}x{resolution // CONDITION_STRIDE} token grid"
            )


def check_constructor_keys(section: str, overrides: dict[str, Any], model_class: type) -> None:
    """`ValueError` naming the keys of `overrides` (configuration `section`) that `model_class` does not take."""
    parameters = [name for name in inspect.signature(model_class.__init__).parameters if name != "self"]
    unknown = sorted(set(overrides) - set(parameters))
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(f'{section}.{key}' for key in unknown)}; {model_class.__name__} takes "
            f"{', '.join(parameters)}"
        )


def build_components(config: ModelConfig) -> CodComponents:
    """Builds the transformer and the codec of `config.named_config` with the overrides, and loads the VAE.

    The codec's `condition_channels` follows the transformer's `hidden_size` unless set; set to another value it is
    an error. Seed the global RNG first for a reproducible initialisation.
    """
    named = get_named_config(config.named_config)
    check_constructor_keys("model.transformer", config.transformer, CodTransformer2DModel)
    check_constructor_keys("model.condition_codec", config.condition_codec, CodConditionCodec)
    transformer_kwargs = {**named.transformer, **config.transformer}
    codec_kwargs = {**named.condition_codec, **config.condition_codec}
    transformer = CodTransformer2DModel(**transformer_kwargs)
    hidden_size = transformer.config.hidden_size
    if "condition_channels" in config.condition_codec and config.condition_codec["condition_channels"] != hidden_size:
        raise ValueError(
            f"model.condition_codec.condition_channels ({config.condition_codec['condition_channels']}) must equal "
            f"the transformer's hidden_size ({hidden_size})"
        )
    codec_kwargs["condition_channels"] = hidden_size
    condition_codec = CodConditionCodec(**codec_kwargs)

    latent = transformer.config.in_channels != 3
    vae = None
    if latent:
        if config.vae_path is None:
            hint = f" (the release uses {named.vae_pretrained})" if named.vae_pretrained else ""
            raise ValueError(f"{config.named_config} is a latent model: set model.vae_path to a local VAE{hint}")
        if not Path(config.vae_path).is_dir():
            raise FileNotFoundError(f"VAE directory {config.vae_path} not found (model.vae_path)")
        vae = AutoencoderKL.from_pretrained(config.vae_path, local_files_only=True)
        vae.requires_grad_(False).eval()
        if vae.config.latent_channels != transformer.config.in_channels:
            raise ValueError(
                f"the VAE has {vae.config.latent_channels} latent channels, the transformer takes "
                f"{transformer.config.in_channels}"
            )
    elif config.vae_path is not None:
        raise ValueError(f"{config.named_config} is a pixel-space model: remove model.vae_path")

    guidance_scale = named.default_guidance_scale if config.guidance_scale is None else config.guidance_scale
    return CodComponents(transformer, condition_codec, vae, guidance_scale)
