"""Map the released CoD checkpoints (microsoft/GenCodec `CoD/`) onto our classes.

The key map is data, not code: `third_party/cod_official/key_map_*.tsv` lists rows `official_regex<TAB>replacement`
(applied with `re.fullmatch` and `Match.expand`, first matching row wins). Official keys under `y_embedder.` belong to
the condition codec, every other denoiser key to the transformer. Conversion is strict: a key that no row maps, a
parameter that no key fills, and a shape that differs are all errors that list the keys.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Mapping

import torch


CODEC_PREFIX = "y_embedder."
EMA_PREFIX = "ema_denoiser."
COMPONENTS = ("condition_codec", "transformer")


class CheckpointConversionError(ValueError):
    """A checkpoint does not match our classes: the message lists the unmapped, missing or mis-shaped keys."""


@functools.cache
def load_key_map(component: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """The rows of `third_party/cod_official/key_map_<component>.tsv` as compiled `(pattern, replacement)` pairs."""
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; expected one of {COMPONENTS}")
    table = importlib.resources.files("cod_diffc") / "third_party" / "cod_official" / f"key_map_{component}.tsv"
    rows = []
    for line_number, line in enumerate(table.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{table.name}:{line_number}: expected 'official_regex<TAB>replacement', got {line!r}")
        rows.append((re.compile(fields[0]), fields[1]))
    return tuple(rows)


def map_key(official_key: str) -> tuple[str, str] | None:
    """`(component, our_key)` for an official denoiser key (without the `ema_denoiser.` prefix), or `None`."""
    component = "condition_codec" if official_key.startswith(CODEC_PREFIX) else "transformer"
    for pattern, replacement in load_key_map(component):
        match = pattern.fullmatch(official_key)
        if match:
            return component, match.expand(replacement)
    return None


def _format_keys(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def extract_ema_denoiser(checkpoint: Mapping[str, object], prefix: str = EMA_PREFIX) -> dict[str, torch.Tensor]:
    """The EMA denoiser weights of a released checkpoint, without their prefix.

    Accepts the layouts the release produces: a flat dict, or one nested under `"state_dict"` or `"module"`.
    The online weights (`denoiser.*`) and the training heads (`diffusion_trainer.*`) are ignored.
    """
    for nested in ("state_dict", "module"):
        if isinstance(checkpoint.get(nested), Mapping):
            checkpoint = checkpoint[nested]
            break
    weights = {k[len(prefix) :]: v for k, v in checkpoint.items() if k.startswith(prefix)}
    if not weights:
        raise CheckpointConversionError(
            f"no '{prefix}*' tensors in the checkpoint (top-level keys: {_format_keys(sorted(checkpoint))})"
        )
    return weights


def convert_state_dict(official: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Splits and renames an official denoiser state dict (prefix stripped) into `{component: state_dict}`."""
    converted: dict[str, dict[str, torch.Tensor]] = {name: {} for name in COMPONENTS}
    unmapped, duplicated = [], []
    for official_key, tensor in official.items():
        target = map_key(official_key)
        if target is None:
            unmapped.append(official_key)
            continue
        component, key = target
        if key in converted[component]:
            duplicated.append(f"{official_key} -> {component}.{key}")
        converted[component][key] = tensor
    if unmapped or duplicated:
        problems = []
        if unmapped:
            problems.append(f"{len(unmapped)} official keys have no mapping: {_format_keys(sorted(unmapped))}")
        if duplicated:
            problems.append(f"keys mapped twice: {_format_keys(duplicated)}")
        raise CheckpointConversionError("; ".join(problems))
    return converted


def check_against_model(
    state_dict: Mapping[str, torch.Tensor],
    model: torch.nn.Module,
    component: str,
    checkpoint_keys: Mapping[str, str] | None = None,
) -> None:
    """Raises [`CheckpointConversionError`] unless `state_dict` fills exactly `model`'s parameters, shape for shape.

    `checkpoint_keys` maps our keys to the checkpoint's names, so that a tensor the model cannot take is reported
    under both names.
    """
    checkpoint_keys = checkpoint_keys or {}

    def named(key: str) -> str:
        return f"{key} (checkpoint key {checkpoint_keys[key]})" if key in checkpoint_keys else key

    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(named(k) for k in set(state_dict) - set(expected))
    mis_shaped = sorted(
        f"{named(k)} {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} parameters of the {component} are not in the checkpoint: {_format_keys(missing)}"
        )
    if unexpected:
        problems.append(
            f"{len(unexpected)} checkpoint tensors have no {component} parameter: {_format_keys(unexpected)}"
        )
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} shapes differ in the {component}: {_format_keys(mis_shaped)}")
    if problems:
        raise CheckpointConversionError(
            "; ".join(problems) + " (is the checkpoint of the variant/config you asked for?)"
        )


