"""What the subcommands share: device, dtype and coder options, backbone options, output file names.

Nothing here imports torch at module level: `cod-diffc --help` and every subcommand's `--help` build their parsers
without it (a second of start-up on a CPU).
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    import torch


MIN_CHUNK_BITS, MAX_CHUNK_BITS = 4, 18
"""`--chunk-bits` range: the pooled coder's candidate pool is `2**bits` rows (1 GiB of float32 at 18 bits)."""

DTYPE_NAMES = ("float32", "float16", "bfloat16")
"""`--dtype` choices, names of torch dtypes."""


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a `--dtype` name."""
    import torch

    return getattr(torch, name)


def int_in_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type` that accepts integers in `[low, high]` (no upper bound when `high` is None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is not {bounds}")
        return value

    return parse


def device_name(text: str) -> str:
    """An argparse `type` for `--device`: a device the codecs run on (CPU or CUDA) that this machine has."""
    import torch

    from cod_diffc.codecs.devices import check_codec_device

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device (e.g. cpu, cuda, cuda:1)") from None
    try:
        check_codec_device(device)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine")
    return text


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device`, `--dtype` and `--no-progress`."""
    parser.add_argument(
        "--device", type=device_name, default="cpu", help="torch device to run the model on (default: cpu)"
    )
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default="float32", help="model dtype (default: float32)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_coder_arguments(parser: argparse.ArgumentParser) -> None:
    """`--coder` and `--chunk-bits`: the reverse channel coder and its operating point."""
    parser.add_argument(
        "--coder",
        metavar="{pooled,plain,NAME}",
        help="DiffC's reverse channel coder: shared candidate pool scored by matrix products (pooled, the default), "
        "fresh candidates (plain), or any registered channel coder by name (`cod-diffc codecs --channels`)",
    )
    parser.add_argument(
        "--chunk-bits",
        type=int_in_range(MIN_CHUNK_BITS, MAX_CHUNK_BITS),
        help=f"log2 of the candidates per chunk, {MIN_CHUNK_BITS} to {MAX_CHUNK_BITS} (DiffC's default 15: about 13 "
        "bits of KL per chunk); smaller is faster and costs more bits",
    )


def codec_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The codec settings the command line gives (`--steps`, `--guidance-scale`, `--denoise-guidance-scale`,
    `--coder`, `--chunk-bits`): only those set, for [`~codecs.codec.Codec.from_settings`], so that a codec is told
    only what the user asked of it."""
    settings = {
        "num_steps": getattr(args, "steps", None),
        "guidance_scale": getattr(args, "guidance_scale", None),
        "denoise_guidance_scale": getattr(args, "denoise_guidance_scale", None),
        "coder": getattr(args, "coder", None),
        "chunk_bits": getattr(args, "chunk_bits", None),
    }
    return {key: value for key, value in settings.items() if value is not None}


def quiet_model_loading() -> None:
    """Keeps model loading off stderr: no diffusers loading bars or advisory warnings in the CLI's output."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()


def parse_options(pairs: list[str], backbone: str) -> dict[str, object]:
    """
    `KEY=VALUE` options of `backbone`'s factory, each converted to the type of that parameter's default (`bool`
    takes true/false, a `str` or `None` default keeps the text). For a factory that takes `**options`, values that
    look like a number or true/false are converted.
    """
    from cod_diffc.backbones.registry import get_backbone_factory

    parameters = inspect.signature(get_backbone_factory(backbone)).parameters
    options: dict[str, object] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"backbone option {pair!r} is not KEY=VALUE")
        default = parameters[key].default if key in parameters else inspect.Parameter.empty
        options[key] = _convert_option(key, value, default)
    return options


def _convert_option(key: str, value: str, default: object) -> object:
    """`value` as the type of `default`; guessed when the parameter is unknown (a `**options` factory)."""
    if isinstance(default, bool) or (default is inspect.Parameter.empty and value.lower() in ("true", "false")):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"backbone option {key} takes true or false, got {value!r}")
        return value.lower() == "true"
    if isinstance(default, int | float):
        try:
            return type(default)(value)
        except ValueError:
            kind = "an integer" if isinstance(default, int) else "a number"
            raise ValueError(f"backbone option {key} takes {kind}, got {value!r}") from None
    if default is inspect.Parameter.empty:
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                continue
    return value


def output_paths(inputs: list[Path], labels: list[str], output: str, suffix: str) -> dict[tuple[Path, str], Path]:
    """
    Where each (input, label) result goes. With one input and one label, `output` is the file (unless it is an
    existing directory or ends with a path separator); otherwise `output` is a directory and files are named
    `{stem}{label}{suffix}`.
    """
    names_directory = output.endswith(("/", os.sep))
    output = Path(output)
    single = len(inputs) == 1 and len(labels) == 1 and not output.is_dir() and not names_directory
    if single:
        return {(inputs[0], labels[0]): output}
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output} is a file; several outputs need -o to name a directory")
    stems = [path.stem for path in inputs]
    if len(set(stems)) != len(stems):
        raise ValueError("input files share a name; compress them in separate calls or rename them")
    return {(path, label): output / f"{path.stem}{label}{suffix}" for path in inputs for label in labels}
