"""One image's compress + decompress time with a codec and a backbone, as the benchmarks quote it."""

from __future__ import annotations

import time

import torch

from cod_diffc.backbones import BackboneAdapter
from cod_diffc.codecs import Codec


def time_round_trip(
    codec: Codec, adapter: BackboneAdapter, image: torch.Tensor, target_bpp: float
) -> dict[str, float]:
    """Seconds to compress `image` (`(1, 3, H, W)` in [0, 1]) at `target_bpp` and to decompress it (one run each;
    a target below the smallest file gets that file), and the file's bpp."""
    with torch.no_grad():
        start = time.perf_counter()
        stream = codec.compress(image, adapter, target_bpp=target_bpp, clamp_targets=True, progress=False)
        compress_s = time.perf_counter() - start
        start = time.perf_counter()
        codec.decompress(stream, adapter, progress=False)
        decompress_s = time.perf_counter() - start
    return {
        "bpp": 8 * len(stream) / (image.shape[-2] * image.shape[-1]),
        "compress_s": compress_s,
        "decompress_s": decompress_s,
        "round_trip_s": compress_s + decompress_s,
    }
