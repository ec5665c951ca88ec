r"""The DiffC file format (version 1).

A file is one byte string, little-endian, variable-length integers as LEB128 varints (7 bits per byte):

    field                     bytes      notes
    magic                     3          b"DfC"
    format version            1          1
    mode                      1          0 = DiffC stream, 1 = condition only (no reverse-channel steps)
    backbone name             1 + len    length, then ASCII (the registry name)
    model fingerprint         8          BackboneAdapter.fingerprint()
    image height, width       varint x2  height first
    seed                      varint     keys all shared randomness
    denoise guidance scale    2          float16
    -- DiffC streams only --
    channel simulator         1 + len    length, then the simulator's configuration (method and operating point)
    schedule num_steps        varint
    schedule t_end            2          float16
    stop step                 varint     number of steps sent, 0..num_steps
    encoding guidance scale   2          float16
    -- sections --
    side information          varint + len    the backbone's condition bytes (may be empty)
    step codes                varint + len    one rANS stream with every step's code (DiffC streams only)
    checksum                  4          CRC32 of every byte before it

Cost: a condition-only stream takes 26 bytes plus the backbone name, for image sides of 128 to 16383 pixels, a seed
below 128 and less than 128 bytes of side information (each varint takes one more byte per 7 more bits). A DiffC
stream adds 16 to 19 bytes with the default pooled coder (7 of them its channel configuration; 14 to 17 with the
plain coder's 5). For example the `cod` backbone at 512 x 512 (128 bytes of side information, whose length takes 2
bytes), default schedule and coder, cut at step 100: 47 bytes (0.0014 bpp) besides the side information and the
step codes; cut at step 0 (condition only), 158 bytes in all (0.0048 bpp).

The reader checks magic, version and checksum first, then bounds every field before using it, and never allocates
memory sized by a field; any problem raises [`~diffc.errors.StreamError`] naming it.
"""

import math
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from .adapter import FINGERPRINT_SIZE
from .errors import StreamError
from .schedule import MAX_NUM_STEPS, DiffCSchedule, to_float16


MAGIC = b"DfC"
FORMAT_VERSION = 1
MAX_IMAGE_SIDE = 65535
MAX_NAME_LENGTH = 64
MAX_CHANNEL_CONFIG_SIZE = 32
_MAX_SEED = 2**64 - 1
_CHECKSUM_SIZE = 4


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
            (DiffC streams only; see [`~diffc.codec.channel_config`]).
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
        _check_ascii("backbone name", self.backbone)
        if len(self.fingerprint) != FINGERPRINT_SIZE:
            raise ValueError(f"fingerprint must be {FINGERPRINT_SIZE} bytes, got {len(self.fingerprint)}")
        for side, value in (("height", self.height), ("width", self.width)):
            if not 1 <= value <= MAX_IMAGE_SIDE:
                raise ValueError(f"image {side} must lie in [1, {MAX_IMAGE_SIDE}], got {value}")
        if not 0 <= self.seed <= _MAX_SEED:
            raise ValueError(f"seed must lie in [0, 2**64), got {self.seed}")
        for which in ("denoise_guidance_scale", "encoding_guidance_scale"):
            scale = getattr(self, which)
            if not (math.isfinite(scale) and scale >= 0 and to_float16(scale) == scale):
                raise ValueError(f"{which} must be a finite, non-negative float16 value, got {scale}")
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


def _check_ascii(field: str, value: str | None) -> None:
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_NAME_LENGTH and value.isascii() and value.isprintable()):
        raise ValueError(f"{field} must be 1-{MAX_NAME_LENGTH} printable ASCII characters, got {value!r}")


def _varint(value: int) -> bytes:
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def _short_string(value: str) -> bytes:
    return bytes([len(value)]) + value.encode("ascii")


def write_stream(stream: DiffCStream) -> bytes:
    """Serialises `stream` into the bytes of a file (see the module docstring for the layout)."""
    parts = [
        MAGIC,
        bytes([FORMAT_VERSION, stream.mode]),
        _short_string(stream.backbone),
        stream.fingerprint,
        _varint(stream.height),
        _varint(stream.width),
        _varint(stream.seed),
        struct.pack("<e", stream.denoise_guidance_scale),
    ]
    if stream.schedule is not None:
        parts += [
            _varint(len(stream.channel)),
            stream.channel,
            _varint(stream.schedule.num_steps),
            struct.pack("<e", stream.schedule.t_end),
            _varint(stream.stop_step),
            struct.pack("<e", stream.encoding_guidance_scale),
        ]
    parts += [_varint(len(stream.side_info)), stream.side_info]
    if stream.schedule is not None:
        parts += [_varint(len(stream.step_codes)), stream.step_codes]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


