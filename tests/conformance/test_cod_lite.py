"""CoD-Lite's denoiser and condition codec against the official ones: the released key sets and sizes, and the tiny
reference models' outputs in float32 and float64 (`$COD_DIFFC_LITE_REFERENCE_DIR`, see its README for names and
tolerances).

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

from cod_diffc.conversion.cod_lite import (
    CHECKPOINT_PREFIXES,
    CODEC_PREFIXES,
    codec_config,
    denoiser_config,
    load_codec,
    load_denoiser,
)
from cod_diffc.conversion.official import CheckpointConversionError, map_key
from cod_diffc.models.condition_codec_cod import CodConditionCodec, pack_indices
from cod_diffc.models.denoiser_cod_lite import CodLiteDenoiserModel
from cod_diffc.pipelines import CodLitePipeline, get_named_config
from cod_diffc.schedulers import CodFlowMatchScheduler


pytestmark = pytest.mark.conformance

TOLERANCES = {"f32": {"prediction": 5e-5, "velocity": 2e-4}, "f64": {"prediction": 1e-9, "velocity": 1e-9}}
VARIANTS = ["pretrain", "onestep_0_5000"]
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


def test_the_released_codecs_have_the_official_keys_and_shapes(cod_lite_official_dir):
    for variant in released_variants(cod_lite_official_dir):
        config = json.loads((cod_lite_official_dir / f"config_{variant}.json").read_text())
        prefix = CHECKPOINT_PREFIXES["pretrain" if variant == "pretrain" else "onestep"]
        official = {}
        for key, shape in read_keys(cod_lite_official_dir / f"keys_{variant}.tsv").items():
            key = key.removeprefix(prefix)
            if key.startswith(CODEC_PREFIXES):
                component, ours = map_key(key)
                assert component == "condition_codec", key
                official[ours] = shape
        with init_empty_weights():
            codec = CodConditionCodec(**codec_config(config["raw_init_args"]))
        assert {key: tuple(value.shape) for key, value in codec.state_dict().items()} == official, variant


def tiny(folder: Path, variant: str) -> tuple[CodLiteDenoiserModel, CodConditionCodec, dict[str, torch.Tensor], dict]:
    """The converted tiny denoiser and codec of `variant` (its state-dict file holds decoys, which must be
    ignored), its io tensors and its config."""
    if not (folder / f"tiny_{variant}_io.safetensors").is_file():
        pytest.skip(f"{folder} holds no tiny_{variant}_io.safetensors")
    config = json.loads((folder / f"tiny_config_{variant}.json").read_text())
    checkpoint = load_file(folder / f"tiny_{variant}_state_dict.safetensors")
    model = load_denoiser(checkpoint, config["init_args"], kind=config["kind"])
    constants = {name: config[name] for name in ("GN_GROUPS", "ENC_CH", "CB_DIM")}
    codec = load_codec(checkpoint, config["init_args"], kind=config["kind"], constants=constants)
    return model, codec, load_file(folder / f"tiny_{variant}_io.safetensors"), config


@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
def test_predictions_and_velocities_match_the_official_denoiser(cod_lite_official_dir, dtype_name):
    model, _, io, _ = tiny(cod_lite_official_dir, "pretrain")
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
    model, codec, io, config = tiny(cod_lite_official_dir, "onestep_0_5000")
    dtype = torch.float64 if dtype_name == "f64" else torch.float32
    model, codec = model.to(dtype), codec.to(dtype)
    image = io["image_uint8"].to(dtype) / 255  # (1, 3, H, W)
    with torch.no_grad():
        _, indices = codec.quantize(codec.encode(image))
        stream = pack_indices(indices, config["init_args"]["codebook_bits"])
        condition = codec.decode_indices(indices)  # what the decoder rebuilds from the bits
        # official t = 0, all noise: sigma = 1, from an all-zero image
        reconstruction = model(torch.zeros_like(image), torch.ones(1, dtype=dtype), condition).sample
    assert stream == bytes(io["bitstream_uint8"].tolist())
    tolerance = TOLERANCES[dtype_name]["prediction"]
    torch.testing.assert_close(reconstruction, io[f"recon_decompress_{dtype_name}"], rtol=0, atol=tolerance)
    torch.testing.assert_close(reconstruction, io[f"recon_eval_{dtype_name}"], rtol=0, atol=tolerance)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
def test_the_codec_matches_the_official_one_stage_by_stage(cod_lite_official_dir, variant, dtype_name):
    """Encoder output, indices (image and null image), bits, codes, and the condition maps of the decompress and
    forward paths; the one-step reference's code grid is taller than the attention window (tiled attention)."""
    _, codec, io, config = tiny(cod_lite_official_dir, variant)
    dtype = torch.float64 if dtype_name == "f64" else torch.float32
    codec = codec.to(dtype)
    image = io["image_uint8"].to(dtype) / 255
    tolerance = TOLERANCES[dtype_name]["prediction"]
    with torch.no_grad():
        latents = codec.encode(image)
        codes, indices = codec.quantize(latents)
        outputs = codec(image)
        null_map = codec.null_condition(*image.shape[-2:])
        _, null_indices = codec.quantize(codec.encoder(torch.full_like(image, -1.0)))  # the null image is -1
        torch.testing.assert_close(latents, io[f"enc_out_{dtype_name}"], rtol=0, atol=tolerance)
        assert torch.equal(indices.flatten(), io["vq_indices"]) and torch.equal(
            null_indices.flatten(), io["vq_indices_null"]
        )
        assert pack_indices(indices, config["init_args"]["codebook_bits"]) == bytes(io["bitstream_uint8"].tolist())
        torch.testing.assert_close(codes, io[f"codes_q_{dtype_name}"], rtol=0, atol=tolerance)
        torch.testing.assert_close(codec.decode_indices(indices), io[f"cond_map_{dtype_name}"], rtol=0, atol=tolerance)
        torch.testing.assert_close(outputs["condition"], io[f"cond_map_st_{dtype_name}"], rtol=0, atol=tolerance)
        torch.testing.assert_close(null_map, io[f"null_map_{dtype_name}"], rtol=0, atol=tolerance)


