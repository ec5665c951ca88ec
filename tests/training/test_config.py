from pathlib import Path

import pytest
import yaml
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DModel

from cod_diffc.cli import main
from cod_diffc.models.vae_geometry import unet_downsampling, vae_downsampling
from cod_diffc.training.autoencoder import AutoencoderTrainer, build_autoencoder
from cod_diffc.training.checkpointing import match_init_weights, read_checkpoint_weights
from cod_diffc.training.components import build_components
from cod_diffc.training.config import apply_overrides, config_from_dict, load_train_config
from cod_diffc.training.model import CodTrainingModel

from training_helpers import REPO_ROOT, TINY_CONFIG


# Every training configuration in configs/train (accelerate_fsdp.yaml is an accelerate configuration).
SHIPPED_CONFIGS = sorted(p for p in (REPO_ROOT / "configs" / "train").glob("*.yaml") if p.stem != "accelerate_fsdp")


def test_overrides_reach_nested_keys_and_read_numbers_like_1e_minus_4():
    config = load_train_config(
        TINY_CONFIG, ["data.train_dir=/data", "optim.lr=2e-5", "model.transformer.num_layers=3", "run.seed=7"]
    )
    assert config.optim.lr == pytest.approx(2e-5)
    assert config.model.transformer == {"num_layers": 3}
    assert config.run.seed == 7


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.learning_rate=1e-4", "optim.learning_rate"),
        ("trainer.steps=3", "trainer"),
        ("run.max_steps=ten", "run.max_steps must be an integer"),
        ("run.mixed_precision=fp8", "run.mixed_precision must be one of"),
        ("loss.condition_dropout=1.5", "loss.condition_dropout"),
        ("optim.batch_size=5", "gradient_accumulation_steps"),
        ("lr=1e-4", "section.key=value"),
    ],
)
def test_bad_settings_are_value_errors_that_name_the_key(override, message):
    overrides = ["data.train_dir=/data", override]
    if override.startswith("optim.batch_size"):
        overrides.append("optim.gradient_accumulation_steps=2")
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_train_config(TINY_CONFIG, overrides)


def test_unknown_model_constructor_keys_are_named():
    config = load_train_config(TINY_CONFIG, ["data.train_dir=/data", "model.transformer.num_blocks=4"])
    with pytest.raises(ValueError, match=r"model\.transformer\.num_blocks"):
        build_components(config.model)


def test_missing_train_dir_is_reported():
    with pytest.raises(ValueError, match="data.train_dir is not set"):
        load_train_config(TINY_CONFIG)


def shipped_autoencoder_exports() -> dict[str, dict]:
    """The `vae` folder each shipped autoencoder configuration exports, to the `AutoencoderKL` arguments it trains."""
    exports = {}
    for path in SHIPPED_CONFIGS:
        model, run = (yaml.safe_load(path.read_text()).get(section, {}) for section in ("model", "run"))
        if model.get("kind") == "autoencoder":
            exports[f"{run['output_dir']}/{AutoencoderTrainer.export_dirname}"] = model["autoencoder"]
    return exports


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=[p.stem for p in SHIPPED_CONFIGS])
def test_shipped_configs_are_valid_and_build(path: Path, tmp_path: Path):
    values = yaml.safe_load(path.read_text())
    config = config_from_dict(apply_overrides(values, ["data.train_dir=/data"]))  # validates
    if config.model.kind == "autoencoder":
        vae = build_autoencoder(config.model.autoencoder)
        assert config.data.resolution % vae_downsampling(vae) == 0
        return
    if config.model.kind == "ldm":  # a UNet on a committed autoencoder
        vae = AutoencoderKL.from_pretrained(REPO_ROOT / config.model.vae_path)
        unet = UNet2DModel(**config.model.unet)
        assert unet.config.in_channels == unet.config.out_channels == vae.config.latent_channels
        latent_side = config.data.resolution // vae_downsampling(vae)
        assert latent_side % unet_downsampling(unet) == 0 and latent_side == unet.config.sample_size
        return
    if config.model.vae_path is not None:
        # A latent model on one of the project's autoencoders gets a random one of that architecture.
        autoencoder = shipped_autoencoder_exports().get(config.model.vae_path)
        if autoencoder is None:
            pytest.skip(f"needs the VAE folder {config.model.vae_path}")
        build_autoencoder(autoencoder).save_pretrained(tmp_path / "vae")
        config.model.vae_path = str(tmp_path / "vae")
    with init_empty_weights():  # the released sizes, without allocating them
        components = build_components(config.model)
    components.check_resolution(config.data.resolution)
    assert components.condition_codec.config.condition_channels == components.transformer.config.hidden_size
    if config.model.init_from is not None and (REPO_ROOT / config.model.init_from).exists():
        # A committed starting point (the embedded model) fits the model, tensors to start fresh listed.
        with init_empty_weights():
            training_model = CodTrainingModel(components.transformer, components.condition_codec, config.loss)
        source, _, source_path = read_checkpoint_weights(REPO_ROOT / config.model.init_from)
        shared, _ = match_init_weights(source, training_model.state_dict(), config.model.init_partial, source_path)
        assert any(name.startswith("condition_codec.") for name in shared)


def test_cli_reports_an_empty_data_folder_in_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    status = main(["train", "--config", str(TINY_CONFIG), f"data.train_dir={empty}", f"run.output_dir={tmp_path}/r"])
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cod-diffc train: error: no readable images in")
    assert "\n" not in error


def test_cli_reports_a_missing_config_file(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_trains_refuses_to_overwrite_and_resumes(image_folder, tmp_path, capsys):
    run = ["train", "--config", str(TINY_CONFIG), f"data.train_dir={image_folder}", f"run.output_dir={tmp_path}/r"]
    run += ["validation.every=0", "run.max_steps=1"]
    assert main(run) == 0
    assert f"exported pipeline: {tmp_path}/r/pipeline" in capsys.readouterr().out
    assert main(run[:-1] + ["run.max_steps=2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*run[:-1], "run.max_steps=2", "--resume"]) == 0
    assert (tmp_path / "r" / "checkpoints" / "checkpoint-00000002").is_dir()
