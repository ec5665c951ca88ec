"""Map the released CoD-Lite checkpoints (microsoft/GenCodec `CoD_Lite/`) onto our classes: the denoiser and the
condition codec, and the [`CodLitePipeline`] they make.

A CoD-Lite checkpoint holds one network: the pretrained model under `ema_denoiser.`, a one-step codec under `net.`
(other groups, such as the online weights, training heads and the one-step codec's teacher and critic, are
ignored). Under `y_embedder.{encoder,bottleneck,decoder}` sits the condition codec, CoD's (a
[`CodConditionCodec`] with CoD-Lite's light decoder, downsampling 4 to 32 and windowed inference attention), whose
keys the CoD key map translates; every other key is the denoiser's, whose module names [`CodLiteDenoiserModel`]
keeps. Conversion is strict ([`~conversion.official.check_against_model`]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from cod_diffc.models.condition_codec_cod import CodConditionCodec
from cod_diffc.models.denoiser_cod_lite import CodLiteDenoiserModel

from .cod_lite_releases import RELEASED_CHECKPOINTS
from .official import check_against_model, convert_state_dict, extract_ema_denoiser


if TYPE_CHECKING:
    from cod_diffc.pipelines import CodLitePipeline


CHECKPOINT_PREFIXES = {"pretrain": "ema_denoiser.", "onestep": "net."}
"""Where each kind of released checkpoint keeps its network."""

CODEC_PREFIXES = ("y_embedder.encoder.", "y_embedder.bottleneck.", "y_embedder.decoder.")
"""The condition codec's keys inside the network (`y_embedder_x` is the denoiser's)."""

ATTENTION_WINDOW = 32
"""Side of the tiles the codec's attention works in at inference on larger maps."""

RELEASED_CODEC_CONSTANTS = {"GN_GROUPS": 32, "ENC_CH": 128, "CB_DIM": 128}
"""What the official codec hard-codes: GroupNorm groups, encoder width, codebook dimension."""


def convert_cod_lite(
    checkpoint: Mapping[str, object],
    variant: str,
    init_args: Mapping[str, Any] | None = None,
    constants: Mapping[str, int] = RELEASED_CODEC_CONSTANTS,
) -> CodLitePipeline:
    """A [`CodLitePipeline`] (float32, the release's sampler and guidance) of a checkpoint of a released `variant`
    (a key of `RELEASED_CHECKPOINTS`), built from the released `init_args` or from those of its config.

    Raises:
        `ValueError`: For an unknown variant, or a config whose rate is not the variant's.
        [`~conversion.official.CheckpointConversionError`]: For a checkpoint that does not fill the model exactly.
    """
    from cod_diffc.pipelines import CodLitePipeline, get_named_config
    from cod_diffc.schedulers import CodFlowMatchScheduler

    if variant not in RELEASED_CHECKPOINTS:
        raise ValueError(f"unknown CoD-Lite variant {variant!r}; expected one of {', '.join(RELEASED_CHECKPOINTS)}")
    released = RELEASED_CHECKPOINTS[variant]
    init_args = released.init_args if init_args is None else init_args
    rate = (init_args.get("ds", 32), init_args.get("codebook_bits", 4))
    if rate != (released.downsampling, released.codebook_bits):
        raise ValueError(
            f"the config describes a codec with downsampling {rate[0]} and {rate[1]} bits, but {variant} has "
            f"downsampling {released.downsampling} and {released.codebook_bits} bits"
        )
    named = get_named_config("cod-lite-xl")
    return CodLitePipeline(
        transformer=load_denoiser(checkpoint, init_args, released.kind),
        condition_codec=load_codec(checkpoint, init_args, released.kind, constants),
        scheduler=CodFlowMatchScheduler(**named.scheduler),
        default_guidance_scale=named.default_guidance_scale,
    )


