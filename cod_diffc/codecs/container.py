r"""The stream container every codec of the library writes (format version 2).

A file is one byte string, little-endian, variable-length integers as LEB128 varints (7 bits per byte):

    field                     bytes           notes
    magic                     3               b"DfC"
    format version            1               2
    codec name                1 + len         length, then ASCII (the codec registry name: "diffc", "turbo-ddcm", ...)
    backbone name             1 + len         length, then ASCII (the backbone registry name)
    model fingerprint         8               BackboneAdapter.fingerprint()
    image height, width       varint x2       the true size, height first (a codec may code a padded image)
    seed                      varint          keys all shared randomness
    side information          varint + len    the backbone's condition bytes (may be empty)
    codec payload             varint + len    the codec's own fields, read by the codec
    checksum                  4               CRC32 of every byte before it

Format version 1 was DiffC's own layout, written before the library had a second codec; its files are DiffC files
and [`~diffc.bitstream`] still reads them. [`stream_codec`] names the codec of either version without parsing more.

The reader checks magic, version and checksum first, then bounds every field before using it, and never allocates
memory sized by a field; any problem raises [`~errors.StreamError`] naming it. [`ByteReader`] and the writers below
are what codecs use to lay out their payloads the same way.
"""

import struct
import zlib
from dataclasses import dataclass

from cod_diffc.backbones.adapter import FINGERPRINT_SIZE, BackboneAdapter
from cod_diffc.errors import StreamError


MAGIC = b"DfC"
FORMAT_VERSION = 2
LEGACY_DIFFC_VERSION = 1
"""The format version whose files are DiffC's own layout (read by [`~diffc.bitstream.read_stream`])."""
MAX_IMAGE_SIDE = 65535
MAX_NAME_LENGTH = 64
MAX_SEED = 2**64 - 1
CHECKSUM_SIZE = 4


def check_ascii(field: str, value: str | None) -> None:
    """`ValueError` unless `value` is 1-[`MAX_NAME_LENGTH`] printable ASCII characters."""
    if not (isinstance(value, str) and 1 <= len(value) <= MAX_NAME_LENGTH and value.isascii() and value.isprintable()):
        raise ValueError(f"{field} must be 1-{MAX_NAME_LENGTH} printable ASCII characters, got {value!r}")


def varint(value: int) -> bytes:
    """The LEB128 bytes of a non-negative integer."""
    encoded = bytearray()
    while value >= 0x80:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


def short_string(value: str) -> bytes:
    """One length byte, then the ASCII bytes."""
    return bytes([len(value)]) + value.encode("ascii")


def float16(value: float) -> bytes:
    """The 2 little-endian bytes of a float16-representable number."""
    return struct.pack("<e", value)


def sized(data: bytes) -> bytes:
    """A varint length, then the bytes."""
    return varint(len(data)) + data


class ByteReader:
    """A cursor over checksummed bytes that raises [`~errors.StreamError`] naming the field it could not read."""

    def __init__(self, body: bytes, position: int = 0):
        self.body = body
        self.position = position

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
            check_ascii(field, value)
        except ValueError as error:
            raise StreamError(f"corrupt stream: {error}") from None
        return value

    def sized(self, field: str) -> bytes:
        return self.take(self.varint(f"{field} length", len(self.body)), field)

    def finish(self) -> None:
        """`StreamError` unless every byte was read."""
        if self.position != len(self.body):
            raise StreamError(f"corrupt stream: {len(self.body) - self.position} unexpected bytes at the end")


def check_stream_fields(backbone: str, fingerprint: bytes, height: int, width: int, seed: int) -> None:
    """`ValueError` naming the first of the fields every stream stores that a stream cannot hold."""
    check_ascii("backbone name", backbone)
    if len(fingerprint) != FINGERPRINT_SIZE:
        raise ValueError(f"fingerprint must be {FINGERPRINT_SIZE} bytes, got {len(fingerprint)}")
    for side, value in (("height", height), ("width", width)):
        if not 1 <= value <= MAX_IMAGE_SIDE:
            raise ValueError(f"image {side} must lie in [1, {MAX_IMAGE_SIDE}], got {value}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must lie in [0, 2**64), got {seed}")


def check_backbone(backbone: str, fingerprint: bytes, adapter: BackboneAdapter) -> None:
    """[`~errors.StreamError`] unless `adapter` is the backbone (`backbone`) and model (`fingerprint`) a stream
    records."""
    if backbone != adapter.name:
        raise StreamError(f"stream made by backbone {backbone!r}, but the decoder runs {adapter.name!r}")
    if fingerprint != adapter.fingerprint():
        known = adapter.known_model(fingerprint)
        made_with = f"{known} (fingerprint {fingerprint.hex()})" if known else f"fingerprint {fingerprint.hex()}"
        raise StreamError(
            f"stream made by another {backbone!r} model: {made_with}; the loaded model has "
            f"{adapter.fingerprint().hex()}"
        )


