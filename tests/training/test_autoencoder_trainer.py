import json

import pytest
import torch
from diffusers import AutoencoderKL

from cod_diffc import CodPipeline
from cod_diffc.cli import main
from cod_diffc.pipelines.named_configs import get_named_config
from cod_diffc.training import AutoencoderTrainer, CodTrainer
from cod_diffc.training.autoencoder import autoencode

from training_helpers import TINY_CONFIG


# The tiny latent CoD's autoencoder (8 pixels per latent position), trained here instead of drawn at random.
TINY_AUTOENCODER = {
    key: value for key, value in get_named_config("cod-latent-tiny").vae.items() if key != "scaling_factor"
}
AUTOENCODER = ["model.kind=autoencoder", f"model.autoencoder={json.dumps(TINY_AUTOENCODER)}", "optim.lr=1e-3"]


def test_a_few_steps_lower_the_reconstruction_error(make_config):
    trainer = AutoencoderTrainer(make_config(*AUTOENCODER, "run.max_steps=60", "run.checkpoint_every=60"))
    images = trainer.validation_images()
    before, _ = autoencode(trainer.training_model.vae, images, batch_size=2)
    trainer.train()
    after, _ = autoencode(trainer.training_model.vae, images, batch_size=2)
    assert after["psnr"] > before["psnr"] + 3.0


def test_resuming_gives_the_weights_of_an_uninterrupted_run(make_config):
    common = [*AUTOENCODER, "run.max_steps=6", "run.checkpoint_every=2"]
    straight = AutoencoderTrainer(make_config(*common, output="straight"))
    straight.train()
    AutoencoderTrainer(make_config(*common[:-2], "run.max_steps=4", "run.checkpoint_every=2", output="cut")).train()
    resumed = AutoencoderTrainer(make_config(*common, output="cut"), resume=True)
    resumed.train()
    assert "resumed from" in (resumed.output_dir / "train.log").read_text()
    for (name, expected), actual in zip(
        straight.training_model.state_dict().items(), resumed.training_model.state_dict().values()
    ):
        torch.testing.assert_close(actual, expected, rtol=0, atol=0, msg=name)


