"""Where the codecs run and in what precision: devices with float64 only, TF32 off while coding, float32 noise levels
and upcast VAEs in half precision."""

import pytest
import torch

from cod_diffc import CodPipeline
from cod_diffc.backbones import GaussianBackbone
from cod_diffc.cli import main
from cod_diffc.codecs import devices, load_codec
from cod_diffc.diffc import DiffCSchedule, encode
from cod_diffc.diffc.channel import ChunkedPFRSimulator


def test_devices_without_float64_are_refused_by_name(capsys):
    with pytest.raises(ValueError, match="not 'mps'.*float64"):
        devices.check_codec_device("mps")
    assert devices.check_codec_device("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit):
        main(["compress", "image.png", "--device", "mps"])
    assert "float64" in capsys.readouterr().err


def test_range_checks_raise_on_the_cpu():
    with pytest.raises(ValueError, match="rows must be"):
        devices.check_in_range(torch.tensor([0, 2**33]), 0, 2**32 - 1, "rows must be in range")
    devices.check_in_range(torch.tensor([0, 5]), 0, 5, "never raised")
    devices.check_in_range(torch.tensor([], dtype=torch.int64), 0, 5, "never raised")


@pytest.fixture
def tf32_on():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


class RecordingGaussianBackbone(GaussianBackbone):
    """Records the TF32 settings every time the backbone predicts."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tf32_seen = set()

    def predict_x0_and_epsilon(self, *args, **kwargs):
        self.tf32_seen.add((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return super().predict_x0_and_epsilon(*args, **kwargs)


def test_codecs_run_with_tf32_off_and_restore_the_users_setting(tf32_on):
    adapter = RecordingGaussianBackbone(std=0.5, patch_size=4)
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    simulator = ChunkedPFRSimulator(max_chunk_bits=8)
    encoded = encode(image, adapter, stop_step=3, schedule=DiffCSchedule(6), simulator=simulator, progress=False)
    stream = load_codec("turbo-ddcm").compress(image, adapter, target_bpp=4.0, progress=False)
    load_codec("turbo-ddcm").decompress(stream, adapter, progress=False)
    assert encoded.points[0].stop_step == 3
    assert adapter.tf32_seen == {(False, False)}
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)


def test_tf32_set_through_fp32_precision_is_turned_off_through_it_too():
    """Newer torch refuses a mix of `allow_tf32` and `fp32_precision`: the codecs use the API the user used."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "tf32"
    try:
        seen = []

        class PrecisionRecordingBackbone(GaussianBackbone):
            def predict_x0_and_epsilon(self, *args, **kwargs):
                seen.append((matmul.fp32_precision, conv.fp32_precision))
                return super().predict_x0_and_epsilon(*args, **kwargs)

        adapter = PrecisionRecordingBackbone(std=0.5, patch_size=4)
        image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
        encode(
            image, adapter, stop_step=2, schedule=DiffCSchedule(6), simulator=ChunkedPFRSimulator(8), progress=False
        )
        assert seen and set(seen) == {("ieee", "ieee")}
        assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def test_tf32_can_be_left_to_the_user(tf32_on, monkeypatch):
    monkeypatch.setenv("COD_DIFFC_ALLOW_TF32", "1")
    with devices.tf32_disabled():
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32


def tiny_pipeline(name: str) -> CodPipeline:
    torch.manual_seed(0)
    return CodPipeline.from_named_config(name)


def test_the_noise_level_reaches_a_bfloat16_network_in_float32():
    pipe = tiny_pipeline("cod-pixel-tiny").to(dtype=torch.bfloat16)
    seen = []
    pipe.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[1].dtype))
    sample = torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)
    condition = torch.zeros(1, pipe.transformer.config.hidden_size, 2, 2, dtype=torch.bfloat16)
    sigma = torch.tensor(0.3 + 2**-12)  # not a bfloat16 value
    pipe.guided_velocity(sample, sigma, condition, condition, guidance_scale=2.0)
    assert seen and set(seen) == {torch.float32}


def test_a_float16_vae_that_asks_for_it_computes_in_float32():
    pipe = tiny_pipeline("cod-latent-tiny")
    pipe.vae.register_to_config(force_upcast=True)
    pipe.vae.to(torch.float16)
    seen = []
    pipe.vae.register_forward_pre_hook(lambda module, args: seen.append(module.dtype))
    pipe.vae.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].dtype))
    latents = pipe.to_diffusion_space(torch.rand(1, 3, 32, 32), sample_posterior=False)
    images = pipe.to_images(latents)
    assert latents.dtype == images.dtype == torch.float32 and torch.isfinite(images).all()
    assert torch.float32 in seen and torch.float16 not in seen
    assert pipe.vae.dtype == torch.float16  # cast back after
