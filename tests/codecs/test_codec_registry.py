"""The codec registry: built-ins, runtime registrations, and streams that name a codec this installation lacks."""

import dataclasses

import pytest
import torch

from cod_diffc.backbones import load_backbone
from cod_diffc.codecs import (
    Codec,
    available_codecs,
    codec_of_stream,
    decompress,
    get_codec_class,
    load_codec,
    read_container,
    register_codec,
    registry,
    write_container,
)
from cod_diffc.diffc import DiffCCodec, DiffCSchedule
from cod_diffc.errors import StreamError


class MeanColourCodec(Codec):
    """A third-party codec in a few lines: the image's mean colour as the payload."""

    name = "mean-colour"
    summary = "the mean colour"

    def compress(self, image, adapter, *, target_bpp, seed=0, clamp_targets=False, progress=True):
        from cod_diffc.codecs import Container

        colour = bytes((255 * image.mean(dim=(0, 2, 3))).round().byte().tolist())
        return write_container(
            Container(self.name, adapter.name, adapter.fingerprint(), *image.shape[-2:], seed, b"", colour)
        )

    def decompress(self, stream, adapter, *, method="flow", num_denoise_steps=25, progress=True):
        container = read_container(stream)
        colour = torch.tensor(list(container.payload)) / 255
        return colour.view(1, 3, 1, 1).expand(1, 3, container.height, container.width)

    def stream_backbone(self, stream):
        return read_container(stream).backbone


@pytest.fixture
def runtime_registry(monkeypatch):
    monkeypatch.setattr(registry.CODECS, "runtime", {})


def test_builtin_codecs():
    assert {"diffc", "turbo-ddcm", "ddcm", "cod-lite-onestep"} <= set(available_codecs())
    assert get_codec_class("diffc") is DiffCCodec
    assert all(get_codec_class(name).summary for name in available_codecs())
    with pytest.raises(ValueError, match="unknown codec 'jpeg'.*available codecs: cod-lite-onestep, ddcm, diffc"):
        load_codec("jpeg")


def test_registered_codec_round_trips_through_the_dispatching_decompress(runtime_registry):
    register_codec("mean-colour", MeanColourCodec)
    adapter = load_backbone("gaussian")
    image = torch.full((1, 3, 4, 6), 0.25)
    stream = load_codec("mean-colour").compress(image, adapter, target_bpp=8.0)
    assert isinstance(codec_of_stream(stream), MeanColourCodec)
    torch.testing.assert_close(decompress(stream, adapter), image, atol=1 / 255, rtol=0)
    with pytest.raises(ValueError, match="already registered"):
        register_codec("mean-colour", MeanColourCodec)
    with pytest.raises(ValueError, match="is named 'mean-colour', not 'other'"):
        register_codec("other", MeanColourCodec)


def test_stream_of_an_uninstalled_codec_is_a_stream_error_naming_it():
    adapter = load_backbone("gaussian")
    stream = DiffCCodec(schedule=DiffCSchedule(num_steps=4)).compress(
        torch.rand(1, 3, 16, 16), adapter, target_bpp=4.0, progress=False
    )
    foreign = write_container(dataclasses.replace(read_container(stream), codec="mystery"))
    with pytest.raises(StreamError, match="codec 'mystery', which is not installed"):
        decompress(foreign, adapter)


def test_codec_settings_describe_what_changes_the_streams():
    from cod_diffc.diffc.channel import ChunkedPFRSimulator

    assert DiffCCodec(schedule=DiffCSchedule(num_steps=7)).settings()["num_steps"] == 7
    plain = DiffCCodec(simulator=ChunkedPFRSimulator(max_chunk_bits=8)).settings()
    assert plain["channel"] != DiffCCodec().settings()["channel"]
    turbo = load_codec("turbo-ddcm", num_steps=9).settings()
    assert (turbo["num_steps"], turbo["codebook_bits"], turbo["max_atoms"]) == (9, 10, 64)
