"""The `ldm` backbone: a LatentDiffusionPipeline folder through DiscreteVPAdapterMixin and the SD latent convention."""

from pathlib import Path

import pytest
import torch

from cod_diffc import CodPipeline, LatentDiffusionPipeline
from cod_diffc.backbones import denoise
from cod_diffc.backbones.latent_diffusion import LatentDiffusionAdapter
from cod_diffc.backbones.registry import available_backbones, load_backbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import decompress, encode
from cod_diffc.errors import StreamError

from tiny_models import SD_IMAGE_SIZE, save_tiny_ldm_pipeline


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_ldm_pipeline(tmp_path_factory.mktemp("ldm"))


@pytest.fixture(scope="module")
def adapter(model_dir) -> LatentDiffusionAdapter:
    return LatentDiffusionAdapter.from_pretrained(model_dir)


def make_image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, SD_IMAGE_SIZE, SD_IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def test_loads_through_the_registry_in_float32(model_dir):
    assert "ldm" in available_backbones()
    adapter = load_backbone("ldm", str(model_dir))
    assert isinstance(adapter, LatentDiffusionAdapter)
    assert (adapter.name, adapter.prediction_type, adapter.num_train_timesteps) == ("ldm", "epsilon", 1000)
    assert (adapter.dtype, adapter.vae.dtype) == (torch.float32, torch.float32)


def test_folders_of_the_wrong_kind_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no latent diffusion model directory at"):
        LatentDiffusionAdapter.from_pretrained(tmp_path / "missing")
    CodPipeline.from_named_config("cod-latent-tiny").save_pretrained(tmp_path / "cod")
    with pytest.raises(ValueError, match="wrong kind: .* lacks unet/; expected a LatentDiffusionPipeline"):
        load_backbone("ldm", str(tmp_path / "cod"))


def test_latents_are_the_posterior_mean_times_the_scaling_factor(adapter):
    image = make_image()
    expected = adapter.vae.encode(2 * image - 1).latent_dist.mean * adapter.vae.config.scaling_factor
    torch.testing.assert_close(adapter.encode_image(image), expected, rtol=0, atol=0)
    assert adapter.latent_shape(SD_IMAGE_SIZE, 2 * SD_IMAGE_SIZE) == (4, 4, 8)
    # the UNet halves the 4x8 latent once: sides must be multiples of 8 x 2 pixels
    with pytest.raises(ValueError, match="the ldm backbone needs image sides that are positive multiples of 16"):
        adapter.latent_shape(SD_IMAGE_SIZE, 24)
    assert adapter.decode_latent(expected).shape == image.shape


def test_the_unet_output_is_read_as_its_prediction_type(model_dir, tmp_path):
    """The same weights read as epsilon and as v: x0 and epsilon follow the two conversions."""
    as_v = LatentDiffusionAdapter.from_pretrained(save_tiny_ldm_pipeline(tmp_path, "v_prediction"))
    as_epsilon = LatentDiffusionAdapter.from_pretrained(model_dir)
    z_t, t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1)), torch.tensor(0.4)
    output = as_epsilon.unet(z_t, as_epsilon.training_timestep(t).float().expand(1)).sample
    alpha, sigma = as_epsilon.alpha_sigma(t)
    x0_epsilon, epsilon = as_epsilon.predict_x0_and_epsilon(z_t, t, None, 1.0)
    torch.testing.assert_close(epsilon, output)
    torch.testing.assert_close(x0_epsilon, (z_t - sigma * output) / alpha)
    x0_v, epsilon_v = as_v.predict_x0_and_epsilon(z_t, t, None, 1.0)
    torch.testing.assert_close(x0_v, alpha * z_t - sigma * output)
    torch.testing.assert_close(epsilon_v, alpha * output + sigma * z_t)
    assert as_v.fingerprint() != as_epsilon.fingerprint()


def test_diffc_round_trip_decodes_what_the_encoder_saw(model_dir, adapter):
    image = make_image(2)
    result = encode(
        image,
        adapter,
        stop_step=[2, 4],
        schedule=DiffCSchedule(num_steps=4),
        simulator=ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2),
        progress=False,
    )
    decoder_side = load_backbone("ldm", str(model_dir))
    assert decoder_side.fingerprint() == adapter.fingerprint()
    for point in result.points:
        assert point.stream and result.condition.side_info == b""  # no condition travels
        expected = adapter.decode_latent(
            denoise(point.latent, point.t, adapter, result.condition, 1.0, num_steps=2, progress=False)
        )
        decoded = decompress(point.stream, decoder_side, num_denoise_steps=2, progress=False)
        assert torch.equal(decoded, expected)


def test_a_stream_of_another_model_is_refused(model_dir, adapter, tmp_path):
    stream = encode(make_image(), adapter, stop_step=1, schedule=DiffCSchedule(num_steps=2), progress=False)
    pipeline = LatentDiffusionPipeline.from_pretrained(model_dir)
    with torch.no_grad():
        pipeline.unet.conv_out.bias.add_(0.1)
    pipeline.save_pretrained(tmp_path / "other")
    with pytest.raises(StreamError, match="made by another 'ldm' model"):
        decompress(stream.points[0].stream, LatentDiffusionAdapter.from_pretrained(tmp_path / "other"), progress=False)


def test_the_pipeline_samples_images_in_the_unit_interval(model_dir):
    pipeline = LatentDiffusionPipeline.from_pretrained(model_dir)
    pipeline.set_progress_bar_config(disable=True)
    images = pipeline(batch_size=2, height=16, width=32, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 16, 32, 3) and images.dtype == "float32"
    assert 0 <= images.min() and images.max() <= 1
    with pytest.raises(ValueError, match="positive multiples of 16"):
        pipeline(height=24, num_inference_steps=1)