def denoiser_config(init_args: Mapping[str, Any]) -> dict[str, Any]:
    """[`CodLiteDenoiserModel`] arguments from the official `init_args` (`num_cond_blocks` DiCo blocks, the other
    `num_blocks - num_cond_blocks` in the head); `ValueError` for a variant our class does not implement."""
    if init_args.get("pred", "x") != "x":
        raise ValueError(f"CoD-Lite predicts x; this checkpoint's config says pred={init_args['pred']!r}")
    return {
        "in_channels": init_args.get("in_channels", 3),
        "patch_size": init_args.get("patch_size", 16),
        "hidden_size": init_args["hidden_size"],
        "hidden_size_x": init_args["hidden_size_x"],
        "bottleneck_dim": init_args.get("bottleneck_dim", 128),
        "num_backbone_blocks": init_args["num_cond_blocks"],
        "num_head_blocks": init_args["num_blocks"] - init_args["num_cond_blocks"],
        "mlp_ratio": init_args.get("mlp_ratio", 4.0),
    }


def codec_config(
    init_args: Mapping[str, Any], constants: Mapping[str, int] = RELEASED_CODEC_CONSTANTS
) -> dict[str, Any]:
    """[`CodConditionCodec`] arguments of a CoD-Lite network from its `init_args` and the codec's constants (the
    released ones unless a build patched them, as the tiny reference models do)."""
    return {
        "base_channels": constants["ENC_CH"],
        "codebook_dim": constants["CB_DIM"],
        "norm_num_groups": constants["GN_GROUPS"],
        "codebook_bits": init_args.get("codebook_bits", 4),
        "downsampling": init_args.get("ds", 32),
        "up2x": init_args.get("up2x", True),
        "condition_channels": init_args["hidden_size"],
        "light_decoder": init_args.get("light", True),
        "attention_window": ATTENTION_WINDOW,
    }


def split_network(weights: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """`(denoiser, condition codec)` state dicts of a network's weights (prefix already stripped)."""
    denoiser = {key: value for key, value in weights.items() if not key.startswith(CODEC_PREFIXES)}
    codec = {key: value for key, value in weights.items() if key.startswith(CODEC_PREFIXES)}
    return denoiser, codec


def load_denoiser(
    checkpoint: Mapping[str, object], init_args: Mapping[str, Any], kind: str = "pretrain"
) -> CodLiteDenoiserModel:
    """The [`CodLiteDenoiserModel`] of a CoD-Lite checkpoint of `kind` ("pretrain" or "onestep"), in float32.

    Raises:
        [`~conversion.official.CheckpointConversionError`]: For a checkpoint whose tensors do not fill the model
            that `init_args` describe exactly (another variant, another config).
    """
    weights, _ = split_network(_network(checkpoint, kind))
    model = CodLiteDenoiserModel(**denoiser_config(init_args))
    check_against_model(weights, model, "CoD-Lite denoiser")
    model.load_state_dict({key: value.float() for key, value in weights.items()}, strict=True)
    return model.eval()


def load_codec(
    checkpoint: Mapping[str, object],
    init_args: Mapping[str, Any],
    kind: str = "pretrain",
    constants: Mapping[str, int] = RELEASED_CODEC_CONSTANTS,
) -> CodConditionCodec:
    """The [`CodConditionCodec`] of a CoD-Lite checkpoint, in float32; the same errors as [`load_denoiser`]."""
    _, weights = split_network(_network(checkpoint, kind))
    converted = convert_state_dict(weights)["condition_codec"]
    codec = CodConditionCodec(**codec_config(init_args, constants))
    check_against_model(converted, codec, "CoD-Lite condition codec")
    codec.load_state_dict({key: value.float() for key, value in converted.items()}, strict=True)
    return codec.eval()


def _network(checkpoint: Mapping[str, object], kind: str) -> dict[str, torch.Tensor]:
    """The network's tensors of a checkpoint of `kind`, prefix stripped."""
    if kind not in CHECKPOINT_PREFIXES:
        raise ValueError(
            f"unknown CoD-Lite checkpoint kind {kind!r}; expected one of {', '.join(CHECKPOINT_PREFIXES)}"
        )
    return extract_ema_denoiser(checkpoint, CHECKPOINT_PREFIXES[kind])
