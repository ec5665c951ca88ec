import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from cod_diffc import CodPipeline
from cod_diffc.pipelines.named_configs import get_named_config
from cod_diffc.training import CodTrainer
from cod_diffc.training.checkpointing import list_checkpoints
from cod_diffc.training.losses import draw_training_noise

from training_helpers import write_images


def checkpoint_tensors(run_dir, step, filename="model.safetensors"):
    return load_file(str(run_dir / "checkpoints" / f"checkpoint-{step:08d}" / filename))


def objective_on_a_fixed_batch(trainer: CodTrainer) -> float:
    """The training loss of the current weights on fixed images and noise (no dropout)."""
    images = torch.stack([trainer.train_dataset[(i, 10_000 + i)]["image"] for i in range(4)]).float() / 255.0
    noise = draw_training_noise(range(4), 123, trainer.sample_shape, 0.0, latent=False, device=torch.device("cpu"))
    with torch.no_grad():
        terms = trainer.training_model(images, 2 * images - 1, noise.noise, noise.sigmas, noise.null_mask)
    return float(terms["loss"])


def test_a_few_steps_lower_the_loss(make_config):
    trainer = CodTrainer(make_config("run.max_steps=30", "optim.lr=3e-3", "run.checkpoint_every=30"))
    before = objective_on_a_fixed_batch(trainer)
    trainer.train()
    after = objective_on_a_fixed_batch(trainer)
    assert after < 0.8 * before


