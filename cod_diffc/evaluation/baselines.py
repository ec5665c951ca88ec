"""Classical image codecs as rate-distortion baselines, each at rates matched to requested ones by its quality setting.

JPEG and WebP go through Pillow, AVIF (libavif) and JPEG XL (libjxl) through imagecodecs. A codec whose library (or
build) is missing is reported by [`codec_availability`], never silently dropped.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import PIL.Image


@dataclass(frozen=True)
class BaselineCodec:
    r"""
    A classical codec driven by one integer quality setting (higher: more bytes).

    Parameters:
        name (`str`): Short name (`"jpeg"`, `"webp"`, `"avif"`, `"jxl"`).
        library (`str`): The library that codes it, for reports.
        quality_range (`tuple[int, int]`): Lowest and highest quality searched.
        encode (`Callable[[np.ndarray, int], bytes]`): `(H, W, 3)` uint8 image and quality -> file bytes.
        decode (`Callable[[bytes], np.ndarray]`): File bytes -> `(H, W, 3)` uint8 image.
        available (`Callable[[], str | None]`): `None` when the codec can run here, else why not.
    """

    name: str
    library: str
    quality_range: tuple[int, int]
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes], np.ndarray]
    available: Callable[[], str | None]


@dataclass(frozen=True)
class CodecPoint:
    r"""
    A baseline file chosen for one target rate.

    Parameters:
        quality (`int`): The quality setting that produced it.
        data (`bytes`): The whole file.
        reconstruction (`np.ndarray`): `(H, W, 3)` uint8 decoded image.
        encoding_time (`float`): Seconds of the final encode (the search's other encodes are not counted).
        decoding_time (`float`): Seconds to decode it.
    """

    quality: int
    data: bytes
    reconstruction: np.ndarray
    encoding_time: float
    decoding_time: float


def _pillow_codec(name: str, pillow_format: str, quality_range: tuple[int, int], **save_options) -> BaselineCodec:
    def encode(image: np.ndarray, quality: int) -> bytes:
        buffer = io.BytesIO()
        PIL.Image.fromarray(image).save(buffer, format=pillow_format, quality=quality, **save_options)
        return buffer.getvalue()

    def decode(data: bytes) -> np.ndarray:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))

    def available() -> str | None:
        import PIL.features

        feature = {"JPEG": "jpg", "WEBP": "webp"}[pillow_format]
        return None if PIL.features.check(feature) else f"this Pillow build has no {pillow_format} support"

    return BaselineCodec(name, "Pillow", quality_range, encode, decode, available)


def _imagecodecs_codec(name: str, codec: str, quality_range: tuple[int, int], **encode_options) -> BaselineCodec:
    def encode(image: np.ndarray, quality: int) -> bytes:
        import imagecodecs

        return bytes(getattr(imagecodecs, f"{codec}_encode")(image, level=quality, **encode_options))

    def decode(data: bytes) -> np.ndarray:
        import imagecodecs

        return np.asarray(getattr(imagecodecs, f"{codec}_decode")(data))

    def available() -> str | None:
        try:
            import imagecodecs
        except ImportError:
            return "the `imagecodecs` package is not installed"
        return None if getattr(imagecodecs, codec.upper()).available else f"this imagecodecs build has no {codec}"

    return BaselineCodec(name, "imagecodecs", quality_range, encode, decode, available)


BASELINE_CODECS: dict[str, BaselineCodec] = {
    # 4:2:0 chroma subsampling for JPEG, as the common libjpeg default; quality above 95 only grows the file.
    "jpeg": _pillow_codec("jpeg", "JPEG", (1, 95), subsampling=2),
    "webp": _pillow_codec("webp", "WEBP", (0, 100), method=6),
    # Quality 100 is lossless in both libraries; the search stays in the lossy range.
    "avif": _imagecodecs_codec("avif", "avif", (0, 99), speed=6),
    "jxl": _imagecodecs_codec("jxl", "jpegxl", (0, 99), effort=7),
}
"""The baselines `cod-diffc evaluate --baseline` offers, by name."""


def codec_availability(names: Sequence[str]) -> tuple[list[BaselineCodec], list[str]]:
    """
    The codecs named that can run here, and one note per codec that cannot (its library or build is missing).

    Raises:
        `ValueError`: For a name not in [`BASELINE_CODECS`].
    """
    unknown = [name for name in names if name not in BASELINE_CODECS]
    if unknown:
        raise ValueError(f"unknown baseline codec(s) {', '.join(unknown)}; choose from {', '.join(BASELINE_CODECS)}")
    codecs, notes = [], []
    for name in names:
        reason = BASELINE_CODECS[name].available()
        if reason is None:
            codecs.append(BASELINE_CODECS[name])
        else:
            notes.append(f"{name}: not evaluated, {reason}")
    return codecs, notes


def encode_at_rates(codec: BaselineCodec, image: np.ndarray, target_bpps: Sequence[float]) -> list[CodecPoint]:
    r"""
    Encodes `image` once per target rate, at the highest quality whose file fits the target.

    The quality is found by bisection over `codec.quality_range` (file size grows with quality). A target below the
    lowest quality's file gets the lowest quality, so the point lies above the target; its actual bpp is what
    reports use.

    Args:
        codec ([`BaselineCodec`]): The codec.
        image (`np.ndarray`): `(H, W, 3)` uint8 image.
        target_bpps (`Sequence[float]`): Target rates in bits per pixel (whole file).

    Returns:
        `list[CodecPoint]`: One per target, in the order given.
    """
    pixels = image.shape[0] * image.shape[1]
    sizes: dict[int, int] = {}

    def size(quality: int) -> int:
        if quality not in sizes:
            sizes[quality] = len(codec.encode(image, quality))
        return sizes[quality]

    points = []
    for target in target_bpps:
        budget = target * pixels / 8  # bytes
        low, high = codec.quality_range
        if size(low) > budget:
            high = low
        while low < high:  # invariant: size(low) fits the budget
            middle = (low + high + 1) // 2
            if size(middle) <= budget:
                low = middle
            else:
                high = middle - 1
        start = time.perf_counter()
        data = codec.encode(image, low)
        encoding_time = time.perf_counter() - start
        start = time.perf_counter()
        reconstruction = codec.decode(data)
        decoding_time = time.perf_counter() - start
        points.append(CodecPoint(low, data, reconstruction, encoding_time, decoding_time))
    return points
