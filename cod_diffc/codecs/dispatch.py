"""Decompress a stream of any codec: the codec is read from the stream."""

import torch

from cod_diffc.backbones.adapter import BackboneAdapter

from .registry import codec_of_stream


def decompress(
    stream: bytes,
    adapter: BackboneAdapter,
    *,
    method: str = "flow",
    num_denoise_steps: int = 25,
    progress: bool = True,
) -> torch.Tensor:
    """The `(1, 3, H, W)` image of a stream of any installed codec ([`~codecs.codec.Codec.decompress`]);
    [`~errors.StreamError`] for a stream of an unknown codec, backbone or model, or a malformed one."""
    return codec_of_stream(stream).decompress(
        stream, adapter, method=method, num_denoise_steps=num_denoise_steps, progress=progress
    )
