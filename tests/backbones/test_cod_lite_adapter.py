"""The cod-lite backbone: CoD-Lite's x0 prediction through the flow adapter, every codec through the command line,
and the errors of a missing or wrong model."""

import numpy as np
import PIL.Image
import pytest
import torch

from cod_diffc.backbones import load_backbone
from cod_diffc.cli import main
from cod_diffc.codecs import decompress, read_container
from cod_diffc.evaluation.metrics import to_uint8

from tiny_models import save_tiny_cod


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cod_lite")
    save_tiny_cod(root / "lite", seed=0, name="cod-lite-tiny")
    save_tiny_cod(root / "cod", seed=0, name="cod-pixel-tiny")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(root / "photo.png")
    return root


@pytest.mark.parametrize("t", [0.02, 0.3, 0.95])
def test_the_codecs_get_the_denoisers_x0_and_the_noise_that_gives_back_the_latent(workspace, t):
    adapter = load_backbone("cod-lite", str(workspace / "lite"))
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    condition = adapter.prepare_condition(image)
    z_t = torch.randn(1, *adapter.latent_shape(64, 96), generator=torch.Generator().manual_seed(2))
    time = torch.tensor(t)
    x0_hat, eps_hat = adapter.predict_x0_and_epsilon(z_t, time, condition, 1.0)
    alpha, sigma = adapter.alpha_sigma(time)
    x_flow = z_t * torch.sqrt((1 - time) ** 2 + time**2)
    with torch.no_grad():
        direct = adapter.pipeline.transformer(x_flow, time.expand(1), condition.value[0]).sample
    torch.testing.assert_close(x0_hat, direct, rtol=0, atol=1e-6)  # not through a clamped velocity
    torch.testing.assert_close(alpha * x0_hat + sigma * eps_hat, z_t, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "codec, options",
    [
        ("diffc", ["--stop-step", "4", "--steps", "6", "--coder", "plain", "--chunk-bits", "8"]),
        ("turbo-ddcm", ["--bpp", "0.6", "--steps", "6"]),
        ("ddcm", ["--bpp", "0.6", "--steps", "6"]),
    ],
)
def test_every_codec_round_trips_on_it_through_the_command_line(workspace, capsys, codec, options):
    model = str(workspace / "lite")
    stream_path, png_path = workspace / f"photo_{codec}.cdc", workspace / f"photo_{codec}.png"
    arguments = ["compress", str(workspace / "photo.png"), "--backbone", "cod-lite", "--model", model]
    assert main([*arguments, "--codec", codec, *options, "-o", str(stream_path), "--no-progress"]) == 0
    stream = stream_path.read_bytes()
    assert read_container(stream).backbone == "cod-lite"
    decompress_arguments = ["decompress", str(stream_path), "--model", model, "--denoise-steps", "2"]
    assert main([*decompress_arguments, "-o", str(png_path), "--no-progress"]) == 0
    capsys.readouterr()
    expected = to_uint8(decompress(stream, load_backbone("cod-lite", model), num_denoise_steps=2, progress=False))
    assert np.array_equal(np.asarray(PIL.Image.open(png_path)), expected)


def test_it_needs_a_model_and_refuses_a_cod_pipeline_naming_it(workspace, capsys):
    with pytest.raises(ValueError, match="needs --model"):
        load_backbone("cod-lite")
    with pytest.raises(ValueError, match="holds a CodPipeline model, not a CodLitePipeline"):
        load_backbone("cod-lite", str(workspace / "cod"))
    with pytest.raises(ValueError, match="holds a CodLitePipeline model, not a CodPipeline"):
        load_backbone("cod", str(workspace / "lite"))
    assert main(["backbones"]) == 0
    assert "cod-lite" in capsys.readouterr().out
