"""`cod-diffc train` with `model.kind: ldm`: a latent diffusion UNet of the Stable Diffusion family on a frozen VAE."""

import json

import pytest
import torch

from cod_diffc import LatentDiffusionPipeline
from cod_diffc.backbones.latent_diffusion import LatentDiffusionAdapter
from cod_diffc.cli import main
from cod_diffc.training import LatentDiffusionTrainer
from cod_diffc.training.latent_diffusion import DenoisingObjective

from tiny_models import TINY_LDM_UNET, tiny_sd_vae


@pytest.fixture
def vae_dir(tmp_path):
    torch.manual_seed(0)
    tiny_sd_vae().save_pretrained(tmp_path / "vae")
    return tmp_path / "vae"


@pytest.fixture
def ldm_overrides(vae_dir):
    """The tiny CoD configuration turned into a latent diffusion run (32 px crops: 4x4 latents)."""
    return [
        "model.kind=ldm",
        f"model.unet={json.dumps(TINY_LDM_UNET)}",
        f"model.vae_path={vae_dir}",
        "model.vae_scaling_factor=0.5",
    ]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_the_loss_is_zero_for_the_unet_that_predicts_its_target(prediction_type):
    alphas_cumprod = torch.linspace(0.99, 0.01, 10)
    objective = DenoisingObjective(torch.nn.Identity(), alphas_cumprod, prediction_type)
    latents, noise = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    timesteps = torch.tensor([0, 4, 9])
    alpha = alphas_cumprod[timesteps].sqrt().view(-1, 1, 1, 1)
    sigma = (1 - alphas_cumprod[timesteps]).sqrt().view(-1, 1, 1, 1)
    target = noise if prediction_type == "epsilon" else alpha * noise - sigma * latents

    class Oracle(torch.nn.Module):  # what a perfect UNet returns: the target of the noisy input it is given
        def forward(self, noisy, steps):
            assert torch.equal(steps, timesteps)
            torch.testing.assert_close(noisy, alpha * latents + sigma * noise)
            return type("Output", (), {"sample": target})()

    objective.unet = Oracle()
    assert float(objective(latents, noise, timesteps)["loss"]) == 0.0


def test_a_run_exports_a_pipeline_the_ldm_backbone_loads(make_config, ldm_overrides, tmp_path):
    trainer = LatentDiffusionTrainer(make_config(*ldm_overrides, "run.max_steps=2", "validation.every=1"))
    exported = trainer.train()
    adapter = LatentDiffusionAdapter.from_pretrained(exported)
    assert adapter.vae.config.scaling_factor == 0.5  # model.vae_scaling_factor travels with the export
    torch.testing.assert_close(adapter.unet.state_dict(), trainer.ema.state_dict(), rtol=0, atol=0)
    assert adapter.prediction_type == "epsilon" and adapter.num_train_timesteps == 1000
    assert isinstance(LatentDiffusionPipeline.from_pretrained(exported), LatentDiffusionPipeline)
    validation = [json.loads(line) for line in (trainer.output_dir / "validation.jsonl").read_text().splitlines()]
    assert [record["step"] for record in validation] == [1, 2]
    assert set(validation[0]) == {"step", "psnr_x0_t250", "psnr_x0_t500"}


def test_resuming_gives_the_weights_of_an_uninterrupted_run(make_config, ldm_overrides):
    common = [*ldm_overrides, "run.checkpoint_every=2"]
    straight = LatentDiffusionTrainer(make_config(*common, "run.max_steps=4", output="straight"))
    straight.train()
    LatentDiffusionTrainer(make_config(*common, "run.max_steps=2", output="cut")).train()
    resumed = LatentDiffusionTrainer(make_config(*common, "run.max_steps=4", output="cut"), resume=True)
    resumed.train()
    for (name, expected), actual in zip(
        straight.training_model.state_dict().items(), resumed.training_model.state_dict().values()
    ):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.unet={}"], "model.unet is empty"),
        (
            ["model.transformer.num_layers=2", "loss.vq=1"],
            "model.transformer, loss.vq set in a run of model.kind: ldm",
        ),
        (["model.unet.up_blocks=2"], "unknown key\\(s\\) model.unet.up_blocks; UNet2DModel takes"),
        (["model.noise_schedule.schedule=cosine"], "unknown key\\(s\\) model.noise_schedule.schedule; DDPMScheduler"),
        (["model.noise_schedule.prediction_type=sample"], "prediction_type must be epsilon or v_prediction"),
        (["model.unet.out_channels=3"], "model.unet must map 4 to 4 channels"),
        (["model.vae_path=null"], "model.vae_path is not set"),
        (["data.resolution=36"], "multiple of the VAE's downsampling 8"),
    ],
)
def test_bad_latent_diffusion_configurations_are_named(make_config, ldm_overrides, overrides, message):
    with pytest.raises(ValueError, match=message):
        LatentDiffusionTrainer(make_config(*ldm_overrides, *overrides))


def test_cli_trains_a_latent_diffusion_model(make_config, ldm_overrides, image_folder, tmp_path, capsys):
    from training_helpers import TINY_CONFIG

    run = ["train", "--config", str(TINY_CONFIG), f"data.train_dir={image_folder}", f"run.output_dir={tmp_path}/r"]
    assert main([*run, "validation.every=0", "run.max_steps=1", *ldm_overrides]) == 0
    assert f"exported pipeline: {tmp_path}/r/pipeline" in capsys.readouterr().out
