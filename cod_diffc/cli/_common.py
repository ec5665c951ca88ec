"""What the subcommands share: image files in and out, atomic writes, device and dtype options."""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import torch


MAX_IMAGE_PIXELS = 4096 * 4096
"""Largest image the commands accept; bigger ones are refused before they are decoded into memory."""

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device`, `--dtype` and `--no-progress`."""
    parser.add_argument("--device", default="cpu", help="torch device to run the model on (default: cpu)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="model dtype (default: float32)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_coder_arguments(parser: argparse.ArgumentParser) -> None:
    """`--coder` and `--chunk-bits`: the reverse channel coder and its operating point."""
    parser.add_argument(
        "--coder",
        choices=("pooled", "plain"),
        default="pooled",
        help="reverse channel coder: shared candidate pool scored by matrix products (fast), or fresh candidates",
    )
    parser.add_argument(
        "--chunk-bits",
        type=int,
        default=15,
        help="log2 of the candidates per chunk (default 15: about 13 bits of KL per chunk); smaller is faster and "
        "costs more bits",
    )


def build_simulator(coder: str, chunk_bits: int):
    """The channel simulator the `--coder` / `--chunk-bits` options name."""
    from cod_diffc.diffc.channel import ChunkedPFRSimulator
    from cod_diffc.diffc.channel_pooled import PooledPFRSimulator

    simulator_class = PooledPFRSimulator if coder == "pooled" else ChunkedPFRSimulator
    return simulator_class(max_chunk_bits=chunk_bits)


def quiet_model_loading() -> None:
    """Keeps model loading off stderr: no diffusers loading bars or advisory warnings in the CLI's output."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()


def parse_options(pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` backbone options; values are parsed as int, float, true/false when they look like one."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"backbone option {pair!r} is not KEY=VALUE")
        lowered = value.lower()
        if lowered in ("true", "false"):
            options[key] = lowered == "true"
            continue
        for parse in (int, float):
            try:
                options[key] = parse(value)
                break
            except ValueError:
                continue
        else:
            options[key] = value
    return options


def load_image(path: str | Path) -> torch.Tensor:
    """
    Reads an image file into a `(1, 3, H, W)` float tensor in [0, 1].

    Grayscale images are repeated to RGB, an alpha channel is composited on white (with a warning), 16-bit images are
    scaled to 8 bits. Raises `FileNotFoundError` or `ValueError` naming the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not an image")
    try:
        with PIL.Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{path}: {width}x{height} is larger than the {MAX_IMAGE_PIXELS} pixels accepted")
            image.load()
            rgb = _to_rgb(image, path)
    except PIL.UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file this program can read") from None
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: unreadable image ({error})") from None
    array = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _to_rgb(image: PIL.Image.Image, path: Path) -> PIL.Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the top 8 bits.
        array = np.asarray(image, dtype=np.uint32) >> 8
        return PIL.Image.fromarray(array.astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        warnings.warn(f"{path}: alpha channel composited on white", stacklevel=3)
        rgba = image.convert("RGBA")
        background = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def atomic_write(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same folder and a rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # mkstemp creates the file for the owner only; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_image(path: str | Path, image: torch.Tensor | np.ndarray) -> None:
    """Saves a `(1, 3, H, W)` image in [0, 1] (rounded to 8 bits) or an `(H, W, 3)` uint8 array as PNG, atomically."""
    from cod_diffc.evaluation.metrics import to_uint8

    array = image if isinstance(image, np.ndarray) else to_uint8(image)
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


def output_paths(inputs: list[Path], labels: list[str], output: Path, suffix: str) -> dict[tuple[Path, str], Path]:
    """
    Where each (input, label) result goes. With one input and one label, `output` is the file (unless it is an
    existing directory); otherwise `output` is a directory and files are named `{stem}{label}{suffix}`.
    """
    single = len(inputs) == 1 and len(labels) == 1 and not output.is_dir()
    if single:
        return {(inputs[0], labels[0]): output}
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output} is a file; several outputs need -o to name a directory")
    stems = [path.stem for path in inputs]
    if len(set(stems)) != len(stems):
        raise ValueError("input files share a name; compress them in separate calls or rename them")
    return {(path, label): output / f"{path.stem}{label}{suffix}" for path in inputs for label in labels}