def load_official_weights(
    checkpoint: Mapping[str, object],
    models: Mapping[str, torch.nn.Module],
    prefix: str = EMA_PREFIX,
    assign: bool = False,
) -> None:
    """Loads the EMA denoiser of a released checkpoint into `{"condition_codec": ..., "transformer": ...}`, strictly.

    `assign=True` takes the checkpoint's tensors as the parameters (for models built on the meta device).
    """
    official = extract_ema_denoiser(checkpoint, prefix)
    converted = convert_state_dict(official)
    checkpoint_keys: dict[str, dict[str, str]] = {name: {} for name in COMPONENTS}
    for official_key in official:
        component, key = map_key(official_key)  # every key maps: `convert_state_dict` checked it
        checkpoint_keys[component][key] = prefix + official_key
    for component, model in models.items():
        check_against_model(converted[component], model, component, checkpoint_keys[component])
        model.load_state_dict(converted[component], strict=True, assign=assign)


def official_init_args_to_kwargs(
    init_args: Mapping[str, object], codec_constants: Mapping[str, int] | None = None
) -> dict[str, dict[str, object]]:
    """Constructor arguments of our components from the official denoiser's `init_args` (the yaml's).

    Args:
        init_args: the official denoiser arguments (`in_channels`, `patch_size`, `num_groups` (heads),
            `hidden_size`, `num_blocks` (all blocks), `num_cond_blocks` (backbone), `hidden_size_x` and
            `nerf_mlpratio` (pixel head only), `ds`, `codebook_bits`, `up2x`).
        codec_constants: values the official code hard-codes (`GN_GROUPS`, `ENC_CH`, `CB_DIM`), for builds that
            patched them (the tiny reference models); the released values otherwise.

    Returns:
        `{"condition_codec": {...}, "transformer": {...}}`.
    """
    known = {
        "in_channels",
        "patch_size",
        "num_groups",
        "hidden_size",
        "num_blocks",
        "num_cond_blocks",
        "hidden_size_x",
        "nerf_mlpratio",
        "ds",
        "codebook_bits",
        "up2x",
    }
    unknown = sorted(set(init_args) - known)
    if unknown:
        raise CheckpointConversionError(f"unknown official denoiser arguments: {', '.join(unknown)}")
    constants = {"GN_GROUPS": 32, "ENC_CH": 128, "CB_DIM": 128, **(codec_constants or {})}
    is_pixel = "hidden_size_x" in init_args
    transformer: dict[str, object] = {
        "in_channels": init_args["in_channels"],
        "patch_size": init_args["patch_size"],
        "hidden_size": init_args["hidden_size"],
        "num_attention_heads": init_args["num_groups"],
        "num_layers": init_args["num_cond_blocks"],
        "num_head_layers": int(init_args["num_blocks"]) - int(init_args["num_cond_blocks"]),
        "head_type": "pixel" if is_pixel else "latent",
    }
    if is_pixel:
        # The official class default of the neural-field MLP ratio is 4; the released yaml sets 2.
        transformer.update(
            head_hidden_size=init_args["hidden_size_x"], head_mlp_ratio=init_args.get("nerf_mlpratio", 4)
        )
    codec = {
        "base_channels": int(constants["ENC_CH"]),
        "codebook_dim": int(constants["CB_DIM"]),
        "norm_num_groups": int(constants["GN_GROUPS"]),
        "codebook_bits": init_args["codebook_bits"],
        "downsampling": init_args["ds"],
        "up2x": init_args["up2x"],
        "condition_channels": init_args["hidden_size"],
    }
    return {"condition_codec": codec, "transformer": transformer}
