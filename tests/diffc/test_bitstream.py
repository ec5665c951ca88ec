import dataclasses
import struct
import zlib

import pytest

from cod_diffc.diffc.bitstream import FORMAT_VERSION, MAGIC, DiffCStream, StreamMode, read_stream, write_stream
from cod_diffc.diffc.errors import StreamError
from cod_diffc.diffc.schedule import DiffCSchedule


def make_stream(**changes) -> DiffCStream:
    fields = {
        "backbone": "gaussian",
        "fingerprint": bytes(range(8)),
        "height": 512,
        "width": 768,
        "seed": 1234,
        "denoise_guidance_scale": 1.25,
        "side_info": b"condition",
        "channel": bytes([0, 16, 2, 8, 24]),
        "schedule": DiffCSchedule(num_steps=100, t_end=0.05),
        "stop_step": 42,
        "encoding_guidance_scale": 3.0,
        "step_codes": b"\x01\x02\x03\x04\x05",
    }
    fields.update(changes)
    return DiffCStream(**fields)


def condition_only(**changes) -> DiffCStream:
    return make_stream(
        channel=None, schedule=None, stop_step=0, encoding_guidance_scale=1.0, step_codes=b"", **changes
    )


def with_checksum(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def forge(data: bytes, offset: int, new: bytes) -> bytes:
    """Overwrites bytes of a valid file's body and recomputes the checksum, to reach the field checks."""
    body = bytearray(data[:-4])
    body[offset : offset + len(new)] = new
    return with_checksum(bytes(body))


class TestRoundTrip:
    def test_diffc_stream_round_trips(self):
        stream = make_stream()
        assert read_stream(write_stream(stream)) == stream
        assert stream.mode == StreamMode.DIFFC

    def test_condition_only_stream_round_trips(self):
        stream = condition_only()
        assert read_stream(write_stream(stream)) == stream
        assert stream.mode == StreamMode.CONDITION_ONLY

    def test_height_and_width_are_not_swapped(self):
        parsed = read_stream(write_stream(make_stream(height=64, width=1024)))
        assert (parsed.height, parsed.width) == (64, 1024)

    def test_large_fields_round_trip(self):
        stream = make_stream(seed=2**64 - 1, height=65535, width=1, side_info=bytes(300), step_codes=bytes(70000))
        assert read_stream(write_stream(stream)) == stream

    def test_header_cost_matches_the_documented_layout(self):
        # Condition-only: 26 bytes + backbone name (short side info, sides < 16384, seed < 128).
        stream = condition_only(side_info=b"", seed=7)
        assert len(write_stream(stream)) == 26 + len("gaussian")
        # DiffC: 8 more + channel spec (num_steps, stop step < 128; codes < 128 bytes).
        stream = make_stream(side_info=b"", seed=7, step_codes=b"")
        assert len(write_stream(stream)) == 26 + len("gaussian") + 8 + 5

    def test_same_stream_gives_same_bytes(self):
        assert write_stream(make_stream()) == write_stream(make_stream())


class TestWriterValidation:
    @pytest.mark.parametrize(
        "changes, message",
        [
            ({"backbone": ""}, "backbone name"),
            ({"backbone": "é"}, "backbone name"),
            ({"fingerprint": b"short"}, "fingerprint"),
            ({"height": 0}, "height"),
            ({"width": 70000}, "width"),
            ({"seed": -1}, "seed"),
            ({"denoise_guidance_scale": 1.1}, "float16"),
            ({"encoding_guidance_scale": float("nan")}, "encoding_guidance_scale"),
            ({"stop_step": 101}, "stop step"),
            ({"channel": None}, "channel"),
            ({"channel": bytes(33)}, "channel"),
        ],
    )
    def test_invalid_fields_raise_value_error(self, changes, message):
        with pytest.raises(ValueError, match=message):
            make_stream(**changes)

    def test_condition_only_stream_rejects_step_codes(self):
        with pytest.raises(ValueError, match="condition-only"):
            condition_only().__class__(**{**dataclasses.asdict(condition_only()), "step_codes": b"x"})


class TestMalformedFiles:
    def test_every_truncation_raises_stream_error(self):
        data = write_stream(make_stream())
        for length in range(len(data)):
            with pytest.raises(StreamError):
                read_stream(data[:length])

    def test_every_flipped_byte_raises_stream_error(self):
        data = write_stream(make_stream())
        for offset in range(len(data)):
            corrupted = bytearray(data)
            corrupted[offset] ^= 0x10
            with pytest.raises(StreamError):
                read_stream(bytes(corrupted))

    def test_flipped_payload_byte_is_reported_as_checksum_mismatch(self):
        data = bytearray(write_stream(make_stream()))
        data[-6] ^= 0xFF
        with pytest.raises(StreamError, match="checksum"):
            read_stream(bytes(data))

    def test_wrong_magic(self):
        data = write_stream(make_stream())
        with pytest.raises(StreamError, match="not a DiffC stream"):
            read_stream(b"PNG" + data[3:])

    def test_other_format_version(self):
        data = forge(write_stream(make_stream()), len(MAGIC), bytes([FORMAT_VERSION + 1]))
        with pytest.raises(StreamError, match=f"format version {FORMAT_VERSION + 1}"):
            read_stream(data)

    def test_empty_file(self):
        with pytest.raises(StreamError, match="not a DiffC stream"):
            read_stream(b"")

    def test_trailing_bytes_before_checksum(self):
        data = write_stream(make_stream())
        with pytest.raises(StreamError, match="unexpected bytes"):
            read_stream(with_checksum(data[:-4] + b"\x00"))

    # Offsets into the body of `make_stream()`: magic 3, version 1, mode 1, name 1 + 8, fingerprint 8, height 2,
    # width 2, seed 2, denoise guidance 2, channel 1 + 5, num_steps 1, t_end 2, stop step 1, encoding guidance 2,
    # side information 1 + 9.
    @pytest.mark.parametrize(
        "offset, new, message",
        [
            (4, b"\x07", "unknown mode"),
            (5, b"\x00", "backbone name"),
            (6, b"\xff", "backbone name must be 1-64 printable ASCII"),
            (22, b"\x00\x00", "height"),
            (22, b"\xff\xff\xff\x7f", "height"),
            (28, b"\x00\x7c", "denoise_guidance_scale must be a finite"),  # float16 infinity
            (30, b"\x00", "channel configuration length is 0"),
            (30, b"\x21", "channel configuration length is 33"),
            (36, b"\x00", "num_steps is 0"),
            (37, b"\x00\x3c", "t_end"),  # float16 1.0
            (39, b"\x65", "stop step is 101"),  # > num_steps
            (40, b"\x00\xfe", "encoding_guidance"),  # float16 NaN
            (42, b"\x7f", "side information"),  # length beyond the body
            (26, b"\xff" * 11, "varint longer than 10 bytes"),
        ],
    )
    def test_invalid_field_behind_a_valid_checksum(self, offset, new, message):
        data = forge(write_stream(make_stream()), offset, new)
        with pytest.raises(StreamError, match=message):
            read_stream(data)
