"""Classical image codecs as rate-distortion baselines, each at rates matched to requested ones by its quality setting.

JPEG and WebP go through Pillow, AVIF (libavif) and JPEG XL (libjxl) through imagecodecs. A codec whose library (or
build) is missing is reported by [`codec_availability`], never silently dropped.

Each codec also has a `-down` variant (`jpeg-down`, ...) for rates below what the codec reaches at full size: what a
person would do at 0.01-0.05 bpp. It downscales the image by a factor from [`DOWNSCALE_FACTORS`] (1 included), codes
it, and upscales the decoded image back with Lanczos; per target rate it keeps the (factor, quality) pair with the
highest PSNR among those that fit. Its file is a [`SIZE_HEADER_BYTES`]-byte header with the original size followed by
the codec's file, and bpp counts both.
"""

from __future__ import annotations

import io
import struct
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
        downscale (`int`, defaults to `1`): The factor the image was downscaled by before coding (`-down` variants).
    """

    quality: int
    data: bytes
    reconstruction: np.ndarray
    encoding_time: float
    decoding_time: float
    downscale: int = 1

    @property
    def setting(self) -> str:
        quality = f"quality={self.quality}"
        return quality if self.downscale == 1 else f"downscale=1/{self.downscale},{quality}"


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


DOWNSCALE_SUFFIX = "-down"
DOWNSCALE_FACTORS = (1, 2, 3, 4, 6, 8)
"""The factors a `-down` baseline may divide the image sides by."""
SIZE_HEADER_BYTES = 4
"""A `-down` file starts with the original width and height (big-endian uint16 each), which its decoder needs."""
_MIN_DOWNSCALED_SIDE = 8


@dataclass(frozen=True)
class BaselineRequest:
    """A baseline to evaluate: a codec, at full size only or (`downscale`) with the downscale-and-upscale search."""

    codec: BaselineCodec
    downscale: bool = False

    @property
    def name(self) -> str:
        return self.codec.name + (DOWNSCALE_SUFFIX if self.downscale else "")


def baseline_names() -> list[str]:
    """Every name `--baseline` accepts."""
    return [name + suffix for name in BASELINE_CODECS for suffix in ("", DOWNSCALE_SUFFIX)]


def codec_availability(names: Sequence[str]) -> tuple[list[BaselineRequest], list[str]]:
    """
    The baselines named that can run here, and one note per baseline that cannot (its library or build is missing).

    Raises:
        `ValueError`: For a name not in [`baseline_names`].
    """
    unknown = [name for name in names if name not in baseline_names()]
    if unknown:
        raise ValueError(f"unknown baseline codec(s) {', '.join(unknown)}; choose from {', '.join(baseline_names())}")
    requests, notes = [], []
    for name in names:
        downscale = name.endswith(DOWNSCALE_SUFFIX)
        codec = BASELINE_CODECS[name.removesuffix(DOWNSCALE_SUFFIX)]
        reason = codec.available()
        if reason is None:
            requests.append(BaselineRequest(codec, downscale))
        else:
            notes.append(f"{name}: not evaluated, {reason}")
    return requests, notes


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


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`(H, W, 3)` uint8 resized with Lanczos to `height x width`."""
    return np.asarray(PIL.Image.fromarray(image).resize((width, height), PIL.Image.Resampling.LANCZOS))


def decode_downscaled(codec: BaselineCodec, data: bytes) -> np.ndarray:
    """A `-down` file -> the `(H, W, 3)` uint8 image at its original size (decoded, then upscaled with Lanczos)."""
    width, height = struct.unpack(">HH", data[:SIZE_HEADER_BYTES])
    return _resize(codec.decode(data[SIZE_HEADER_BYTES:]), width, height)


def encode_downscaled_at_rates(
    codec: BaselineCodec,
    image: np.ndarray,
    target_bpps: Sequence[float],
    factors: Sequence[int] = DOWNSCALE_FACTORS,
) -> list[CodecPoint]:
    r"""
    Encodes `image` per target rate at the (downscale factor, quality) pair with the highest PSNR whose whole file
    (size header included) fits the target; a target that nothing fits gets the largest factor at the lowest
    quality, so the point lies above the target.

    Args:
        codec ([`BaselineCodec`]): The codec.
        image (`np.ndarray`): `(H, W, 3)` uint8 image, sides below 65536.
        target_bpps (`Sequence[float]`): Target rates in bits per pixel (whole file).
        factors (`Sequence[int]`): The downscale factors tried (sides divided by them, at least 8 px left).

    Returns:
        `list[CodecPoint]`: One per target, in the order given; `data` is the `-down` file, `reconstruction` the
        upscaled image.
    """
    from .metrics import psnr

    height, width = image.shape[:2]
    if max(height, width) >= 2**16:
        raise ValueError(f"a -down baseline stores sides below 65536, got {width}x{height}")
    header = struct.pack(">HH", width, height)
    budgets = [max(target * height * width / 8 - SIZE_HEADER_BYTES, 0.0) for target in target_bpps]  # codec bytes
    usable = [factor for factor in factors if min(height, width) // factor >= _MIN_DOWNSCALED_SIDE] or [1]
    candidates: dict[int, list[CodecPoint]] = {}  # factor -> one point per target, at the downscaled size
    for factor in usable:
        small = image if factor == 1 else _resize(image, round(width / factor), round(height / factor))
        small_pixels = small.shape[0] * small.shape[1]
        candidates[factor] = encode_at_rates(codec, small, [8 * budget / small_pixels for budget in budgets])

    points = []
    for index, budget in enumerate(budgets):
        fitting = [
            (psnr(image, _resize(found[index].reconstruction, width, height)), factor)
            for factor, found in candidates.items()
            if len(found[index].data) <= budget
        ]
        factor = max(fitting)[1] if fitting else usable[-1]
        chosen = candidates[factor][index]
        data = header + chosen.data
        start = time.perf_counter()
        reconstruction = decode_downscaled(codec, data)
        decoding_time = time.perf_counter() - start
        points.append(CodecPoint(chosen.quality, data, reconstruction, chosen.encoding_time, decoding_time, factor))
    return points
