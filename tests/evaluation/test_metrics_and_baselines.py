"""MS-SSIM, the Bjøntegaard deltas, perceptual-metric loading and the baseline codecs' rate matching."""

import struct
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from cod_diffc.evaluation.baselines import (
    BASELINE_CODECS,
    SIZE_HEADER_BYTES,
    codec_availability,
    decode_downscaled,
    encode_at_rates,
    encode_downscaled_at_rates,
)
from cod_diffc.evaluation.bjontegaard import bd_psnr, bd_rate
from cod_diffc.evaluation.metrics import load_perceptual_metrics, ms_ssim, ms_ssim_scales, psnr


def noisy_pair(size, noise, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    image = (np.stack([x, y, x + y], axis=-1) * (200 / (2 * size)) + rng.integers(0, 50, (size, size, 3))).astype(
        np.uint8
    )
    noisy = np.clip(image.astype(int) + rng.integers(-noise, noise + 1, image.shape), 0, 255).astype(np.uint8)
    return image, noisy


# MS-SSIM of noisy_pair(192, 30) and noisy_pair(64, 30) by the implementation this project used before it called
# pytorch_msssim (commit 725f609): figures in earlier results/ were made with it.
PINNED_MS_SSIM_192 = 0.8306289
PINNED_MS_SSIM_64 = 0.8187504


def test_ms_ssim_is_pytorch_msssim_and_pinned_to_our_figures():
    import pytorch_msssim

    image, noisy = noisy_pair(192, 30)
    as_tensor = lambda array: torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).double()  # noqa: E731
    expected = float(pytorch_msssim.ms_ssim(as_tensor(image), as_tensor(noisy), data_range=255))
    assert ms_ssim(image, noisy) == expected
    # Figures of the metric this project has always reported (its own implementation until then), to 1e-4.
    assert ms_ssim(image, noisy) == pytest.approx(PINNED_MS_SSIM_192, abs=1e-4)
    small_image, small_noisy = noisy_pair(64, 30)
    assert ms_ssim(small_image, small_noisy) == pytest.approx(PINNED_MS_SSIM_64, abs=1e-4)


def test_ms_ssim_is_one_for_equal_images_and_falls_with_noise():
    image, slightly_noisy = noisy_pair(64, 5)
    _, noisy = noisy_pair(64, 40)
    assert ms_ssim(image, image) == pytest.approx(1.0)
    assert 1.0 > ms_ssim(image, slightly_noisy) > ms_ssim(image, noisy) > 0


def test_ms_ssim_uses_fewer_scales_on_small_images_and_refuses_tiny_ones():
    assert [ms_ssim_scales(size, 500) for size in (11, 20, 21, 44, 88, 160, 161, 512)] == [1, 1, 2, 3, 4, 4, 5, 5]
    with pytest.raises(ValueError, match="at least 11 pixels"):
        ms_ssim(np.zeros((10, 32, 3), np.uint8), np.zeros((10, 32, 3), np.uint8))


def test_bd_rate_and_bd_psnr():
    rates, psnrs = [0.05, 0.1, 0.2, 0.4, 0.8], [26.0, 28.5, 31.0, 33.2, 35.1]
    assert bd_rate(rates, psnrs, rates, psnrs) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(rates, psnrs, rates, psnrs) == pytest.approx(0.0, abs=1e-9)
    # Half the rate at the same quality is -50 %; the same rate at +1 dB is +1 dB.
    assert bd_rate(rates, psnrs, [rate / 2 for rate in rates], psnrs) == pytest.approx(-50.0, abs=1e-6)
    assert bd_psnr(rates, psnrs, rates, [psnr + 1 for psnr in psnrs]) == pytest.approx(1.0, abs=1e-9)
    # Anchor and test swapped: the inverse rate ratio.
    assert bd_rate([rate / 2 for rate in rates], psnrs, rates, psnrs) == pytest.approx(100.0, abs=1e-6)


