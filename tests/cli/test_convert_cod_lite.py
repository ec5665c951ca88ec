"""`cod-diffc convert` on the tiny CoD-Lite checkpoints of the reference folder (`$COD_DIFFC_LITE_REFERENCE_DIR`):
the converted pipelines reproduce the official sampler and one-step codec; wrong pairs are refused by name."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc import CodLitePipeline
from cod_diffc.cli import main


def lightning_checkpoint(folder: Path, variant: str, directory: Path) -> Path:
    """The tiny checkpoint of `variant`, decoys included, saved as the release's `torch.save` dictionary."""
    path = directory / f"CoD_Lite_{variant}_tiny.pt"
    torch.save({"state_dict": load_file(folder / f"tiny_{variant}_state_dict.safetensors")}, path)
    return path


def convert(folder: Path, variant: str, released: str, output: Path, config_variant: str | None = None) -> int:
    checkpoint = lightning_checkpoint(folder, variant, output.parent)
    config = folder / f"tiny_config_{config_variant or variant}.json"
    return main(["convert", str(checkpoint), "--variant", released, "--config", str(config), "-o", str(output)])


@pytest.mark.conformance
def test_the_pretrained_model_converts_to_the_official_sampler(cod_lite_official_dir, tmp_path, capsys):
    output = tmp_path / "pretrain"
    assert convert(cod_lite_official_dir, "pretrain", "cod-lite-pretrain", output) == 0
    assert "CodLitePipeline (cod-lite-pretrain), 405,235 denoiser parameters" in capsys.readouterr().out
    pipeline = CodLitePipeline.from_pretrained(output)
    pipeline.set_progress_bar_config(disable=True)
    io = load_file(cod_lite_official_dir / "tiny_pretrain_io.safetensors")
    sample = pipeline.sample(io["xT_f32"], io["cond_map_st_f32"], io["null_map_f32"], 3, 3.0)
    torch.testing.assert_close(sample, io["sample_euler_n3_f32"], rtol=0, atol=2e-4)


@pytest.mark.conformance
def test_a_one_step_codec_converts_and_reconstructs_from_an_all_zero_image(cod_lite_official_dir, tmp_path):
    output = tmp_path / "onestep"
    assert convert(cod_lite_official_dir, "onestep_0_5000", "cod-lite-0.5", output) == 0
    pipeline = CodLitePipeline.from_pretrained(output)
    io = load_file(cod_lite_official_dir / "tiny_onestep_0_5000_io.safetensors")
    (cod_file,) = pipeline.compress(io["image_uint8"].float() / 255)
    assert cod_file == bytes(io["cod_file_uint8"].tolist())
    height, width, payload = pipeline.parse_cod_file(cod_file)
    codec = pipeline.condition_codec
    condition = codec.decompress([[payload]], codec.code_grid_size(height, width))["condition"]
    with torch.no_grad():
        reconstruction = pipeline.transformer(torch.zeros(1, 3, height, width), torch.ones(1), condition).sample
    torch.testing.assert_close(reconstruction, io["recon_decompress_f32"], rtol=0, atol=5e-5)


@pytest.mark.conformance
@pytest.mark.parametrize(
    "variant, released, config_variant, message",
    [
        ("pretrain", "cod-lite-0.5", "pretrain", "downsampling 32 and 4 bits, but cod-lite-0.5 has downsampling 4"),
        ("pretrain", "cod-lite-0.0039", "pretrain", "no 'net.*' tensors"),  # the same rate, the other kind
        ("onestep_0_5000", "cod-lite-0.5", "pretrain", "downsampling 32 and 4 bits, but cod-lite-0.5"),
        ("onestep_0_5000", "cod-lite-pretrain", None, "downsampling 4 and 8 bits, but cod-lite-pretrain"),
    ],
)
def test_wrong_checkpoint_variant_or_config_pairs_are_refused_by_name(
    cod_lite_official_dir, tmp_path, capsys, variant, released, config_variant, message
):
    output = tmp_path / "out"
    assert convert(cod_lite_official_dir, variant, released, output, config_variant) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.parametrize(
    "variant, file", [("cod-lite-pretrain", "CoD_Lite_pretrain.pt"), ("cod-lite-0.125", "CoD_Lite_bpp_0_1250.pt")]
)
def test_offline_hub_conversion_names_the_released_file(tmp_path, capsys, monkeypatch, variant, file):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    arguments = ["convert", "--from-hub", "zhaoyangjia/CoD_Lite", "--variant", variant, "-o", str(tmp_path / "o")]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert f"zhaoyangjia/CoD_Lite/{file}" in error and "huggingface-cli download" in error
    assert not (tmp_path / "o").exists()
