r"""DiffC streams: the fields of [`DiffCStream`] in the shared container, and the format-1 files before it.

Format 2 (written). The shared container ([`~codecs.container`]: codec `"diffc"`, backbone, fingerprint, image
size, seed, side information) carries this payload:

    field                     bytes      notes
    mode                      1          0 = DiffC stream, 1 = condition only (no reverse-channel steps)
    denoise guidance scale    2          float16
    -- DiffC streams only --
    channel simulator         1 + len    length (<= 127), then the coder's configuration: its id or name, its settings
    schedule num_steps        varint
    schedule t_end            2          float16
    stop step                 varint     number of steps sent, 0..num_steps
    encoding guidance scale   2          float16
    step codes                varint + len    one rANS stream with every step's code

Cost: a condition-only stream takes 28 bytes plus the codec and backbone names (33 + the backbone name), for image
sides of 128 to 16383 pixels, a seed below 128 and less than 128 bytes of side information (each varint takes one
more byte per 7 more bits). A DiffC stream adds 8 bytes plus its channel configuration
([`~diffc.channel_registry`]: 7 bytes for the default pooled coder, 5 for the plain one, name and settings for
others), and 1 to 4 more for schedules of 128 steps or more and step codes of 128 bytes or more.

Format 1 (read only: DiffC's own layout before the container, frozen by `tests/golden/v1/`):

    magic, version (1), mode, backbone name, fingerprint, height, width, seed, denoise guidance scale,
    [channel, num_steps, t_end, stop step, encoding guidance scale], side information, [step codes], CRC32

with the same encodings as above. Both versions parse to the same [`DiffCStream`] and decode identically.

The reader checks magic, version and checksum first, then bounds every field before using it, and never allocates
memory sized by a field; any problem raises [`~errors.StreamError`] naming it.
"""

from dataclasses import dataclass
from enum import IntEnum

from cod_diffc.backbones.adapter import FINGERPRINT_SIZE
from cod_diffc.codecs.container import (
    MAX_IMAGE_SIDE,
    MAX_SEED,
    ByteReader,
    Container,
    check_stream_fields,
    checked_body,
    float16,
    read_container,
    sized,
    stream_format_version,
    varint,
    write_container,
)
from cod_diffc.codecs.schedule import MAX_NUM_STEPS, DiffCSchedule, check_float16_scale
from cod_diffc.errors import StreamError


CODEC_NAME = "diffc"
"""The codec name DiffC streams record in the container."""
MAX_CHANNEL_CONFIG_SIZE = 127
"""Largest channel configuration a stream stores (its length is one varint byte)."""


class StreamMode(IntEnum):
    """What a stream carries besides the side information."""

    DIFFC = 0
    """Reverse-channel-coded steps: the decoder replays them to a noisy latent."""
    CONDITION_ONLY = 1
    """No steps: the decoder starts from the seeded noise at `t = 1` (the backbone's own condition codec)."""


@dataclass(frozen=True)
class DiffCStream:
    r"""
    The parsed contents of a DiffC file.

    Parameters:
        backbone (`str`): Registry name of the backbone that made the stream.
        fingerprint (`bytes`): That backbone's model fingerprint.
        height (`int`), width (`int`): Image size in pixels.
        seed (`int`): Seed of all shared randomness, in [0, 2**64).
        denoise_guidance_scale (`float`): Guidance for denoising the decoded latent (float16-representable).
        side_info (`bytes`): The backbone's condition bytes.
        channel (`bytes`, *optional*):
            Configuration of the channel simulator that coded the steps, 1 to [`MAX_CHANNEL_CONFIG_SIZE`] bytes
            (DiffC streams only; see [`~diffc.channel_registry.channel_config`]).
        schedule ([`DiffCSchedule`], *optional*): The encoding schedule (DiffC streams only).
        stop_step (`int`, defaults to `0`): Number of steps sent.
        encoding_guidance_scale (`float`, defaults to `1.0`): Guidance the steps were coded with.
        step_codes (`bytes`, defaults to `b""`): The rANS stream of the step codes.

    A stream without a schedule is a [`StreamMode.CONDITION_ONLY`] stream; it has no channel, stop step or codes.
    """

    backbone: str
    fingerprint: bytes
    height: int
    width: int
    seed: int
    denoise_guidance_scale: float
    side_info: bytes
    channel: bytes | None = None
    schedule: DiffCSchedule | None = None
    stop_step: int = 0
    encoding_guidance_scale: float = 1.0
    step_codes: bytes = b""

    def __post_init__(self):
        check_stream_fields(self.backbone, self.fingerprint, self.height, self.width, self.seed)
        for which in ("denoise_guidance_scale", "encoding_guidance_scale"):
            check_float16_scale(which, getattr(self, which))
        if self.schedule is None:
            if self.channel is not None or self.stop_step or self.step_codes:
                raise ValueError("a condition-only stream (no schedule) has no channel, stop step or step codes")
        else:
            if not (isinstance(self.channel, bytes) and 1 <= len(self.channel) <= MAX_CHANNEL_CONFIG_SIZE):
                raise ValueError(
                    f"channel configuration must be 1-{MAX_CHANNEL_CONFIG_SIZE} bytes, got {self.channel!r}"
                )
            if not 0 <= self.stop_step <= self.schedule.num_steps:
                raise ValueError(f"stop step {self.stop_step} outside [0, {self.schedule.num_steps}]")

    @property
    def mode(self) -> StreamMode:
        return StreamMode.CONDITION_ONLY if self.schedule is None else StreamMode.DIFFC


