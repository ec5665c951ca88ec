"""DiffC, the zero-shot diffusion codec, on any backbone behind a [`~backbones.BackboneAdapter`].

Names are imported on first use, so `import cod_diffc.diffc` stays light: CompressAI (which the rANS index coder
needs, and which imports torchvision) is loaded only when a stream is coded.

Example:

    >>> import torch
    >>> from cod_diffc.backbones import load_backbone
    >>> from cod_diffc.diffc import DiffCSchedule, compress, decompress
    >>> adapter = load_backbone("gaussian", std=0.3)
    >>> image = torch.rand(1, 3, 16, 16)
    >>> stream = compress(image, adapter, target_bpp=2.0, schedule=DiffCSchedule(num_steps=32), progress=False)
    >>> reconstruction = decompress(stream, adapter, progress=False)
"""

from typing import TYPE_CHECKING

from cod_diffc.lazy_exports import lazy_exports


_EXPORTS = {
    "bitstream": ["DiffCStream", "StreamMode", "read_stream", "write_stream"],
    "channel": ["ChannelSimulator", "StepCode"],
    "channel_registry": ["available_channels", "get_channel_class", "register_channel"],
    "codec": [
        "DecodeResult",
        "DiffCCodec",
        "EncodeResult",
        "RatePoint",
        "compress",
        "decode",
        "decoded_image",
        "decompress",
        "encode",
    ],
    "cod_diffc.codecs.codec": ["DECODE_METHODS"],
    "cod_diffc.codecs.schedule": ["DiffCSchedule"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from cod_diffc.codecs.codec import DECODE_METHODS
    from cod_diffc.codecs.schedule import DiffCSchedule

    from .bitstream import DiffCStream, StreamMode, read_stream, write_stream
    from .channel import ChannelSimulator, StepCode
    from .channel_registry import available_channels, get_channel_class, register_channel
    from .codec import (
        DecodeResult,
        DiffCCodec,
        EncodeResult,
        RatePoint,
        compress,
        decode,
        decoded_image,
        decompress,
        encode,
    )
