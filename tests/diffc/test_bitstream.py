import dataclasses
import struct
import zlib
from pathlib import Path

import pytest

from cod_diffc.codecs.container import FORMAT_VERSION, MAGIC
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.bitstream import DiffCStream, StreamMode, read_stream, write_stream
from cod_diffc.errors import StreamError


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
        # Condition-only: 28 bytes + codec and backbone names (short side info, sides < 16384, seed < 128).
        stream = condition_only(side_info=b"", seed=7)
        assert len(write_stream(stream)) == 28 + len("diffc") + len("gaussian")
        # DiffC: 8 more + channel spec (num_steps, stop step < 128; codes < 128 bytes).
        stream = make_stream(side_info=b"", seed=7, step_codes=b"")
        assert len(write_stream(stream)) == 28 + len("diffc") + len("gaussian") + 8 + 5

    def test_stream_is_a_diffc_container(self):
        from cod_diffc.codecs.container import read_container, stream_codec

        data = write_stream(make_stream())
        container = read_container(data)
        assert (data[3], stream_codec(data)) == (FORMAT_VERSION, "diffc")
        assert (container.backbone, container.side_info, container.seed) == ("gaussian", b"condition", 1234)

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
            ({"channel": bytes(128)}, "channel"),
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
        with pytest.raises(StreamError, match="not a cod-diffc stream"):
            read_stream(b"PNG" + data[3:])

    def test_other_format_version(self):
        data = forge(write_stream(make_stream()), len(MAGIC), bytes([FORMAT_VERSION + 1]))
        with pytest.raises(StreamError, match=f"format version {FORMAT_VERSION + 1}"):
            read_stream(data)

    def test_empty_file(self):
        with pytest.raises(StreamError, match="not a cod-diffc stream"):
            read_stream(b"")

    def test_trailing_bytes_before_checksum(self):
        data = write_stream(make_stream())
        with pytest.raises(StreamError, match="unexpected bytes"):
            read_stream(with_checksum(data[:-4] + b"\x00"))

    def test_stream_of_another_codec_is_refused(self):
        from cod_diffc.codecs.container import read_container, write_container

        container = read_container(write_stream(make_stream()))
        other = write_container(dataclasses.replace(container, codec="turbo-ddcm"))
        with pytest.raises(StreamError, match="made by codec 'turbo-ddcm'"):
            read_stream(other)

    # Offsets into the body of `make_stream()`: magic 3, version 1, codec name 1 + 5, backbone name 1 + 8,
    # fingerprint 8, height 2, width 2, seed 2, side information 1 + 9, payload length 1; payload: mode 1,
    # denoise guidance 2, channel 1 + 5, num_steps 1, t_end 2, stop step 1, encoding guidance 2, step codes 1 + 5.
    @pytest.mark.parametrize(
        "offset, new, message",
        [
            (4, b"\x00", "codec name"),
            (10, b"\x00", "backbone name"),
            (11, b"\xff", "backbone name must be 1-64 printable ASCII"),
            (27, b"\x00\x00", "height"),
            (27, b"\xff\xff\xff\x7f", "height"),
            (33, b"\x7f", "side information"),  # length beyond the body
            (43, b"\x7f", "codec payload"),  # length beyond the body
            (44, b"\x07", "unknown mode"),
            (45, b"\x00\x7c", "denoise_guidance_scale must be a finite"),  # float16 infinity
            (47, b"\x00", "channel configuration length is 0"),
            (47, b"\x80\x01", "channel configuration length is 128"),
            (53, b"\x00", "num_steps is 0"),
            (54, b"\x00\x3c", "t_end"),  # float16 1.0
            (56, b"\x65", "stop step is 101"),  # > num_steps
            (57, b"\x00\xfe", "encoding_guidance"),  # float16 NaN
            (59, b"\x7f", "step codes"),  # length beyond the payload
            (31, b"\xff" * 11, "varint longer than 10 bytes"),
        ],
    )
    def test_invalid_field_behind_a_valid_checksum(self, offset, new, message):
        data = forge(write_stream(make_stream()), offset, new)
        with pytest.raises(StreamError, match=message):
            read_stream(data)


@pytest.fixture(scope="module")
def format_one() -> bytes:
    return (Path(__file__).parents[1] / "golden" / "v1" / "gaussian-chunked-steps.cdc").read_bytes()


class TestFormatOne:
    """DiffC's layout before the shared container: still read (tests/golden/v1/ freezes what it decodes to)."""

    def test_reads_to_the_same_fields_as_its_format_two_rewrite(self, format_one):
        parsed = read_stream(format_one)
        assert format_one[3] == 1 and parsed.stop_step == 10
        rewritten = write_stream(parsed)
        assert rewritten[3] == FORMAT_VERSION and read_stream(rewritten) == parsed

    def test_every_truncation_and_flipped_byte_raises_stream_error(self, format_one):
        for length in range(len(format_one)):
            with pytest.raises(StreamError):
                read_stream(format_one[:length])
        for offset in range(len(format_one)):
            corrupted = bytearray(format_one)
            corrupted[offset] ^= 0x10
            with pytest.raises(StreamError):
                read_stream(bytes(corrupted))
