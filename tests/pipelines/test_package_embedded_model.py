"""scripts/package_embedded_model.py: a trained pipeline to the float16 package an embedded model ships as."""

import subprocess
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from cod_diffc import CodPipeline

from tiny_models import save_tiny_cod


SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "package_embedded_model.py"


def package(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, arguments)], capture_output=True, text=True)


def test_a_latent_pipeline_takes_a_retrained_decoder_and_a_new_guidance_scale(tmp_path):
    trained = save_tiny_cod(tmp_path / "trained", seed=0, name="cod-latent-tiny")
    vae = AutoencoderKL.from_pretrained(trained / "vae")
    with torch.no_grad():
        for parameter in vae.decoder.parameters():
            parameter.add_(0.01)
    vae.save_pretrained(tmp_path / "decoder_retrained")

    result = package(
        trained,
        "--vae",
        tmp_path / "decoder_retrained",
        "--guidance-scale",
        "1.0",
        "--output",
        tmp_path / "out",
        "--name",
        "cod-test",
    )
    assert result.returncode == 0, result.stderr
    packaged = CodPipeline.from_pretrained(tmp_path / "out" / "cod-test")
    assert packaged.config.default_guidance_scale == 1.0
    # stored in float16 (a few tensors stay in float32): equal up to half-precision rounding
    half_precision = {"rtol": 1e-3, "atol": 1e-6}
    torch.testing.assert_close(packaged.vae.state_dict(), vae.state_dict(), **half_precision)
    original = CodPipeline.from_pretrained(trained)
    torch.testing.assert_close(packaged.transformer.state_dict(), original.transformer.state_dict(), **half_precision)
    assert not torch.equal(packaged.vae.decoder.conv_out.weight, original.vae.decoder.conv_out.weight)
    assert packaged.transformer.dtype == torch.float32 and packaged.vae.dtype == torch.float32


def test_an_autoencoder_with_another_encoder_is_refused_and_nothing_written(tmp_path):
    trained = save_tiny_cod(tmp_path / "trained", seed=0, name="cod-latent-tiny")
    vae = AutoencoderKL.from_pretrained(trained / "vae")
    with torch.no_grad():
        vae.encoder.conv_in.weight.add_(0.01)
    vae.save_pretrained(tmp_path / "other")
    result = package(trained, "--vae", tmp_path / "other", "--output", tmp_path / "out", "--name", "cod-test")
    assert result.returncode != 0 and "has another encoder (encoder.conv_in.weight differs)" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_latent_diffusion_pipeline_is_packaged_within_the_cap_of_all_shipped_models(tmp_path):
    from cod_diffc import LatentDiffusionPipeline

    from tiny_models import save_tiny_ldm_pipeline

    trained = save_tiny_ldm_pipeline(tmp_path / "trained")
    out = tmp_path / "out"
    (out / "other-model").mkdir(parents=True)
    (out / "other-model" / "weights.bin").write_bytes(bytes(200_000))  # 0.2 MB already shipped
    result = package(trained, "--output", out, "--name", "ldm-test")
    assert result.returncode == 0, result.stderr
    packaged = LatentDiffusionPipeline.from_pretrained(out / "ldm-test")
    original = LatentDiffusionPipeline.from_pretrained(trained)
    torch.testing.assert_close(packaged.unet.state_dict(), original.unet.state_dict(), rtol=1e-3, atol=1e-6)
    assert "MB of embedded models in all" in result.stdout

    refused = package(trained, "--output", out, "--name", "ldm-other", "--max-megabytes", "0.2")
    assert refused.returncode != 0 and "beside" in refused.stderr and not (out / "ldm-other").exists()
    assert "apply to CodPipeline" in package(trained, "--guidance-scale", "2", "--output", out).stderr
