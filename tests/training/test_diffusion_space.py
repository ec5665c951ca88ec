"""Training and inference share CoD's diffusion space (cod_diffc/models/cod_diffusion_space.py)."""

import pytest
import torch

from cod_diffc import CodPipeline
from cod_diffc.training import CodTrainer


@pytest.mark.parametrize("named_config", ["cod-pixel-tiny", "cod-latent-tiny"])
def test_the_trainer_samples_the_diffusion_space_the_pipeline_codes_in(make_config, tmp_path, named_config):
    torch.manual_seed(0)
    pipeline = CodPipeline.from_named_config(named_config)
    overrides = [f"model.named_config={named_config}"]
    if pipeline.vae is not None:
        pipeline.vae.save_pretrained(tmp_path / "vae")
        overrides.append(f"model.vae_path={tmp_path / 'vae'}")
    trainer = CodTrainer(make_config(*overrides))
    resolution = trainer.config.data.resolution
    assert trainer.sample_shape == pipeline.sample_shape(resolution, resolution)

    images = torch.rand(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(1))
    posterior_noise = torch.randn(2, *trainer.sample_shape, generator=torch.Generator().manual_seed(2))
    if pipeline.vae is not None:  # frozen as the trainer's: CPU convolutions pick their kernel by requires_grad
        pipeline.vae.requires_grad_(False)
    with torch.no_grad():  # as the trainer runs it
        expected = pipeline.to_diffusion_space(images, generator=torch.Generator().manual_seed(2))
    assert torch.equal(trainer._to_diffusion_space(images, posterior_noise), expected)
    if pipeline.vae is not None:  # and the codecs' deterministic latent is the posterior mean on the same scale
        mean = pipeline.vae.encode(2 * images - 1).latent_dist.mean * pipeline.vae.config.scaling_factor**2
        torch.testing.assert_close(pipeline.to_diffusion_space(images, sample_posterior=False), mean)