class _Reader:
    """A cursor over the checksummed body that raises `StreamError` naming the field it could not read."""

    def __init__(self, body: bytes):
        self.body = body
        self.position = 0

    def take(self, size: int, field: str) -> bytes:
        if size > len(self.body) - self.position:
            raise StreamError(
                f"truncated stream: {field} needs {size} bytes at offset {self.position}, "
                f"{len(self.body) - self.position} left"
            )
        self.position += size
        return self.body[self.position - size : self.position]

    def varint(self, field: str, max_value: int, min_value: int = 0) -> int:
        value = 0
        for shift in range(0, 70, 7):
            byte = self.take(1, field)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
        else:
            raise StreamError(f"corrupt stream: {field} is a varint longer than 10 bytes")
        if not min_value <= value <= max_value:
            raise StreamError(f"corrupt stream: {field} is {value}, outside [{min_value}, {max_value}]")
        return value

    def float16(self, field: str) -> float:
        return struct.unpack("<e", self.take(2, field))[0]

    def short_string(self, field: str) -> str:
        raw = self.take(self.take(1, f"{field} length")[0], field)
        value = raw.decode("ascii", errors="replace")
        try:
            _check_ascii(field, value)
        except ValueError as error:
            raise StreamError(f"corrupt stream: {error}") from None
        return value


def read_stream(data: bytes) -> DiffCStream:
    r"""
    Parses and validates the bytes of a DiffC file.

    Args:
        data (`bytes`): The whole file.

    Returns:
        [`DiffCStream`]: Its contents.

    Raises:
        [`~diffc.errors.StreamError`]: If the bytes are not a DiffC file, another format version, truncated,
            corrupted (checksum), or carry an invalid field.
    """
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC:
        raise StreamError(f"not a DiffC stream: expected magic {MAGIC!r}, found {data[: len(MAGIC)]!r}")
    if len(data) <= len(MAGIC):
        raise StreamError("truncated stream: it ends before the format version")
    if data[len(MAGIC)] != FORMAT_VERSION:
        raise StreamError(
            f"unsupported DiffC format version {data[len(MAGIC)]} (this reader handles version {FORMAT_VERSION})"
        )
    if len(data) < len(MAGIC) + 1 + _CHECKSUM_SIZE:
        raise StreamError(f"truncated stream: {len(data)} bytes cannot hold a header and checksum")
    body, (checksum,) = data[:-_CHECKSUM_SIZE], struct.unpack("<I", data[-_CHECKSUM_SIZE:])
    if zlib.crc32(body) != checksum:
        raise StreamError("corrupt or truncated stream: checksum mismatch")

    reader = _Reader(body)
    reader.take(len(MAGIC) + 1, "magic and version")
    mode_byte = reader.take(1, "mode")[0]
    if mode_byte not in tuple(StreamMode):
        raise StreamError(f"corrupt stream: unknown mode {mode_byte}")
    mode = StreamMode(mode_byte)
    fields = {
        "backbone": reader.short_string("backbone name"),
        "fingerprint": reader.take(FINGERPRINT_SIZE, "model fingerprint"),
        "height": reader.varint("image height", MAX_IMAGE_SIDE, min_value=1),
        "width": reader.varint("image width", MAX_IMAGE_SIDE, min_value=1),
        "seed": reader.varint("seed", _MAX_SEED),
        "denoise_guidance_scale": reader.float16("denoise guidance scale"),
    }
    try:
        if mode == StreamMode.DIFFC:
            fields["channel"] = reader.take(
                reader.varint("channel configuration length", MAX_CHANNEL_CONFIG_SIZE, min_value=1),
                "channel configuration",
            )
            fields["schedule"] = DiffCSchedule(
                num_steps=reader.varint("schedule num_steps", MAX_NUM_STEPS, min_value=1),
                t_end=reader.float16("schedule t_end"),
            )
            fields["stop_step"] = reader.varint("stop step", fields["schedule"].num_steps)
            fields["encoding_guidance_scale"] = reader.float16("encoding guidance scale")
        fields["side_info"] = reader.take(reader.varint("side information length", len(body)), "side information")
        if mode == StreamMode.DIFFC:
            fields["step_codes"] = reader.take(reader.varint("step codes length", len(body)), "step codes")
        if reader.position != len(body):
            raise StreamError(f"corrupt stream: {len(body) - reader.position} unexpected bytes before the checksum")
        return DiffCStream(**fields)
    except StreamError:
        raise
    except ValueError as error:
        raise StreamError(f"corrupt stream: {error}") from None