def test_a_run_starts_from_another_runs_weights_and_average(make_config, tmp_path):
    """How a second stage (here with a higher learning rate) continues an autoencoder run."""
    first = AutoencoderTrainer(make_config(*AUTOENCODER, "run.max_steps=2", output="first"))
    first.train()
    second = AutoencoderTrainer(
        make_config(*AUTOENCODER, f"model.init_from={tmp_path / 'first'}", "optim.lr=3e-3", output="second")
    )
    for name, value in first.training_model.state_dict().items():
        torch.testing.assert_close(second.training_model.state_dict()[name], value, rtol=0, atol=0, msg=name)
    for name, value in first.ema.state_dict().items():
        torch.testing.assert_close(second.ema.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_a_run_starts_from_an_exported_autoencoder_in_float16(make_config, tmp_path):
    """How a run continues from committed weights when the run directory is gone: the export, both model and EMA."""
    first = AutoencoderTrainer(make_config(*AUTOENCODER, "run.max_steps=2", output="first"))
    AutoencoderKL.from_pretrained(first.train()).half().save_pretrained(tmp_path / "vae_fp16")
    second = AutoencoderTrainer(make_config(*AUTOENCODER, f"model.init_from={tmp_path / 'vae_fp16'}", output="second"))
    for name, value in first.ema.state_dict().items():
        expected = value.half().float()
        torch.testing.assert_close(second.training_model.vae.state_dict()[name], expected, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(second.ema.state_dict()[name], expected, rtol=0, atol=0, msg=name)


def test_a_frozen_encoder_keeps_the_latent_space_while_the_decoder_trains(make_config, tmp_path):
    """How the decoder goes on training under a latent CoD trained on the first export (model.freeze)."""
    first_vae = AutoencoderTrainer(make_config(*AUTOENCODER, "run.max_steps=2", output="first")).train()
    frozen = ["vae.encoder.", "vae.quant_conv."]
    second = AutoencoderTrainer(
        make_config(
            *AUTOENCODER,
            f"model.init_from={first_vae}",
            f"model.freeze={json.dumps(frozen)}",
            "run.max_steps=4",
            output="second",
        )
    )
    second_vae = AutoencoderKL.from_pretrained(second.train())
    assert "model.freeze: training" in (second.output_dir / "train.log").read_text()
    before, after = AutoencoderKL.from_pretrained(first_vae).state_dict(), second_vae.state_dict()
    for name, value in before.items():
        if name.startswith(("encoder.", "quant_conv.")):
            torch.testing.assert_close(after[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(after[name], before[name]) for name in before if name.startswith("decoder."))
    assert second_vae.config.scaling_factor == pytest.approx(
        AutoencoderKL.from_pretrained(first_vae).config.scaling_factor
    )


def test_a_frozen_encoder_started_from_a_run_keeps_the_average_of_that_run(make_config, tmp_path):
    """A run folder's model and average differ; the frozen part follows the average, which is what exports."""
    AutoencoderTrainer(make_config(*AUTOENCODER, "run.max_steps=3", "run.ema_decay=0.5", output="first")).train()
    first_average = AutoencoderKL.from_pretrained(tmp_path / "first" / "vae").state_dict()
    second = AutoencoderTrainer(
        make_config(
            *AUTOENCODER,
            f"model.init_from={tmp_path / 'first'}",
            'model.freeze=["vae.encoder."]',
            "run.max_steps=2",
            output="second",
        )
    )
    second.train()
    for name, value in first_average.items():
        if name.startswith("encoder."):
            torch.testing.assert_close(second.training_model.vae.state_dict()[name], value, rtol=0, atol=0, msg=name)
            torch.testing.assert_close(second.ema.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_export_is_an_autoencoder_with_unit_scale_diffusion_space_that_a_latent_cod_trains_on(make_config, tmp_path):
    trainer = AutoencoderTrainer(make_config(*AUTOENCODER, "run.max_steps=4", "validation.every=2"))
    vae_dir = trainer.train()
    assert vae_dir == trainer.output_dir / "vae"
    validation = [json.loads(line) for line in (trainer.output_dir / "validation.jsonl").read_text().splitlines()]
    assert [record["step"] for record in validation] == [2, 4] and all(record["psnr"] > 0 for record in validation)
    assert (trainer.output_dir / "samples" / "step_00000004.png").is_file()

    vae = AutoencoderKL.from_pretrained(vae_dir)
    with torch.no_grad():
        torch.testing.assert_close(vae.state_dict(), trainer.ema.state_dict())
        metrics, _ = autoencode(vae, trainer.validation_images(), batch_size=2)
    # CoD's diffusion space is latent * scaling_factor**2: unit standard deviation on the validation images.
    assert metrics["latent_std"] * vae.config.scaling_factor**2 == pytest.approx(1.0, rel=1e-4)

    latent_run = make_config(
        "model.named_config=cod-latent-tiny", f"model.vae_path={vae_dir}", "run.max_steps=1", output="latent"
    )
    pipeline = CodPipeline.from_pretrained(CodTrainer(latent_run).train())
    assert pipeline.vae.config.scaling_factor == vae.config.scaling_factor


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.kind=autoencoder"], "model.autoencoder is empty"),
        ([f"model.autoencoder={json.dumps(TINY_AUTOENCODER)}"], "model.autoencoder set in a run of model.kind: cod"),
        ([*AUTOENCODER, "model.autoencoder.layers=2"], "unknown key\\(s\\) model.autoencoder.layers; AutoencoderKL"),
        ([*AUTOENCODER, "data.resolution=36"], "multiple of the autoencoder's downsampling factor 8"),
        (
            [*AUTOENCODER, "model.vae_path=runs/x", "loss.one_step=1"],
            "model.vae_path, loss.one_step set in a run of model.kind: autoencoder",
        ),
        ([*AUTOENCODER, "model.freeze=[vae.encoderr.]"], "no parameter of the model starts with 'vae.encoderr.'"),
    ],
)
def test_bad_autoencoder_configurations_are_named(make_config, overrides, message):
    with pytest.raises(ValueError, match=message):
        AutoencoderTrainer(make_config(*overrides))


def test_cli_trains_the_autoencoder_of_model_kind(image_folder, tmp_path, capsys):
    run = ["train", "--config", str(TINY_CONFIG), f"data.train_dir={image_folder}", f"run.output_dir={tmp_path}/r"]
    assert main([*run, "validation.every=0", "run.max_steps=1", *AUTOENCODER]) == 0
    assert f"exported autoencoder: {tmp_path}/r/vae" in capsys.readouterr().out
