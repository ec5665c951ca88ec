"""Images of any size on every backbone: mirror padding to the backbone's multiple, the true size in the stream, the
crop on decode, bpp over the real pixels; and sizes the device cannot hold refused before any work."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cod_diffc.backbones import load_backbone
from cod_diffc.backbones.padding import crop_image, pad_image, padded_size
from cod_diffc.backbones.resources import ImageTooLargeError, check_image_fits
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc import decode, decompress, encode, read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.image_files import limit_long_side

from tiny_models import save_tiny_cod, save_tiny_sd_pipeline


SCHEDULE = DiffCSchedule(num_steps=4, t_end=0.1)
SIMULATOR = ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("any_size")
    return {
        "gaussian": load_backbone("gaussian", std=0.3, patch_size=4),
        "cod": load_backbone("cod", str(save_tiny_cod(root / "cod", seed=0))),
        "sd": load_backbone("sd", str(save_tiny_sd_pipeline(root / "sd", "epsilon"))),
    }


class TestPadding:
    @pytest.mark.parametrize("size", [2, 5, 9])
    def test_small_padding_is_a_reflection(self, size):
        image = torch.rand(1, 3, size, size + 1)
        padded = pad_image(image, 8)
        rows, cols = padded_size(size, size + 1, 8)
        assert padded.shape[-2:] == (rows, cols)
        if rows - size < size and cols - size - 1 < size + 1:
            expected = F.pad(image, (0, cols - size - 1, 0, rows - size), mode="reflect")
            assert torch.equal(padded, expected)
        assert torch.equal(crop_image(padded, size, size + 1), image)

    def test_any_amount_of_padding_mirrors_periodically(self):
        row = torch.tensor([[[[1.0, 2.0, 3.0]]]])
        assert pad_image(row, 9)[0, 0, 0].tolist() == [1, 2, 3, 2, 1, 2, 3, 2, 1]
        assert pad_image(torch.ones(1, 3, 1, 1), 4).shape == (1, 3, 4, 4)  # a 1-pixel image replicates

    def test_sizes_already_on_the_grid_are_untouched(self):
        image = torch.rand(1, 3, 16, 32)
        assert pad_image(image, 16) is image


@pytest.mark.parametrize("backbone", ["gaussian", "cod", "sd"])
@pytest.mark.parametrize("height, width", [(37, 45), (3, 5), (8, 150)], ids=["odd", "tiny", "very-wide"])
def test_any_size_round_trips_with_the_true_size_in_the_stream(backbones, backbone, height, width):
    adapter = backbones[backbone]
    image = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(height * width))
    result = encode(image, adapter, stop_step=[0, 2], schedule=SCHEDULE, simulator=SIMULATOR, progress=False)
    for point in result.points:
        parsed = read_stream(point.stream)
        assert (parsed.height, parsed.width) == (height, width)
        assert point.bpp == pytest.approx(8 * len(point.stream) / (height * width))  # real pixels, not padded ones
        assert torch.equal(decode(point.stream, adapter, progress=False).latent, point.latent)
        reconstruction = decompress(point.stream, adapter, num_denoise_steps=1, progress=False)
        assert reconstruction.shape == (1, 3, height, width)
        assert bool(torch.isfinite(reconstruction).all())


@pytest.mark.parametrize("backbone", ["cod", "sd"])
def test_a_size_the_device_cannot_hold_is_refused_before_any_work(backbones, backbone, monkeypatch):
    adapter = backbones[backbone]
    monkeypatch.setattr("cod_diffc.backbones.resources.available_memory_bytes", lambda device: 2**30)  # 1 GiB free
    check_image_fits(adapter, 256, 256)
    with pytest.raises(ImageTooLargeError, match=r"4032x3024 image needs about .* GiB .*--max-side \d+"):
        check_image_fits(adapter, 3024, 4032)
    calls = []
    monkeypatch.setattr(adapter, "encode_image", lambda image: calls.append(image))
    with pytest.raises(ImageTooLargeError):
        encode(torch.zeros(1, 3, 3024, 4032), adapter, stop_step=1, schedule=SCHEDULE, progress=False)
    assert not calls


def test_a_decoder_without_the_memory_refuses_before_replaying(backbones, monkeypatch):
    adapter = backbones["cod"]
    stream = encode(torch.rand(1, 3, 64, 64), adapter, stop_step=2, schedule=SCHEDULE, progress=False).points[0].stream
    monkeypatch.setattr("cod_diffc.backbones.resources.available_memory_bytes", lambda device: 2**10)
    with pytest.raises(ImageTooLargeError, match="decode it where more memory is free"):
        decode(stream, adapter, progress=False)


def test_the_suggested_side_fits(backbones, monkeypatch):
    adapter = backbones["cod"]
    monkeypatch.setattr("cod_diffc.backbones.resources.available_memory_bytes", lambda device: 2**30)
    with pytest.raises(ImageTooLargeError) as error:
        check_image_fits(adapter, 3024, 4032)
    side = int(str(error.value).split("--max-side ")[1].split(",")[0])
    check_image_fits(adapter, round(side * 3024 / 4032), side)


def test_unknown_estimates_refuse_nothing(backbones, monkeypatch):
    monkeypatch.setattr("cod_diffc.backbones.resources.available_memory_bytes", lambda device: 1)
    assert backbones["gaussian"].working_memory_bytes(4096, 4096) is None
    check_image_fits(backbones["gaussian"], 4096, 4096)


def test_limit_long_side_keeps_the_aspect_ratio():
    image = torch.rand(1, 3, 300, 1000)
    small = limit_long_side(image, 250)
    assert small.shape == (1, 3, 75, 250)
    assert limit_long_side(image, 1000) is image
    flat = torch.full((1, 3, 40, 80), 0.5)
    assert np.allclose(limit_long_side(flat, 20).numpy(), 128 / 255)
