"""Tiny random models built from real classes and saved the way users save them, shared by the tests."""

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
    UNet2DModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from cod_diffc import CodLitePipeline, CodPipeline
from cod_diffc.pipelines.named_configs import get_named_config
from cod_diffc.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline


SD_IMAGE_SIZE = 32  # the tiny VAE downsamples by 8, like SD's: 4x4 latents


def save_tiny_cod(path: Path, seed: int, name: str = "cod-pixel-tiny") -> Path:
    """A tiny CoD or CoD-Lite pipeline of the named configuration, saved under `path`."""
    torch.manual_seed(seed)
    pipeline_class = CodLitePipeline if get_named_config(name).pipeline == "CodLitePipeline" else CodPipeline
    pipe = pipeline_class.from_named_config(name)
    with torch.no_grad():  # fresh CoD output layers are zero; give the tiny model non-trivial outputs
        for parameter in [*pipe.transformer.parameters(), *pipe.condition_codec.parameters()]:
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
    pipe.save_pretrained(path)
    return path


def tiny_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over single letters, plus the merges that make "cat" one token."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in "abcdefghijklmnopqrstuvwxyz":
        vocab[letter] = len(vocab)
        vocab[letter + "</w>"] = len(vocab)
    vocab["ca"], vocab["cat</w>"] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=[("c", "a"), ("ca", "t</w>")], model_max_length=32)


def save_tiny_sd_pipeline(directory: Path, prediction_type: str) -> Path:
    """A randomly initialised Stable Diffusion pipeline of tiny real components, saved in the diffusers layout."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=4,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=4,
    )
    vae = tiny_sd_vae()
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction_type,
        skip_prk_steps=True,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(directory)
    return directory


def tiny_sd_vae() -> AutoencoderKL:
    """A randomly initialised `AutoencoderKL` that downsamples by 8, like Stable Diffusion's."""
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(4, 4, 4, 4),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=SD_IMAGE_SIZE,
    )


TINY_LDM_UNET = {
    "sample_size": 4,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "attention_head_dim": 8,
    "norm_num_groups": 4,
}
"""The arguments of a tiny latent diffusion `UNet2DModel` on `tiny_sd_vae` latents."""


def save_tiny_ldm_pipeline(directory: Path, prediction_type: str = "epsilon") -> Path:
    """A randomly initialised `LatentDiffusionPipeline` of tiny real components, saved as training exports it."""
    torch.manual_seed(0)
    scheduler = DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type=prediction_type
    )
    LatentDiffusionPipeline(UNet2DModel(**TINY_LDM_UNET), tiny_sd_vae(), scheduler).save_pretrained(directory)
    return directory
