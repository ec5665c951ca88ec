"""DiffC's channel coders by name, and the configuration bytes a stream stores to rebuild its coder.

A channel coder is a [`~diffc.channel.ChannelSimulator`] subclass; its `method` attribute is its registry name.
Third parties add coders as they add backbones and codecs: [`register_channel`] at runtime, or an entry point in
the group [`ENTRY_POINT_GROUP`]:

    [project.entry-points."cod_diffc.channels"]
    my-coder = "my_package.channel:MyChannelSimulator"

The configuration ([`channel_config`]) is the coder's id, then its `settings_bytes()`:

    coder                   id byte    then
    chunked_pfr (built-in)  0          4 bytes of settings          (5 bytes, as in format 1)
    pooled_pfr (built-in)   1          6 bytes of settings          (7 bytes, as in format 1)
    any other               255        name length, name (ASCII), settings

Ids 2-254 are reserved for future built-ins; a decoder refuses them, and names it has not installed, with a
[`~errors.StreamError`] naming what the stream needs.
"""

from cod_diffc.errors import StreamError
from cod_diffc.plugin_registry import PluginRegistry, check_plugin_name

from .bitstream import MAX_CHANNEL_CONFIG_SIZE
from .channel import ChannelSimulator


ENTRY_POINT_GROUP = "cod_diffc.channels"

BUILTIN_CHANNELS: dict[str, str] = {
    "chunked_pfr": "cod_diffc.diffc.channel:ChunkedPFRSimulator",
    "pooled_pfr": "cod_diffc.diffc.channel_pooled:PooledPFRSimulator",
}

CHANNELS = PluginRegistry("channel coder", ENTRY_POINT_GROUP, BUILTIN_CHANNELS)
"""The channel-coder registry."""

_BUILTIN_IDS = {"chunked_pfr": 0, "pooled_pfr": 1}  # frozen: the first byte of every built-in configuration
_NAMED_ID = 255


CODER_ALIASES = {"pooled": "pooled_pfr", "plain": "chunked_pfr"}
"""Short names of the built-in channel coders (`--coder pooled`, `--coder plain`)."""


def build_channel(coder: str, max_chunk_bits: int) -> ChannelSimulator:
    """The channel coder `coder` (a registry name or one of [`CODER_ALIASES`]) built with `max_chunk_bits`;
    `ValueError` listing the available coders for an unknown name, or naming a coder that takes no chunk size."""
    simulator_class = get_channel_class(CODER_ALIASES.get(coder, coder))
    try:
        return simulator_class(max_chunk_bits=max_chunk_bits)
    except TypeError as error:
        raise ValueError(f"channel coder {coder!r} cannot be built with a chunk size: {error}") from None


def register_channel(name: str, simulator_class: type[ChannelSimulator]) -> None:
    """Registers a [`~diffc.channel.ChannelSimulator`] subclass under `name` (its `method` attribute) for this
    session; `ValueError` for an invalid or taken name, or a class that is not a channel simulator of that name."""
    _check_channel_class(name, simulator_class)
    CHANNELS.register(name, simulator_class)


def available_channels() -> list[str]:
    """The sorted names of every built-in, registered and installed channel coder."""
    return CHANNELS.names()


def get_channel_class(name: str) -> type[ChannelSimulator]:
    """The channel simulator class registered for `name`; `ValueError` listing the available coders for an unknown
    one."""
    simulator_class = CHANNELS.get(name)
    _check_channel_class(name, simulator_class)
    return simulator_class


def channel_config(simulator: ChannelSimulator) -> bytes:
    """The bytes a stream stores to rebuild `simulator`: its id (or name) and its settings (see the module docstring).

    Raises:
        `ValueError`: For a simulator whose class is not the one registered under its `method`, or settings the
        format cannot store.
    """
    name = getattr(type(simulator), "method", None)
    builtin = _is_builtin(simulator)
    if not builtin and (name not in available_channels() or get_channel_class(name) is not type(simulator)):
        raise ValueError(
            f"{type(simulator).__name__} (method {name!r}) is not a registered channel coder; register it with "
            f"register_channel({name!r}, {type(simulator).__name__}) or an entry point in {ENTRY_POINT_GROUP!r}"
        )
    settings = simulator.settings_bytes()
    if builtin:
        return bytes([_BUILTIN_IDS[name]]) + settings
    check_plugin_name("channel coder", name)  # an installed entry point's name was never checked
    config = bytes([_NAMED_ID, len(name)]) + name.encode("ascii") + settings
    if len(config) > MAX_CHANNEL_CONFIG_SIZE:
        raise ValueError(
            f"the configuration of {simulator!r} takes {len(config)} bytes; a stream stores at most "
            f"{MAX_CHANNEL_CONFIG_SIZE} (name and settings)"
        )
    return config


def channel_from_config(config: bytes) -> ChannelSimulator:
    """The channel simulator a stream's configuration describes ([`channel_config`]'s inverse).

    Raises:
        [`~errors.StreamError`]: For a configuration this installation cannot rebuild, naming the coder it needs.
    """
    name, settings = _split_config(config)
    try:  # a plugin's parser may fail in any way on forged settings: every failure is the stream's
        simulator = get_channel_class(name).from_settings_bytes(settings)
        rewritten = channel_config(simulator)
    except Exception as error:
        raise StreamError(f"invalid channel simulator configuration {config.hex()} ({name}): {error}") from None
    if rewritten != config:  # one configuration per simulator: nothing ignored, nothing implied
        raise StreamError(f"channel simulator configuration {config.hex()} is not the one {simulator!r} writes")
    return simulator


def _is_builtin(simulator: ChannelSimulator) -> bool:
    """Whether `simulator` is exactly a built-in coder (decided without reading the installed plugins)."""
    name = getattr(type(simulator), "method", None)
    return name in _BUILTIN_IDS and CHANNELS.get(name) is type(simulator)


def _split_config(config: bytes) -> tuple[str, bytes]:
    """The coder name and the settings of a configuration."""
    if not config:
        raise StreamError("empty channel simulator configuration")
    if config[0] != _NAMED_ID:
        for name, builtin_id in _BUILTIN_IDS.items():
            if config[0] == builtin_id:
                return name, config[1:]
        raise StreamError(f"unknown channel simulator id {config[0]} in configuration {config.hex()}")
    name_size = config[1] if len(config) > 1 else 0
    name = config[2 : 2 + name_size].decode("ascii", errors="replace")
    try:
        check_plugin_name("channel coder", name)
    except ValueError as error:
        raise StreamError(f"channel simulator configuration {config.hex()}: {error}") from None
    if name in _BUILTIN_IDS:
        raise StreamError(f"channel simulator configuration {config.hex()} names built-in {name!r}, stored by id")
    try:
        installed = available_channels()
    except ValueError as error:  # clashing plugins
        raise StreamError(f"cannot look up channel coder {name!r}: {error}") from None
    if name not in installed:
        raise StreamError(
            f"stream coded with channel coder {name!r}, which is not installed; available channel coders: "
            f"{', '.join(installed)}"
        )
    return name, config[2 + name_size :]


def _check_channel_class(name: str, simulator_class: object) -> None:
    if not (isinstance(simulator_class, type) and issubclass(simulator_class, ChannelSimulator)):
        raise ValueError(f"channel coder {name!r} must be a ChannelSimulator subclass, got {simulator_class!r}")
    if getattr(simulator_class, "method", None) != name:
        raise ValueError(
            f"channel simulator class {simulator_class.__name__} has method "
            f"{getattr(simulator_class, 'method', None)!r}, not {name!r}"
        )
