"""Will an image fit? The memory a backbone needs for a size, checked against the device before any work starts."""

from pathlib import Path

import torch

from .adapter import BackboneAdapter
from .padding import padded_size


class ImageTooLargeError(ValueError):
    """An image needs more memory than the device has; the message names the limit and what to do instead."""


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory of `device`: `MemAvailable` of `/proc/meminfo` for the CPU, the CUDA allocator's free memory for
    a GPU; `None` where it cannot be read (then nothing is refused)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def vae_decode_bytes_per_pixel(block_out_channels: tuple[int, ...] | list[int]) -> int:
    """Working memory per image pixel of a diffusers VAE decode, whose last (full-resolution) stage keeps about a
    dozen float32 maps of `block_out_channels[0]` channels alive."""
    return 48 * block_out_channels[0]


def _format_bytes(size: float) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def _largest_fitting_long_side(adapter: BackboneAdapter, height: int, width: int, available: int) -> int:
    """The largest long side (0 if none) of an image of this aspect ratio, padded to the adapter's multiple, whose
    estimate fits in `available` bytes; the estimates grow with the side, so a bisection finds it."""
    from cod_diffc.image_files import long_side_limited_size  # the size `--max-side` gives

    def fits(side: int) -> bool:
        scaled = long_side_limited_size(height, width, side)
        return adapter.working_memory_bytes(*padded_size(*scaled, adapter.size_multiple)) <= available

    low, high = 0, max(height, width)  # fits(low) or low == 0; not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def check_image_fits(adapter: BackboneAdapter, height: int, width: int, decoding: bool = False) -> None:
    """
    Raises [`ImageTooLargeError`] when the adapter's estimate for a `height x width` image (padded to its
    `size_multiple`) exceeds the free memory of its device, naming both figures and what to do: when encoding, the
    largest long side that fits at this aspect ratio (`--max-side` to downscale, or tiles of that size); when
    `decoding`, a device with more free memory. Does nothing when either figure is unknown.
    """
    needed = adapter.working_memory_bytes(*padded_size(height, width, adapter.size_multiple))
    available = available_memory_bytes(adapter.device)
    if needed is None or available is None or needed <= available:
        return
    message = (
        f"a {width}x{height} image needs about {_format_bytes(needed)} on the {adapter.name!r} backbone, more than "
        f"the {_format_bytes(available)} free on {adapter.device}"
    )
    if decoding:
        raise ImageTooLargeError(f"{message}; decode it where more memory is free (or on a GPU with --device)")
    fitting_side = _largest_fitting_long_side(adapter, height, width, available)
    if fitting_side == 0:
        raise ImageTooLargeError(f"{message}; no size of this aspect ratio fits: free memory first")
    raise ImageTooLargeError(
        f"{message}; downscale it (cod-diffc compress --max-side {fitting_side}, a long side of at most "
        f"{fitting_side} px), or split it into tiles no larger than that and compress each"
    )