@dataclass(frozen=True)
class Container:
    r"""
    The fields every codec's stream shares, and the codec's own payload.

    Parameters:
        codec (`str`): Registry name of the codec that made the stream.
        backbone (`str`): Registry name of the backbone.
        fingerprint (`bytes`): That backbone's model fingerprint, [`FINGERPRINT_SIZE`] bytes.
        height (`int`), width (`int`): The image's true size in pixels, 1 to [`MAX_IMAGE_SIDE`].
        seed (`int`): Seed of all shared randomness, in [0, 2**64).
        side_info (`bytes`): The backbone's condition bytes.
        payload (`bytes`): The codec's fields.
    """

    codec: str
    backbone: str
    fingerprint: bytes
    height: int
    width: int
    seed: int
    side_info: bytes
    payload: bytes

    def __post_init__(self):
        check_ascii("codec name", self.codec)
        check_stream_fields(self.backbone, self.fingerprint, self.height, self.width, self.seed)

    def check_backbone(self, adapter: BackboneAdapter) -> None:
        """[`~errors.StreamError`] unless `adapter` is the backbone and model that made the stream."""
        check_backbone(self.backbone, self.fingerprint, adapter)


def write_container(container: Container) -> bytes:
    """The bytes of a file holding `container` (see the module docstring for the layout)."""
    body = b"".join(
        [
            MAGIC,
            bytes([FORMAT_VERSION]),
            short_string(container.codec),
            short_string(container.backbone),
            container.fingerprint,
            varint(container.height),
            varint(container.width),
            varint(container.seed),
            sized(container.side_info),
            sized(container.payload),
        ]
    )
    return body + struct.pack("<I", zlib.crc32(body))


def stream_format_version(data: bytes) -> int:
    """The format version of a file, after checking its magic; [`~errors.StreamError`] if it is not one of ours."""
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC:
        raise StreamError(f"not a cod-diffc stream: expected magic {MAGIC!r}, found {data[: len(MAGIC)]!r}")
    if len(data) <= len(MAGIC):
        raise StreamError("truncated stream: it ends before the format version")
    version = data[len(MAGIC)]
    if version not in (LEGACY_DIFFC_VERSION, FORMAT_VERSION):
        raise StreamError(
            f"unsupported stream format version {version} (this reader handles versions {LEGACY_DIFFC_VERSION} and "
            f"{FORMAT_VERSION})"
        )
    return version


def checked_body(data: bytes) -> bytes:
    """The bytes before the checksum, once the checksum matches; [`~errors.StreamError`] otherwise."""
    if len(data) < len(MAGIC) + 1 + CHECKSUM_SIZE:
        raise StreamError(f"truncated stream: {len(data)} bytes cannot hold a header and checksum")
    body, (checksum,) = data[:-CHECKSUM_SIZE], struct.unpack("<I", data[-CHECKSUM_SIZE:])
    if zlib.crc32(body) != checksum:
        raise StreamError("corrupt or truncated stream: checksum mismatch")
    return body


def read_container(data: bytes) -> Container:
    r"""
    Parses and validates a format-2 file.

    Raises:
        [`~errors.StreamError`]: If the bytes are not a stream, another format version (a format-1 file is a DiffC
            file: read it with [`~diffc.bitstream.read_stream`]), truncated, corrupted (checksum), or carry an
            invalid field.
    """
    data = bytes(data)
    version = stream_format_version(data)
    if version != FORMAT_VERSION:
        raise StreamError(f"format-{version} streams are DiffC's own layout; read them with the DiffC codec")
    reader = ByteReader(checked_body(data), position=len(MAGIC) + 1)
    try:
        container = Container(
            codec=reader.short_string("codec name"),
            backbone=reader.short_string("backbone name"),
            fingerprint=reader.take(FINGERPRINT_SIZE, "model fingerprint"),
            height=reader.varint("image height", MAX_IMAGE_SIDE, min_value=1),
            width=reader.varint("image width", MAX_IMAGE_SIDE, min_value=1),
            seed=reader.varint("seed", MAX_SEED),
            side_info=reader.sized("side information"),
            payload=reader.sized("codec payload"),
        )
    except ValueError as error:
        if isinstance(error, StreamError):
            raise
        raise StreamError(f"corrupt stream: {error}") from None
    reader.finish()
    return container


def stream_codec(data: bytes) -> str:
    """The name of the codec that made a file (`"diffc"` for format 1), read without decoding anything else."""
    if stream_format_version(data) == LEGACY_DIFFC_VERSION:
        return "diffc"
    return read_container(data).codec
