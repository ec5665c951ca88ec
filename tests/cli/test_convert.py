"""`cod-diffc convert` on the tiny official-format checkpoints of `shared/reference/cod_official`."""

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc import CodPipeline
from cod_diffc.cli import main


@pytest.fixture(scope="module")
def tiny_checkpoint(reference_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    state_dict = load_file(reference_dir / "cod_official" / "tiny_pixel_state_dict.safetensors")
    path = folder / "CoD_pixel_tiny.pt"
    torch.save({"state_dict": state_dict}, path)  # the Lightning layout of the release
    return path


def test_converted_pipeline_reproduces_the_official_sampler(reference_dir, tiny_checkpoint, tmp_path, capsys):
    config = reference_dir / "cod_official" / "tiny_config_pixel.json"
    output = tmp_path / "pipeline"
    assert main(["convert", str(tiny_checkpoint), "--variant", "pixel", "--config", str(config),
                 "-o", str(output)]) == 0
    assert "474,763 denoiser parameters" in capsys.readouterr().out
    pipe = CodPipeline.from_pretrained(output)
    pipe.set_progress_bar_config(disable=True)
    io = load_file(reference_dir / "cod_official" / "tiny_pixel_io.safetensors")
    height, width = io["image_uint8"].shape[-2:]
    null_condition = pipe.condition_codec.null_condition(height, width)
    sample = pipe.sample(io["xT_f32"], io["cond_map_f32"], null_condition, 3, 3.0)
    torch.testing.assert_close(sample, io["sample_adam2_n3_f32"], atol=2e-4, rtol=0)


def test_wrong_variant_or_config_pairs_fail_loudly(reference_dir, tiny_checkpoint, tmp_path, capsys):
    latent_config = reference_dir / "cod_official" / "tiny_config_latent.json"
    assert main(["convert", str(tiny_checkpoint), "--variant", "latent", "--config", str(latent_config),
                 "-o", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "shapes differ" in error or "not in the checkpoint" in error
    # Without a config the released size is assumed: every parameter is reported missing or mis-shaped.
    assert main(["convert", str(tiny_checkpoint), "--variant", "pixel", "-o", str(tmp_path / "b")]) == 2
    assert "shapes differ" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": NotATensor()}, path)
    assert main(["convert", str(path), "--variant", "pixel", "-o", str(tmp_path / "out")]) == 2
    assert "weights_only" in capsys.readouterr().err


def test_offline_hub_conversion_says_what_to_download(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["convert", "--from-hub", "zhaoyangjia/CoD", "--variant", "pixel", "-o", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err
    assert "cod/CoD_pixel_vpred.pt" in error and "huggingface-cli download" in error
