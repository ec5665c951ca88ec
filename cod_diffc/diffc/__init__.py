"""DiffC, the zero-shot diffusion codec, on any backbone behind a [`BackboneAdapter`].

Names are imported on first use, so `import cod_diffc.diffc` stays light: CompressAI (which the rANS index coder
needs, and which imports torchvision) is loaded only when a stream is coded.

Example:

    >>> import torch
    >>> from cod_diffc.diffc import DiffCSchedule, compress, decompress, load_backbone
    >>> adapter = load_backbone("gaussian", std=0.3)
    >>> image = torch.rand(1, 3, 16, 16)
    >>> stream = compress(image, adapter, target_bpp=1.0, schedule=DiffCSchedule(num_steps=32), progress=False)
    >>> reconstruction = decompress(stream, adapter, progress=False)
"""

import importlib
from typing import TYPE_CHECKING, Any


_EXPORTS = {
    "adapter": ["BackboneAdapter", "FlowMatchingAdapterMixin", "fingerprint_state_dict", "FINGERPRINT_SIZE"],
    "bitstream": ["DiffCStream", "StreamMode", "read_stream", "write_stream"],
    "channel": ["ChannelSimulator", "StepCode"],
    "codec": [
        "DECODE_METHODS",
        "DecodeResult",
        "EncodeResult",
        "RatePoint",
        "compress",
        "decode",
        "decoded_image",
        "decompress",
        "denoise",
        "encode",
    ],
    "errors": ["StreamError"],
    "gaussian_backbone": ["GaussianBackbone"],
    "randomness": ["derive_key"],
    "registry": [
        "ENTRY_POINT_GROUP",
        "available_backbones",
        "get_backbone_factory",
        "load_backbone",
        "register_backbone",
    ],
    "schedule": ["DiffCSchedule"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from .adapter import FINGERPRINT_SIZE, BackboneAdapter, FlowMatchingAdapterMixin, fingerprint_state_dict
    from .bitstream import DiffCStream, StreamMode, read_stream, write_stream
    from .channel import ChannelSimulator, StepCode
    from .codec import (
        DECODE_METHODS,
        DecodeResult,
        EncodeResult,
        RatePoint,
        compress,
        decode,
        decoded_image,
        decompress,
        denoise,
        encode,
    )
    from .errors import StreamError
    from .gaussian_backbone import GaussianBackbone
    from .randomness import derive_key
    from .registry import (
        ENTRY_POINT_GROUP,
        available_backbones,
        get_backbone_factory,
        load_backbone,
        register_backbone,
    )
    from .schedule import DiffCSchedule
