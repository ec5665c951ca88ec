"""The CoD-Lite denoiser against the official one: the released key set and sizes, and the tiny reference models'
predictions in float32 and float64 (`$COD_DIFFC_LITE_REFERENCE_DIR`, see its README for names and tolerances).

Official time: t = 0 is noise, t = 1 data, x_t = t x + (1 - t) eps, velocity (x_hat - x_t) / max(1 - t, 0.05); ours
takes sigma = 1 - t and returns x_hat.
"""

import json
import re
from pathlib import Path

import pytest
import torch
from accelerate import init_empty_weights
from safetensors import safe_open
from safetensors.torch import load_file

from cod_diffc.conversion.cod_lite import CHECKPOINT_PREFIXES, CODEC_PREFIXES, denoiser_config, load_denoiser
from cod_diffc.conversion.official import CheckpointConversionError
from cod_diffc.models.denoiser_cod_lite import CodLiteDenoiserModel


pytestmark = pytest.mark.conformance

TOLERANCES = {"f32": {"prediction": 5e-5, "velocity": 2e-4}, "f64": {"prediction": 1e-9, "velocity": 1e-9}}
"""The reference README's tolerances (absolute)."""


def released_variants(folder: Path) -> list[str]:
    return sorted(path.stem.removeprefix("keys_") for path in folder.glob("keys_*.tsv"))


def read_keys(path: Path) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a `keys_*.tsv` (the `# TOTAL` row left out)."""
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if not line.startswith("#")]
    return {key: tuple(json.loads(shape)) for key, shape, *_ in rows}


def test_the_released_denoisers_have_the_official_keys_and_sizes(cod_lite_official_dir):
    variants = released_variants(cod_lite_official_dir)
    assert variants, f"no keys_*.tsv in {cod_lite_official_dir}"
    for variant in variants:
        config = json.loads((cod_lite_official_dir / f"config_{variant}.json").read_text())
        prefix = CHECKPOINT_PREFIXES["pretrain" if variant == "pretrain" else "onestep"]
        official = {
            key.removeprefix(prefix): shape
            for key, shape in read_keys(cod_lite_official_dir / f"keys_{variant}.tsv").items()
            if not key.removeprefix(prefix).startswith(CODEC_PREFIXES)
        }
        with init_empty_weights():
            model = CodLiteDenoiserModel(**denoiser_config(config["raw_init_args"]))
        ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
        assert ours == official, variant
        # the 21 DiCo blocks are the README's 52,835,328 parameters
        dico = sum(value.numel() for key, value in model.state_dict().items() if key.startswith("blocks."))
        assert dico == 52_835_328, variant


def tiny(folder: Path, variant: str) -> tuple[CodLiteDenoiserModel, dict[str, torch.Tensor]]:
    """The converted tiny model of `variant` (its state-dict file holds decoys, which must be ignored) and its io."""
    if not (folder / f"tiny_{variant}_io.safetensors").is_file():
        pytest.skip(f"{folder} holds no tiny_{variant}_io.safetensors")
    config = json.loads((folder / f"tiny_config_{variant}.json").read_text())
    checkpoint = load_file(folder / f"tiny_{variant}_state_dict.safetensors")
    model = load_denoiser(checkpoint, config["init_args"], kind=config["kind"])
    return model, load_file(folder / f"tiny_{variant}_io.safetensors")


@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
def test_predictions_and_velocities_match_the_official_denoiser(cod_lite_official_dir, dtype_name):
    model, io = tiny(cod_lite_official_dir, "pretrain")
    model = model.double() if dtype_name == "f64" else model
    t = io[f"t_{dtype_name}"]
    x_t = t.view(-1, 1, 1, 1) * io[f"x0_{dtype_name}"] + (1 - t.view(-1, 1, 1, 1)) * io[f"eps_{dtype_name}"]
    tolerance = TOLERANCES[dtype_name]
    for condition, velocity in (("cond_map", "v_cond"), ("null_map", "v_null")):
        with torch.no_grad():
            prediction = model(x_t, 1 - t, io[f"{condition}_{dtype_name}"].expand(len(t), -1, -1, -1)).sample
        assert prediction.dtype == io[f"xpred_cond_{dtype_name}"].dtype
        if condition == "cond_map":
            torch.testing.assert_close(
                prediction, io[f"xpred_cond_{dtype_name}"], rtol=0, atol=tolerance["prediction"]
            )
        v = (prediction - x_t) / (1 - t.view(-1, 1, 1, 1)).clamp_min(0.05)
        torch.testing.assert_close(v, io[f"{velocity}_{dtype_name}"], rtol=0, atol=tolerance["velocity"])


@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
def test_the_one_step_codec_reconstructs_from_an_all_zero_image_at_the_noise_end(cod_lite_official_dir, dtype_name):
    model, io = tiny(cod_lite_official_dir, "onestep_0_5000")
    model = model.double() if dtype_name == "f64" else model
    condition = io[f"cond_map_{dtype_name}"]  # (1, C, H/16, W/16)
    height, width = 16 * condition.shape[-2], 16 * condition.shape[-1]
    zeros = torch.zeros(1, 3, height, width, dtype=condition.dtype)
    with torch.no_grad():  # official t = 0, all noise: sigma = 1
        reconstruction = model(zeros, torch.ones(1, dtype=condition.dtype), condition).sample
    expected = io[f"recon_decompress_{dtype_name}"]
    torch.testing.assert_close(reconstruction, expected, rtol=0, atol=TOLERANCES[dtype_name]["prediction"])


def test_a_checkpoint_of_another_config_is_refused_by_name(cod_lite_official_dir):
    config = json.loads((cod_lite_official_dir / "tiny_config_pretrain.json").read_text())
    checkpoint = load_file(cod_lite_official_dir / "tiny_pretrain_state_dict.safetensors")
    wider = {**config["init_args"], "hidden_size_x": 16}
    with pytest.raises(CheckpointConversionError, match=r"shapes differ in the CoD-Lite denoiser: .*dec_net"):
        load_denoiser(checkpoint, wider)
    with pytest.raises(CheckpointConversionError, match=re.escape("no 'net.*' tensors")):
        load_denoiser(checkpoint, config["init_args"], kind="onestep")
    with safe_open(cod_lite_official_dir / "tiny_pretrain_state_dict.safetensors", "pt") as file:
        assert any(key.startswith("denoiser.") for key in file.keys())  # the decoys were there to be ignored