def test_a_frozen_condition_codec_stays_as_it_was_while_the_transformer_trains(make_config):
    trainer = CodTrainer(
        make_config('model.freeze=["condition_codec."]', "loss.codec_reconstruction=0", "run.max_steps=2")
    )
    before = {name: value.clone() for name, value in trainer.training_model.state_dict().items()}
    trainer.train()
    after = trainer.training_model.state_dict()
    for name, value in before.items():
        if name.startswith("condition_codec."):
            torch.testing.assert_close(after[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(after[name], before[name]) for name in before if name.startswith("transformer."))


def test_resuming_gives_the_parameters_of_an_uninterrupted_run(make_config, tmp_path):
    common = ("optim.gradient_accumulation_steps=2", "run.checkpoint_every=3", "run.max_steps=7")
    CodTrainer(make_config(*common, output="straight")).train()
    CodTrainer(make_config(*common, "run.max_steps=4", output="interrupted")).train()  # stops after step 4
    resumed = CodTrainer(make_config(*common, output="interrupted"), resume=True)
    resumed.train()

    for filename in ("model.safetensors", "ema.safetensors"):
        expected = checkpoint_tensors(tmp_path / "straight", 7, filename)
        actual = checkpoint_tensors(tmp_path / "interrupted", 7, filename)
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[name], actual[name]) for name in expected)
    steps = [json.loads(line)["step"] for line in (resumed.output_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # the log has no step twice after resuming


def test_a_run_killed_during_a_checkpoint_save_resumes_from_the_last_complete_one(make_config, image_folder, tmp_path):
    common = ("run.checkpoint_every=2", "run.max_steps=5", "run.keep_checkpoints=2")
    CodTrainer(make_config(*common, output="straight")).train()
    killed_dir = tmp_path / "killed"
    script = Path(__file__).with_name("kill_during_save.py")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(script.parent), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.run(
        [sys.executable, str(script), str(image_folder), str(killed_dir), "4", *common],
        env=environment,
        capture_output=True,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
    assert (killed_dir / "checkpoints" / ".checkpoint-00000004.partial").is_dir()  # died mid-save
    assert [step for step, _ in list_checkpoints(killed_dir)] == [2]  # the torn save never took a checkpoint's name

    resumed = CodTrainer(make_config(*common, output="killed"), resume=True)
    assert resumed.resume_from.name == "checkpoint-00000002"  # only the steps after it are lost
    resumed.train()
    assert not list((killed_dir / "checkpoints").glob(".*"))
    for filename in ("model.safetensors", "ema.safetensors"):
        expected, actual = (
            checkpoint_tensors(tmp_path / "straight", 5, filename),
            checkpoint_tensors(killed_dir, 5, filename),
        )
        assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_outputs_checkpoints_logs_plots_and_a_loadable_pipeline(make_config):
    config = make_config(
        "run.max_steps=4", "run.checkpoint_every=2", "run.keep_checkpoints=1", "validation.every=2", "run.log_every=2"
    )
    trainer = CodTrainer(config)
    pipeline_dir = trainer.train()
    run_dir = trainer.output_dir

    assert [step for step, _ in list_checkpoints(run_dir)] == [4]
    assert not any(path.name.startswith(".") for path in (run_dir / "checkpoints").iterdir())
    assert "step 4" in (run_dir / "train.log").read_text()
    validation = [json.loads(line) for line in (run_dir / "validation.jsonl").read_text().splitlines()]
    assert [record["step"] for record in validation] == [2, 4]
    assert {"psnr_1step", "psnr_4step"} <= validation[-1].keys()
    assert (run_dir / "loss.png").stat().st_size > 0
    assert (run_dir / "samples" / "step_00000004.png").is_file()

    pipeline = CodPipeline.from_pretrained(pipeline_dir)
    ema = checkpoint_tensors(run_dir, 4, "ema.safetensors")
    exported = pipeline.transformer.state_dict()
    assert all(torch.equal(exported[name], ema[f"transformer.{name}"]) for name in exported)
    image = PIL.Image.new("RGB", (32, 32), (200, 120, 40))
    output = pipeline(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert output.images.shape == (1, 32, 32, 3)


def test_an_output_dir_with_checkpoints_needs_resume_and_an_unchanged_recipe(make_config):
    config = make_config("run.max_steps=1", "run.log_every=1")
    CodTrainer(config).train()
    run_dir = Path(config.run.output_dir)
    saved_config = (run_dir / "config.yaml").read_text()
    with pytest.raises(ValueError, match="--resume"):
        CodTrainer(make_config("run.max_steps=2"))
    with pytest.raises(ValueError, match="optim.lr"):
        CodTrainer(make_config("run.max_steps=2", "optim.lr=1e-4"), resume=True).train()
    assert (run_dir / "config.yaml").read_text() == saved_config  # the refused resume left it alone
    with (run_dir / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": 2, "lo')  # a line torn by a kill mid-write
    # The EMA never feeds back into training: how it averages may change.
    CodTrainer(
        make_config("run.max_steps=2", "run.log_every=1", "run.ema_decay=0.5", "run.ema_warmup=true"), resume=True
    ).train()
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_a_checkpoint_written_before_newer_configuration_keys_resumes(make_config):
    """Keys added to the configuration later (here `model.kind` and `loss.kl`) take their defaults on resume."""
    config = make_config("run.max_steps=1")
    CodTrainer(config).train()
    (checkpoint,) = list_checkpoints(config.run.output_dir)
    state_path = checkpoint[1] / "trainer_state.json"
    state = json.loads(state_path.read_text())
    del state["config"]["model"]["kind"], state["config"]["loss"]["kl"]
    state_path.write_text(json.dumps(state))
    trainer = CodTrainer(make_config("run.max_steps=2"), resume=True)
    trainer.train()
    assert trainer.step == 2


def test_latent_model_with_repa_one_step_loss_and_gradient_checkpointing(make_config, tmp_path):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    vae_dir, dino_dir = tmp_path / "vae", tmp_path / "dino"
    AutoencoderKL(**get_named_config("cod-latent-tiny").vae).save_pretrained(vae_dir)
    Dinov2Model(
        Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=2)
    ).save_pretrained(dino_dir)
    config = make_config(
        "model.named_config=cod-latent-tiny",
        f"model.vae_path={vae_dir}",
        f"loss.repa_encoder_path={dino_dir}",
        "loss.repa_block_index=2",
        "loss.one_step=1.0",
        "run.gradient_checkpointing=true",
        "run.max_steps=2",
        "run.log_every=1",
    )
    trainer = CodTrainer(config)
    pipeline_dir = trainer.train()
    record = json.loads((trainer.output_dir / "metrics.jsonl").read_text().splitlines()[-1])
    for term in ("flow", "vq", "codec_reconstruction", "one_step", "repa_block", "repa_condition"):
        assert np.isfinite(record[f"loss/{term}"])
    weights = checkpoint_tensors(trainer.output_dir, 2)
    assert any(name.startswith("repa_block_projector.") for name in weights)
    assert weights["reconstruction_head.layers.4.weight"].shape[0] == 4 * 2 * 2  # Cin * p^2 of the latent model
    pipeline = CodPipeline.from_pretrained(pipeline_dir)
    assert pipeline.vae is not None
    assert not any(name.startswith("repa") for name in pipeline.transformer.state_dict())


def test_a_stage_starts_from_the_previous_one_with_explicit_new_tensors(make_config, tmp_path):
    stage1 = make_config("run.max_steps=1", "model.condition_codec.up2x=false", output="stage1")
    CodTrainer(stage1).train()
    stage2 = ("model.condition_codec.up2x=true", f"model.init_from={stage1.run.output_dir}", "run.max_steps=1")
    with pytest.raises(ValueError, match="output_upsampler"):
        CodTrainer(make_config(*stage2, output="stage2"))
    trainer = CodTrainer(
        make_config(*stage2, "model.init_partial=[condition_codec.decoder.output_upsampler.]", output="stage2")
    )
    loaded = checkpoint_tensors(tmp_path / "stage1", 1)
    state = trainer.training_model.state_dict()
    assert torch.equal(state["transformer.token_embed.weight"], loaded["transformer.token_embed.weight"])
    ema = load_file(str(tmp_path / "stage1" / "checkpoints" / "checkpoint-00000001" / "ema.safetensors"))
    assert torch.equal(trainer.ema.state_dict()["transformer.proj_out.weight"], ema["transformer.proj_out.weight"])


def test_a_run_starts_from_a_saved_pipeline_such_as_the_embedded_model(make_config, tmp_path):
    exported = CodTrainer(make_config("run.max_steps=1", output="first")).train()
    with pytest.raises(ValueError, match="reconstruction_head"):
        CodTrainer(make_config(f"model.init_from={exported}", output="second"))
    trainer = CodTrainer(
        make_config(f"model.init_from={exported}", "model.init_partial=[reconstruction_head.]", output="second")
    )
    saved = CodPipeline.from_pretrained(exported).transformer.state_dict()
    state = trainer.training_model.state_dict()
    assert torch.equal(state["transformer.proj_out.weight"], saved["proj_out.weight"])
    assert torch.equal(trainer.ema.state_dict()["transformer.proj_out.weight"], saved["proj_out.weight"])
    trainer.train()
    assert f"tensors from {exported} (" in (trainer.output_dir / "train.log").read_text()


def test_a_latent_model_starts_from_a_pixel_models_codec_and_backbone(make_config, tmp_path):
    """The embedded latent model's warm start: tensors of another shape or absent start fresh when listed."""
    pixel = CodTrainer(make_config("run.max_steps=1", output="pixel")).train()
    vae_dir = tmp_path / "vae"
    AutoencoderKL(**get_named_config("cod-latent-tiny").vae).save_pretrained(vae_dir)
    latent = ("model.named_config=cod-latent-tiny", f"model.vae_path={vae_dir}", f"model.init_from={pixel}")
    fresh = [
        "reconstruction_head.",
        *(f"transformer.{name}." for name in ("proj_out", "blocks.2", "head_embed", "out_modulation", "norm_out")),
        *(f"transformer.{name}." for name in ("pixel_embed", "condition_to_pixels")),
    ]
    with pytest.raises(ValueError, match="transformer.token_embed.weight has shape .* list its prefix"):
        CodTrainer(make_config(*latent, f"model.init_partial={json.dumps(fresh)}", output="latent"))
    fresh.append("transformer.token_embed.")
    trainer = CodTrainer(make_config(*latent, f"model.init_partial={json.dumps(fresh)}", output="latent"))
    saved = CodPipeline.from_pretrained(pixel)
    state, ema = trainer.training_model.state_dict(), trainer.ema.state_dict()
    for name, value in saved.condition_codec.state_dict().items():
        assert torch.equal(state[f"condition_codec.{name}"], value) and torch.equal(
            ema[f"condition_codec.{name}"], value
        )
    backbone = saved.transformer.state_dict()["blocks.0.attn.to_qkv.weight"]
    assert torch.equal(state["transformer.blocks.0.attn.to_qkv.weight"], backbone)
    assert state["transformer.token_embed.weight"].shape != saved.transformer.state_dict()["token_embed.weight"].shape
    assert torch.equal(ema["transformer.token_embed.weight"], state["transformer.token_embed.weight"])


def test_unreadable_images_are_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "images"
    write_images(folder, 4)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    from training_helpers import tiny_config

    with caplog.at_level("WARNING"):
        trainer = CodTrainer(tiny_config(folder, tmp_path / "run", "run.max_steps=1"))
    assert trainer.unreadable_images == 1
    assert "corrupt.png" in caplog.text
