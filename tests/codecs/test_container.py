import dataclasses

import pytest

from cod_diffc.codecs.container import (
    FORMAT_VERSION,
    Container,
    read_container,
    stream_codec,
    stream_format_version,
    write_container,
)
from cod_diffc.errors import StreamError


def make_container(**changes) -> Container:
    fields = {
        "codec": "my-codec",
        "backbone": "gaussian",
        "fingerprint": bytes(range(8)),
        "height": 300,
        "width": 200,
        "seed": 2**40,
        "side_info": b"side",
        "payload": b"payload bytes",
    }
    return Container(**{**fields, **changes})


def test_round_trip_and_self_description():
    data = write_container(make_container())
    assert data[:4] == b"DfC" + bytes([FORMAT_VERSION])
    assert read_container(data) == make_container()
    assert stream_codec(data) == "my-codec" and stream_format_version(data) == FORMAT_VERSION


def test_every_truncation_and_flip_is_a_stream_error():
    data = write_container(make_container())
    for length in range(len(data)):
        with pytest.raises(StreamError):
            read_container(data[:length])
    for offset in range(len(data)):
        corrupted = bytearray(data)
        corrupted[offset] ^= 0x01
        with pytest.raises(StreamError):
            read_container(bytes(corrupted))


def test_unknown_version_and_foreign_bytes_are_named():
    data = bytearray(write_container(make_container()))
    data[3] = 9
    with pytest.raises(StreamError, match="unsupported stream format version 9"):
        read_container(bytes(data))
    with pytest.raises(StreamError, match="not a cod-diffc stream"):
        stream_codec(b"\x89PNG\r\n")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"codec": ""}, "codec name"),
        ({"backbone": "x" * 65}, "backbone name"),
        ({"fingerprint": b"1"}, "fingerprint"),
        ({"height": 0}, "height"),
        ({"seed": 2**64}, "seed"),
    ],
)
def test_invalid_fields_are_refused_on_write(changes, message):
    with pytest.raises(ValueError, match=message):
        make_container(**changes)


def test_backbone_check_names_the_mismatch():
    from cod_diffc.backbones import load_backbone

    adapter = load_backbone("gaussian", std=0.3)
    container = make_container(fingerprint=adapter.fingerprint())
    container.check_backbone(adapter)
    with pytest.raises(StreamError, match="made by backbone 'cod'"):
        dataclasses.replace(container, backbone="cod").check_backbone(adapter)
    with pytest.raises(StreamError, match="another 'gaussian' model"):
        dataclasses.replace(container, fingerprint=bytes(8)).check_backbone(adapter)
