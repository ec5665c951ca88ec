"""`cod-diffc convert` on the tiny official-format checkpoints of the reference folder (`$COD_DIFFC_REFERENCE_DIR`)."""

import json
import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from cod_diffc import CodPipeline
from cod_diffc.cli import main
from cod_diffc.pipelines.named_configs import get_named_config


def tiny_variants(folder: Path) -> list[str]:
    """The variants with a tiny checkpoint in the reference folder, as the files spell them (`latent_64bits`)."""
    paths = sorted(folder.glob("tiny_*_state_dict.safetensors"))
    return [path.name[len("tiny_") : -len("_state_dict.safetensors")] for path in paths]


@pytest.fixture(scope="module")
def tiny_checkpoint(cod_official_dir, tmp_path_factory) -> tuple[str, Path]:
    """The first tiny checkpoint of the reference folder, saved in the Lightning layout of the release (`.pt`)."""
    variants = tiny_variants(cod_official_dir)
    if not variants:
        pytest.skip(f"no tiny checkpoint in {cod_official_dir}")
    variant = variants[0]
    state_dict = load_file(cod_official_dir / f"tiny_{variant}_state_dict.safetensors")
    path = tmp_path_factory.mktemp("official") / f"CoD_{variant}_tiny.pt"
    torch.save({"state_dict": state_dict}, path)
    return variant, path


def convert_arguments(checkpoint: Path, variant: str, output: Path, *options: str) -> list[str]:
    return ["convert", str(checkpoint), "--variant", variant.replace("_", "-"), "-o", str(output), *options]


@pytest.mark.conformance
def test_lightning_checkpoint_converts_to_the_official_sampler(cod_official_dir, tiny_checkpoint, tmp_path, capsys):
    variant, checkpoint = tiny_checkpoint
    config_path = cod_official_dir / f"tiny_config_{variant}.json"
    config = json.loads(config_path.read_text())
    options = ["--config", str(config_path)]
    if config["latent"]:  # the reference has no VAE: a tiny random one (the samples are compared in latent space)
        AutoencoderKL(**get_named_config("cod-latent-tiny").vae).save_pretrained(tmp_path / "vae")
        options += ["--vae", str(tmp_path / "vae")]
    output = tmp_path / "pipeline"
    assert main(convert_arguments(checkpoint, variant, output, *options)) == 0
    assert f"{config['param_count_ema_denoiser']:,} denoiser parameters" in capsys.readouterr().out
    pipe = CodPipeline.from_pretrained(output)
    pipe.set_progress_bar_config(disable=True)
    io = load_file(cod_official_dir / f"tiny_{variant}_io.safetensors")
    # The stored Adams–Bashforth run with the fewest steps.
    runs = [re.fullmatch(r"sample_adam2_n(\d+)_f32", name) for name in io]
    num_steps = min(int(match[1]) for match in runs if match is not None)
    null_condition = pipe.condition_codec.null_condition(*io["image_uint8"].shape[-2:])
    sample = pipe.sample(io["xT_f32"], io["cond_map_f32"], null_condition, num_steps, config["cfg_scale_used"])
    torch.testing.assert_close(sample, io[f"sample_adam2_n{num_steps}_f32"], atol=2e-4, rtol=0)


@pytest.mark.conformance
def test_wrong_variant_or_config_pairs_fail_loudly(cod_official_dir, tiny_checkpoint, tmp_path, capsys):
    variant, checkpoint = tiny_checkpoint
    # Without a config the released size is assumed: every parameter is reported missing or mis-shaped.
    assert main(convert_arguments(checkpoint, variant, tmp_path / "released")) == 2
    assert "shapes differ" in capsys.readouterr().err
    assert not (tmp_path / "released").exists()
    for other in tiny_variants(cod_official_dir):
        if other == variant:
            continue
        config = cod_official_dir / f"tiny_config_{other}.json"
        output = tmp_path / other
        assert main(convert_arguments(checkpoint, other, output, "--config", str(config))) == 2
        error = capsys.readouterr().err
        assert "shapes differ" in error or "not in the checkpoint" in error
        assert not output.exists()


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
