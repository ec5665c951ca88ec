"""Image files in and out, the same for the command line, evaluation and training: decode to RGB, save PNG atomically.

Every reader applies the EXIF orientation (so a phone photo is coded the way viewers show it), composites
transparency over white, and expands grayscale, 16-bit and palette images to 8-bit RGB.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")
"""File suffixes treated as images when a folder is scanned."""

MAX_IMAGE_PIXELS = 4096 * 4096
"""Largest image [`load_image`] accepts; bigger ones are refused before they are decoded into memory."""

_ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


def _decode_rgb(path: str | Path, max_pixels: int | None) -> tuple[PIL.Image.Image, bool]:
    """The image as 8-bit RGB, and whether it had transparency (now composited over white)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PIL warns about palette transparency it then handles
        with PIL.Image.open(path) as opened:
            if max_pixels is not None and opened.width * opened.height > max_pixels:
                raise ValueError(
                    f"{path}: {opened.width}x{opened.height} is larger than the {max_pixels} pixels accepted"
                )
            image = PIL.ImageOps.exif_transpose(opened)
            image.load()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the high byte (PIL's own conversion to "L" clips instead of scaling).
        image = PIL.Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    has_alpha = image.mode in _ALPHA_MODES
    if has_alpha:
        image = image.convert("RGBA")
        background = PIL.Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = PIL.Image.alpha_composite(background, image)
    return image.convert("RGB"), has_alpha


def load_rgb_image(path: str | Path) -> PIL.Image.Image:
    """Decodes an image file to 8-bit RGB (see the module docstring); PIL's errors pass through."""
    return _decode_rgb(path, max_pixels=None)[0]


def load_image(path: str | Path) -> torch.Tensor:
    """
    Reads an image file into a `(1, 3, H, W)` float tensor in [0, 1], warning when transparency was composited.

    Raises:
        `FileNotFoundError` or `ValueError`: naming the file and the problem (missing, a directory, not an image,
            unreadable, or larger than [`MAX_IMAGE_PIXELS`]).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not an image")
    try:
        rgb, had_alpha = _decode_rgb(path, MAX_IMAGE_PIXELS)
    except PIL.UnidentifiedImageError:
        raise ValueError(f"{path}: not an image file this program can read") from None
    except PIL.Image.DecompressionBombError:
        raise ValueError(f"{path}: larger than the {MAX_IMAGE_PIXELS} pixels accepted") from None
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: unreadable image ({error})") from None
    if had_alpha:
        warnings.warn(f"{path}: alpha channel composited on white", stacklevel=2)
    array = np.asarray(rgb, dtype=np.float32) / 255.0  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def long_side_limited_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """`(height, width)` scaled, keeping the aspect ratio, so that the long side is at most `max_side`."""
    long_side = max(height, width)
    if long_side <= max_side:
        return height, width
    return max(1, round(height * max_side / long_side)), max(1, round(width * max_side / long_side))


def limit_long_side(image: torch.Tensor, max_side: int | None) -> torch.Tensor:
    """A `(1, 3, H, W)` image in [0, 1] downscaled with Lanczos (on 8-bit pixels) to [`long_side_limited_size`];
    the image itself when it is small enough or `max_side` is None."""
    height, width = image.shape[-2:]
    if max_side is None or max(height, width) <= max_side:
        return image
    new_height, new_width = long_side_limited_size(height, width, max_side)
    pixels = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    resized = PIL.Image.fromarray(pixels).resize((new_width, new_height), PIL.Image.Resampling.LANCZOS)
    array = np.asarray(resized, dtype=np.float32) / 255.0  # (h, w, 3)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def atomic_write(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same folder and a rename: never a partial file.

    Raises:
        `OSError`: Naming `path` and the cause (a full disk, a folder that cannot be made, no permission), with the
            errno of the failure; nothing is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from error
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
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from error
        raise


def _write_error(path: Path, error: OSError) -> OSError:
    """An `OSError` (of the same errno) that says which file could not be written and why, in one line."""
    cause = error.strerror or str(error)
    if isinstance(error, (FileExistsError, NotADirectoryError)):  # a file where a folder should be
        blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
        cause = f"{blocking} is a file, not a folder" if blocking is not None else cause
    return OSError(error.errno, f"cannot write {path}: {cause}")


def centre_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """`image` `(1, 3, H, W)` resized so that its shorter side is `size` (area filter), then its centre square:
    `(1, 3, size, size)` in [0, 1]."""
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    resized = torch.nn.functional.interpolate(
        image, size=(round(height * scale), round(width * scale)), mode="area"
    )  # (1, 3, h, w), min(h, w) = size
    top, left = (resized.shape[-2] - size) // 2, (resized.shape[-1] - size) // 2
    return resized[..., top : top + size, left : left + size].clamp(0, 1)


def save_image(path: str | Path, image: torch.Tensor | np.ndarray) -> None:
    """Saves a `(1, 3, H, W)` image in [0, 1] (rounded to 8 bits) or an `(H, W, 3)` uint8 array as PNG, atomically."""
    from cod_diffc.evaluation.metrics import to_uint8

    array = image if isinstance(image, np.ndarray) else to_uint8(image)
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())