def test_a_checkpoint_of_another_config_is_refused_by_name(cod_lite_official_dir):
    config = json.loads((cod_lite_official_dir / "tiny_config_pretrain.json").read_text())
    checkpoint = load_file(cod_lite_official_dir / "tiny_pretrain_state_dict.safetensors")
    wider = {**config["init_args"], "hidden_size_x": 16}
    with pytest.raises(CheckpointConversionError, match=r"shapes differ in the CoD-Lite denoiser: .*dec_net"):
        load_denoiser(checkpoint, wider)
    finer = {**config["init_args"], "ds": 16}  # a codec without the x2 up-sampler the checkpoint holds
    constants = {name: config[name] for name in ("GN_GROUPS", "ENC_CH", "CB_DIM")}
    with pytest.raises(CheckpointConversionError, match="have no CoD-Lite condition codec parameter"):
        load_codec(checkpoint, finer, constants=constants)
    with pytest.raises(CheckpointConversionError, match=re.escape("no 'net.*' tensors")):
        load_denoiser(checkpoint, config["init_args"], kind="onestep")
    with safe_open(cod_lite_official_dir / "tiny_pretrain_state_dict.safetensors", "pt") as file:
        assert any(key.startswith("denoiser.") for key in file.keys())  # the decoys were there to be ignored


def tiny_pipeline(folder: Path, dtype: torch.dtype) -> tuple[CodLitePipeline, dict[str, torch.Tensor]]:
    """The tiny pretrained model as a [`CodLitePipeline`] with the release's sampler, and its io tensors."""
    model, codec, io, config = tiny(folder, "pretrain")
    scheduler = CodFlowMatchScheduler(**get_named_config("cod-lite-tiny").scheduler)
    return CodLitePipeline(model.to(dtype), codec.to(dtype), scheduler), io


@pytest.mark.parametrize("num_steps", [1, 2, 3, 100])
@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
def test_the_pipelines_sampler_is_the_official_euler_sampler(cod_lite_official_dir, num_steps, dtype_name):
    """100 Euler steps with guidance 3.0 inside the window, the velocity clamped at the data end; one step is the
    unguided one-step decode."""
    dtype = torch.float64 if dtype_name == "f64" else torch.float32
    pipeline, io = tiny_pipeline(cod_lite_official_dir, dtype)
    pipeline.set_progress_bar_config(disable=True)
    sample = pipeline.sample(
        io[f"xT_{dtype_name}"],
        io[f"cond_map_st_{dtype_name}"],
        io[f"null_map_{dtype_name}"],
        num_inference_steps=num_steps,
        guidance_scale=3.0,
    )
    tolerance = 2e-4 if dtype_name == "f32" else 1e-9
    torch.testing.assert_close(sample, io[f"sample_euler_n{num_steps}_{dtype_name}"], rtol=0, atol=tolerance)


def test_the_pipelines_cod_file_is_the_official_one_width_first(cod_lite_official_dir):
    pipeline, io = tiny_pipeline(cod_lite_official_dir, torch.float32)
    (cod_file,) = pipeline.compress(io["image_uint8"].float() / 255)
    assert cod_file == bytes(io["cod_file_uint8"].tolist())
    assert pipeline.parse_cod_file(cod_file)[:2] == tuple(io["image_uint8"].shape[-2:])
