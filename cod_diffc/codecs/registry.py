"""Codec names -> codec classes: the built-in table, runtime registrations and installed plugins.

A codec name is what a stream's container records and what `--codec NAME` selects. Third parties add codecs as
they add backbones: [`register_codec`] at runtime, or an entry point in the group [`ENTRY_POINT_GROUP`]:

    [project.entry-points."cod_diffc.codecs"]
    my-codec = "my_package.codec:MyCodec"

The target is a [`~codecs.codec.Codec`] subclass; `load_codec(name, **settings)` instantiates it with the encoder's
settings (a decoder needs none).
"""

from typing import Any

from cod_diffc.errors import StreamError
from cod_diffc.plugin_registry import PluginRegistry

from .codec import Codec
from .container import stream_codec


ENTRY_POINT_GROUP = "cod_diffc.codecs"

BUILTIN_CODECS: dict[str, str] = {
    "cod-lite-onestep": "cod_diffc.onestep.codec:OneStepCodec",
    "diffc": "cod_diffc.diffc.codec:DiffCCodec",
    "ddcm": "cod_diffc.ddcm.codec:DDCMCodec",
    "turbo-ddcm": "cod_diffc.ddcm.codec:TurboDDCMCodec",
}

DEFAULT_CODEC = "diffc"
"""The codec the command line uses when `--codec` is not given."""

CODECS = PluginRegistry("codec", ENTRY_POINT_GROUP, BUILTIN_CODECS)
"""The codec registry."""


def register_codec(name: str, codec_class: type[Codec]) -> None:
    """Registers a [`~codecs.codec.Codec`] subclass under `name` (its `name` attribute) for this session;
    `ValueError` for an invalid or taken name, or a class that is not a codec of that name."""
    if not (isinstance(codec_class, type) and issubclass(codec_class, Codec)):
        raise ValueError(f"codec {name!r} must be a Codec subclass, got {codec_class!r}")
    if getattr(codec_class, "name", None) != name:
        raise ValueError(
            f"codec class {codec_class.__name__} is named {getattr(codec_class, 'name', None)!r}, not {name!r}"
        )
    CODECS.register(name, codec_class)


def available_codecs() -> list[str]:
    """The sorted names of every built-in, registered and installed codec."""
    return CODECS.names()


def get_codec_class(name: str) -> type[Codec]:
    """The codec class registered for `name`; `ValueError` listing the available codecs for an unknown one."""
    codec_class = CODECS.get(name)
    if not (isinstance(codec_class, type) and issubclass(codec_class, Codec) and codec_class.name == name):
        raise ValueError(f"codec {name!r} resolves to {codec_class!r}, not a Codec subclass named {name!r}")
    return codec_class


def load_codec(name: str, **settings: Any) -> Codec:
    """An instance of codec `name` with the encoder's `settings` (see the codec class for them)."""
    return get_codec_class(name)(**settings)


def codec_of_stream(stream: bytes) -> Codec:
    """The codec (with default settings) that decodes `stream`, read from its container.

    Raises:
        [`~errors.StreamError`]: For bytes that are not a stream, or a stream of a codec this installation lacks.
    """
    name = stream_codec(stream)
    if name not in available_codecs():
        raise StreamError(
            f"stream made by codec {name!r}, which is not installed; available codecs: {', '.join(available_codecs())}"
        )
    return load_codec(name)
