"""The one-step codec: the condition alone, decoded in one pass from an all-zero image at the noise end, as
CoD-Lite's one-step codecs decode; its rate, its errors, the command line and the evaluation."""

import json
import struct
import zlib
from dataclasses import replace

import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cod_diffc.backbones import load_backbone
from cod_diffc.cli import main
from cod_diffc.codecs import decompress, load_codec, read_container, write_container
from cod_diffc.errors import StreamError
from cod_diffc.evaluation.metrics import to_uint8

from tiny_models import save_tiny_cod


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_cod(tmp_path_factory.mktemp("onestep") / "lite", seed=0, name="cod-lite-tiny")


@pytest.fixture(scope="module")
def adapter(model_dir):
    return load_backbone("cod-lite", str(model_dir))


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))


def test_the_stream_is_the_condition_and_decodes_in_one_pass_from_zeros(adapter, image):
    codec = load_codec("cod-lite-onestep")
    stream = codec.compress(image, adapter, target_bpp=1.0)
    container = read_container(stream)
    pipeline = adapter.pipeline
    assert container.side_info == pipeline.condition_codec.compress(image)["strings"][0][0]
    assert container.payload == b"\x01"  # the layout version, nothing else
    condition = pipeline.condition_codec.decompress([[container.side_info]], (2, 3))["condition"]
    with torch.no_grad():  # the one-step decode of the release: x0 from an all-zero image at sigma = 1
        x0_hat = pipeline.transformer(torch.zeros(1, 3, 64, 96), torch.ones(1), condition).sample
    expected = ((x0_hat + 1) / 2).clamp(0, 1)
    for method in ("flow", "mean"):  # one decoder, whatever the method
        torch.testing.assert_close(codec.decompress(stream, adapter, method=method), expected, rtol=0, atol=1e-6)
    assert decompress(stream, adapter).shape == (1, 3, 64, 96)  # the library's dispatching decompress
    assert codec.decompress_latent(stream, adapter) is None


def test_its_rate_is_the_models_and_a_target_below_it_is_refused_or_clamped(adapter, image):
    codec = load_codec("cod-lite-onestep")
    stream = codec.compress(image, adapter, target_bpp=1.0)
    bpp = 8 * len(stream) / (64 * 96)
    with pytest.raises(ValueError, match=f"in {len(stream)} bytes .* its rate is the model's"):
        codec.compress(image, adapter, target_bpp=bpp / 2)
    assert codec.compress(image, adapter, target_bpp=bpp / 2, clamp_targets=True) == stream
    with pytest.raises(ValueError, match="takes no setting num_steps"):
        type(codec).from_settings(num_steps=4)


def test_bad_streams_and_backbones_without_a_condition_are_named(adapter, image):
    codec = load_codec("cod-lite-onestep")
    stream = codec.compress(image, adapter, target_bpp=1.0)
    container = read_container(stream)
    for payload in (b"", b"\x02", b"\x01\x00"):
        forged = write_container(replace(container, payload=payload))
        with pytest.raises(StreamError, match="layout version byte 1"):
            codec.decompress(forged, adapter)
    with pytest.raises(StreamError, match="not a cod-lite-onestep stream: made by codec 'diffc'"):
        codec.decompress(write_container(replace(container, codec="diffc")), adapter)
    with pytest.raises(ValueError, match="needs a backbone with a condition; 'gaussian' has none"):
        codec.compress(torch.rand(1, 3, 16, 16), load_backbone("gaussian", std=0.3), target_bpp=1.0)


def test_compress_decompress_and_evaluate_on_the_command_line(model_dir, adapter, tmp_path, capsys):
    pixels = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "photo.png")
    model = ["--backbone", "cod-lite", "--model", str(model_dir)]
    stream_path, png_path = tmp_path / "photo.cdc", tmp_path / "photo_decoded.png"
    compress = ["compress", str(tmp_path / "photo.png"), *model, "--codec", "cod-lite-onestep", "--bpp", "1"]
    assert main([*compress, "-o", str(stream_path), "--no-progress"]) == 0
    assert main(["decompress", str(stream_path), "--model", str(model_dir), "-o", str(png_path), "--no-progress"]) == 0
    expected = to_uint8(load_codec("cod-lite-onestep").decompress(stream_path.read_bytes(), adapter))
    assert np.array_equal(np.asarray(PIL.Image.open(png_path)), expected)

    output = tmp_path / "evaluation"
    evaluate = ["evaluate", str(tmp_path), *model, "--codec", "cod-lite-onestep", "--bpp", "0.5", "1", "--no-progress"]
    assert main([*evaluate, "--decode", "mean", "-o", str(output)]) == 0
    capsys.readouterr()
    (method_file,) = list(output.glob("*cod-lite-onestep*.json"))
    results = json.loads(method_file.read_text())["results"]
    assert len(set(results["bpp"])) == 1  # one point: the model's rate


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=60),
    kind=st.sampled_from(["truncate", "flip", "insert"]),
    value=st.integers(min_value=1, max_value=255),
)
def test_mutated_streams_with_a_forged_checksum_raise_stream_error_or_decode(adapter, image, position, kind, value):
    codec = load_codec("cod-lite-onestep")
    data = bytearray(codec.compress(image, adapter, target_bpp=1.0)[:-4])  # the checksum is forged below
    position %= len(data)
    if kind == "truncate":
        del data[position:]
    elif kind == "flip":
        data[position] ^= value
    else:
        data[position:position] = bytes([value])
    forged = bytes(data) + struct.pack("<I", zlib.crc32(bytes(data)))
    try:
        decoded = codec.decompress(forged, adapter)
    except StreamError:
        return
    container = read_container(forged)
    assert decoded.shape == (1, 3, container.height, container.width) and torch.isfinite(decoded).all()
