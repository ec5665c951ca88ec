"""Map the released CoD-Lite checkpoints (microsoft/GenCodec `CoD_Lite/`) onto our classes: the denoiser.

A CoD-Lite checkpoint holds one network: the pretrained model under `ema_denoiser.`, a one-step codec under `net.`
(other groups, such as the online weights, training heads and the one-step codec's teacher and critic, are
ignored). Under `y_embedder.{encoder,bottleneck,decoder}` sits the condition codec; every other key is the
denoiser's, whose module names [`CodLiteDenoiserModel`] keeps, so its conversion is the prefix alone. Conversion is
strict ([`~conversion.official.check_against_model`]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from cod_diffc.models.denoiser_cod_lite import CodLiteDenoiserModel

from .official import check_against_model, extract_ema_denoiser


CHECKPOINT_PREFIXES = {"pretrain": "ema_denoiser.", "onestep": "net."}
"""Where each kind of released checkpoint keeps its network."""

CODEC_PREFIXES = ("y_embedder.encoder.", "y_embedder.bottleneck.", "y_embedder.decoder.")
"""The condition codec's keys inside the network (`y_embedder_x` is the denoiser's)."""


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
    if kind not in CHECKPOINT_PREFIXES:
        raise ValueError(
            f"unknown CoD-Lite checkpoint kind {kind!r}; expected one of {', '.join(CHECKPOINT_PREFIXES)}"
        )
    weights, _ = split_network(extract_ema_denoiser(checkpoint, CHECKPOINT_PREFIXES[kind]))
    model = CodLiteDenoiserModel(**denoiser_config(init_args))
    check_against_model(weights, model, "CoD-Lite denoiser")
    model.load_state_dict({key: value.float() for key, value in weights.items()}, strict=True)
    return model.eval()
