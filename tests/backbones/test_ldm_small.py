"""The Stable Diffusion code path with a model that has learned something: the embedded `ldm-small` through the `ldm`
backbone (DiscreteVPAdapterMixin's time map and epsilon conversion), on a 64 x 64 crop of the sample image. A wrong
time map or conversion loses the denoising this checks."""

import math
from importlib.resources import files

import pytest
import torch

from cod_diffc.backbones import load_backbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import DiffCCodec
from cod_diffc.image_files import centre_square, load_image


@pytest.fixture(scope="module")
def adapter():
    return load_backbone("ldm")  # the embedded ldm-small


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return centre_square(load_image(files("cod_diffc") / "assets" / "sample.png"), 64)  # (1, 3, 64, 64)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).square().mean()))


@pytest.mark.parametrize("t, max_relative_error", [(0.2, 0.1), (0.5, 0.25), (0.8, 0.7)])
def test_the_model_denoises_at_the_time_it_is_given(adapter, image, t, max_relative_error):
    """x0_hat from z_t is far closer to the clean latent than z_t / alpha, and closer than the wrong conversion."""
    clean = adapter.encode_image(image)  # (1, 4, 16, 16)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    time = torch.tensor(t)
    alpha, sigma = adapter.alpha_sigma(time)
    z_t = alpha * clean + sigma * noise
    x0_hat, _ = adapter.predict_x0_and_epsilon(z_t, time, None, 1.0)
    energy = float(clean.square().mean())
    error = float((x0_hat - clean).square().mean())
    assert error < max_relative_error * energy
    assert error < 0.2 * float((z_t / alpha - clean).square().mean())
    adapter.prediction_type = "v_prediction"  # the same output read with the wrong conversion
    try:
        misread, _ = adapter.predict_x0_and_epsilon(z_t, time, None, 1.0)
    finally:
        adapter.prediction_type = "epsilon"
    assert error < 0.5 * float((misread - clean).square().mean())


def test_diffc_on_it_reaches_a_sane_rate_distortion(adapter, image):
    codec = DiffCCodec(schedule=DiffCSchedule(num_steps=8), simulator=ChunkedPFRSimulator(max_chunk_bits=10))
    coded = codec.compress_many(image, adapter, stop_steps=[2, 4, 8], progress=False)
    quality = [psnr(codec.decompress(point.stream, adapter, method="mean", progress=False), image) for point in coded]
    sizes = [len(point.stream) for point in coded]
    flat = psnr(image.mean(dim=(2, 3), keepdim=True).expand_as(image), image)
    assert sizes == sorted(sizes) and quality == sorted(quality)  # more steps, more bytes, better pictures
    assert quality[-1] > flat + 8  # 8 coded steps at about 0.5 bpp: far above the image's mean colour