def _payload(stream: DiffCStream) -> bytes:
    """The DiffC fields of a format-2 stream (see the module docstring)."""
    parts = [bytes([stream.mode]), float16(stream.denoise_guidance_scale)]
    if stream.schedule is not None:
        parts += [
            sized(stream.channel),
            varint(stream.schedule.num_steps),
            float16(stream.schedule.t_end),
            varint(stream.stop_step),
            float16(stream.encoding_guidance_scale),
            sized(stream.step_codes),
        ]
    return b"".join(parts)


def write_stream(stream: DiffCStream) -> bytes:
    """Serialises `stream` into the bytes of a (format-2) file."""
    return write_container(
        Container(
            codec=CODEC_NAME,
            backbone=stream.backbone,
            fingerprint=stream.fingerprint,
            height=stream.height,
            width=stream.width,
            seed=stream.seed,
            side_info=stream.side_info,
            payload=_payload(stream),
        )
    )


def _read_mode(reader: ByteReader) -> StreamMode:
    mode_byte = reader.take(1, "mode")[0]
    if mode_byte not in tuple(StreamMode):
        raise StreamError(f"corrupt stream: unknown mode {mode_byte}")
    return StreamMode(mode_byte)


def _read_steps_header(reader: ByteReader) -> dict:
    """The channel, schedule, stop step and encoding guidance of a DiffC-mode stream."""
    fields = {
        "channel": reader.take(
            reader.varint("channel configuration length", MAX_CHANNEL_CONFIG_SIZE, min_value=1),
            "channel configuration",
        ),
        "schedule": DiffCSchedule(
            num_steps=reader.varint("schedule num_steps", MAX_NUM_STEPS, min_value=1),
            t_end=reader.float16("schedule t_end"),
        ),
    }
    fields["stop_step"] = reader.varint("stop step", fields["schedule"].num_steps)
    fields["encoding_guidance_scale"] = reader.float16("encoding guidance scale")
    return fields


def _read_format_2(data: bytes) -> DiffCStream:
    container = read_container(data)
    if container.codec != CODEC_NAME:
        raise StreamError(f"not a DiffC stream: made by codec {container.codec!r}")
    reader = ByteReader(container.payload)
    mode = _read_mode(reader)
    fields = {"denoise_guidance_scale": reader.float16("denoise guidance scale")}
    if mode == StreamMode.DIFFC:
        fields |= _read_steps_header(reader)
        fields["step_codes"] = reader.sized("step codes")
    reader.finish()
    return DiffCStream(
        backbone=container.backbone,
        fingerprint=container.fingerprint,
        height=container.height,
        width=container.width,
        seed=container.seed,
        side_info=container.side_info,
        **fields,
    )


def _read_format_1(data: bytes) -> DiffCStream:
    reader = ByteReader(checked_body(data), position=4)  # after the magic and the version
    mode = _read_mode(reader)
    fields = {
        "backbone": reader.short_string("backbone name"),
        "fingerprint": reader.take(FINGERPRINT_SIZE, "model fingerprint"),
        "height": reader.varint("image height", MAX_IMAGE_SIDE, min_value=1),
        "width": reader.varint("image width", MAX_IMAGE_SIDE, min_value=1),
        "seed": reader.varint("seed", MAX_SEED),
        "denoise_guidance_scale": reader.float16("denoise guidance scale"),
    }
    if mode == StreamMode.DIFFC:
        fields |= _read_steps_header(reader)
    fields["side_info"] = reader.sized("side information")
    if mode == StreamMode.DIFFC:
        fields["step_codes"] = reader.sized("step codes")
    reader.finish()
    return DiffCStream(**fields)


def read_stream(data: bytes) -> DiffCStream:
    r"""
    Parses and validates the bytes of a DiffC file, of format 2 or 1.

    Args:
        data (`bytes`): The whole file.

    Returns:
        [`DiffCStream`]: Its contents.

    Raises:
        [`~errors.StreamError`]: If the bytes are not a DiffC file (another codec's, or not a stream), an unknown
            format version, truncated, corrupted (checksum), or carry an invalid field.
    """
    data = bytes(data)
    version = stream_format_version(data)
    try:
        return _read_format_1(data) if version == 1 else _read_format_2(data)
    except StreamError:
        raise
    except ValueError as error:
        raise StreamError(f"corrupt stream: {error}") from None
