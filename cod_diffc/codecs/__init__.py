"""What every codec shares: the stream container, the codec interface and registry, the time schedule and the
counter-based randomness. DiffC (`cod_diffc.diffc`) and the DDCM family (`cod_diffc.ddcm`) are built on it.

Example, decoding a stream of any codec:

    >>> from cod_diffc.backbones import load_backbone
    >>> from cod_diffc.codecs import decompress, load_codec
    >>> adapter = load_backbone("gaussian", std=0.3)
    >>> import torch
    >>> stream = load_codec("turbo-ddcm").compress(torch.rand(1, 3, 16, 16), adapter, target_bpp=4.0, progress=False)
    >>> image = decompress(stream, adapter, progress=False)
"""

import importlib
from typing import TYPE_CHECKING, Any


_EXPORTS = {
    "codec": ["DECODE_METHODS", "CodedStream", "Codec", "DecodedLatent", "check_decode_method"],
    "container": ["Container", "read_container", "stream_codec", "write_container"],
    "dispatch": ["decompress"],
    "registry": [
        "ENTRY_POINT_GROUP",
        "available_codecs",
        "codec_of_stream",
        "get_codec_class",
        "load_codec",
        "register_codec",
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
    from .codec import DECODE_METHODS, Codec, CodedStream, DecodedLatent, check_decode_method
    from .container import Container, read_container, stream_codec, write_container
    from .dispatch import decompress
    from .registry import (
        ENTRY_POINT_GROUP,
        available_codecs,
        codec_of_stream,
        get_codec_class,
        load_codec,
        register_codec,
    )
    from .schedule import DiffCSchedule
