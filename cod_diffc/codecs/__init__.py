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

from typing import TYPE_CHECKING

from cod_diffc.lazy_exports import lazy_exports


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
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


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