def test_bd_needs_four_points_and_an_overlap():
    with pytest.raises(ValueError, match="needs 4"):
        bd_rate([0.1, 0.2, 0.2, 0.4], [30, 32, 32, 34], [0.1, 0.2, 0.3, 0.4], [30, 32, 33, 34])
    with pytest.raises(ValueError, match="do not overlap"):
        bd_psnr([0.1, 0.2, 0.3, 0.4], [30, 31, 32, 33], [1, 2, 3, 4], [30, 31, 32, 33])


@pytest.mark.parametrize("name", list(BASELINE_CODECS))
def test_baselines_meet_each_target_at_the_highest_quality_that_fits(name):
    codec = BASELINE_CODECS[name]
    image, _ = noisy_pair(64, 10)
    targets = [0.8, 1.5, 3.0]
    points = encode_at_rates(codec, image, targets)
    for target, point in zip(targets, points):
        bpp = 8 * len(point.data) / (64 * 64)
        assert point.reconstruction.shape == image.shape and point.reconstruction.dtype == np.uint8
        if point.quality > codec.quality_range[0]:
            assert bpp <= target
        if point.quality < codec.quality_range[1]:
            assert 8 * len(codec.encode(image, point.quality + 1)) / (64 * 64) > target
    assert [point.quality for point in points] == sorted(point.quality for point in points)


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif"])
def test_down_baselines_reach_rates_the_codec_cannot_and_never_lose_to_it(name):
    codec = BASELINE_CODECS[name]
    rows, cols = np.mgrid[0:192, 0:256]
    texture = np.random.default_rng(0).integers(0, 40, (192, 256, 3))
    image = (np.stack([rows, cols, (rows + cols) / 2], axis=-1) + texture).clip(0, 255).astype(np.uint8)
    pixels = 192 * 256
    smallest_bpp = 8 * len(codec.encode(image, codec.quality_range[0])) / pixels
    eighth = np.asarray(PIL.Image.fromarray(image).resize((32, 24), PIL.Image.Resampling.LANCZOS))
    smallest_down_bpp = 8 * (len(codec.encode(eighth, codec.quality_range[0])) + SIZE_HEADER_BYTES) / pixels
    assert smallest_down_bpp < smallest_bpp  # container overheads leave room below the full-size codec
    targets = [(smallest_down_bpp + smallest_bpp) / 2, 2.0]
    low, high = encode_downscaled_at_rates(codec, image, targets)
    for point, target in zip((low, high), targets):
        assert point.reconstruction.shape == image.shape
        assert np.array_equal(decode_downscaled(codec, point.data), point.reconstruction)
        assert struct.unpack(">HH", point.data[:SIZE_HEADER_BYTES]) == (256, 192)  # original size, counted in bpp
        assert 8 * len(point.data) / pixels <= target
    assert low.downscale > 1 and low.setting.startswith(f"downscale=1/{low.downscale},quality=")
    # The full-size codec is one of the candidates, at the budget left after the size header.
    (plain,) = encode_at_rates(codec, image, [targets[1] - 8 * SIZE_HEADER_BYTES / pixels])
    assert psnr(image, high.reconstruction) >= psnr(image, plain.reconstruction)


def test_a_codec_without_its_library_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # as if imagecodecs were not installed
    codecs, notes = codec_availability(["jpeg", "avif", "jxl"])
    assert [codec.name for codec in codecs] == ["jpeg"]
    assert notes == [
        "avif: not evaluated, the `imagecodecs` package is not installed",
        "jxl: not evaluated, the `imagecodecs` package is not installed",
    ]
    with pytest.raises(ValueError, match="unknown baseline codec"):
        codec_availability(["jpeg2000"])


def test_perceptual_metrics_load_or_say_why_not():
    metrics, notes = load_perceptual_metrics()
    for name in ("lpips", "dists"):
        assert (name in metrics) != any(note.startswith(f"{name}: skipped") for note in notes)
    image = torch.rand(1, 3, 64, 64)
    for metric in metrics.values():
        assert metric(image, image) == pytest.approx(0.0, abs=1e-5)
