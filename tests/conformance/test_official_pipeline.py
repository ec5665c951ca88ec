"""End-to-end conformance with the official CoD: converter + codec + transformer + sampler + pipeline.

Reference vectors: `shared/reference/cod_official/` (see its README). Our time convention is sigma = 1 - t and our
velocity is minus the official one; the sampler outputs are the same numbers.
"""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from cod_diffc import CodConditionCodec, CodFlowMatchScheduler, CodPipeline, CodTransformer2DModel
from cod_diffc.conversion.official import (
    CheckpointConversionError,
    load_official_weights,
    official_init_args_to_kwargs,
)


VARIANTS = {"pixel": 3.0, "latent": 1.25, "latent_64bits": 3.0}


def build_official_tiny(reference_dir, variant):
    folder = reference_dir / "cod_official"
    with safe_open(folder / f"tiny_{variant}_state_dict.safetensors", "pt") as handle:
        metadata = handle.metadata()
    kwargs = official_init_args_to_kwargs(
        json.loads(metadata["tiny_init_args"]),
        {name: int(metadata[name]) for name in ("GN_GROUPS", "ENC_CH", "CB_DIM")},
    )
    codec = CodConditionCodec(**kwargs["condition_codec"])
    transformer = CodTransformer2DModel(**kwargs["transformer"])
    checkpoint = load_file(folder / f"tiny_{variant}_state_dict.safetensors")
    load_official_weights(checkpoint, {"condition_codec": codec, "transformer": transformer})
    return codec, transformer, load_file(folder / f"tiny_{variant}_io.safetensors")


@pytest.fixture(scope="module", params=list(VARIANTS))
def official(request, reference_dir):
    codec, transformer, io = build_official_tiny(reference_dir, request.param)
    return request.param, codec.eval(), transformer.eval(), io


def run_sampler(codec, transformer, io, num_steps, guidance, dtype=torch.float32, solver_order=2):
    height, width = io["image_uint8"].shape[-2:]
    suffix = "f64" if dtype == torch.float64 else "f32"
    codec, transformer = codec.to(dtype), transformer.to(dtype)
    scheduler = CodFlowMatchScheduler(solver_order=solver_order)
    vae = None
    if transformer.config.in_channels != 3:
        from diffusers import AutoencoderKL

        from cod_diffc.pipelines.named_configs import get_named_config

        vae = AutoencoderKL(**get_named_config("cod-latent-tiny").vae)  # not used by sample()
    pipe = CodPipeline(transformer=transformer, condition_codec=codec, scheduler=scheduler, vae=vae)
    pipe.set_progress_bar_config(disable=True)
    condition = io[f"cond_map_{suffix}"]
    null_condition = codec.null_condition(height, width)
    torch.testing.assert_close(null_condition, io[f"null_map_{suffix}"], atol=5e-5 if suffix == "f32" else 1e-9, rtol=0)
    return pipe.sample(io[f"xT_{suffix}"], condition, null_condition, num_steps, guidance)


@pytest.mark.parametrize("num_steps", [1, 3, 25])
def test_adams_bashforth_samples_match_the_release(official, num_steps):
    variant, codec, transformer, io = official
    sample = run_sampler(codec, transformer, io, num_steps, VARIANTS[variant])
    torch.testing.assert_close(sample, io[f"sample_adam2_n{num_steps}_f32"], atol=2e-4, rtol=0)


def test_euler_samples_match_the_release(official):
    variant, codec, transformer, io = official
    sample = run_sampler(codec, transformer, io, 3, VARIANTS[variant], solver_order=1)
    torch.testing.assert_close(sample, io["sample_euler_n3_f32"], atol=2e-4, rtol=0)


def test_float64_samples_match_the_release(official):
    # The release integrates its multistep weights in float32 (up to 6e-7 off the exact ones, which we use), so
    # the float64 samples agree to that level rather than to 1e-9; the velocities agree to 1e-9 (transformer tests).
    variant, codec, transformer, io = official
    sample = run_sampler(codec, transformer, io, 3, VARIANTS[variant], dtype=torch.float64)
    torch.testing.assert_close(sample, io["sample_adam2_n3_f64"], atol=1e-6, rtol=0)


def test_pixel_reconstruction_bytes_match_the_release(reference_dir):
    codec, transformer, io = build_official_tiny(reference_dir, "pixel")
    sample = run_sampler(codec.eval(), transformer.eval(), io, 3, 3.0)
    # The release maps the sample to uint8 in bfloat16 arithmetic.
    ours = CodPipeline.postprocess(sample.bfloat16(), "np")  # (1, H, W, 3)
    official = io["recon_adam2_n3_uint8"].permute(0, 2, 3, 1).numpy()
    assert (ours == official).all()


def test_standalone_codec_file_matches_the_release(reference_dir):
    codec, transformer, io = build_official_tiny(reference_dir, "pixel")
    pipe = CodPipeline(transformer=transformer, condition_codec=codec, scheduler=CodFlowMatchScheduler())
    image = io["image_uint8"].float() / 255
    (cod_file,) = pipe.encode(image)
    assert cod_file == bytes(io["cod_file_uint8"].tolist())


def test_converter_takes_the_ema_weights_not_the_online_ones(reference_dir):
    folder = reference_dir / "cod_official"
    codec, transformer, _ = build_official_tiny(reference_dir, "pixel")
    checkpoint = load_file(folder / "tiny_pixel_state_dict.safetensors")
    ema_weight = checkpoint["ema_denoiser.final_layer.linear.weight"]
    online_weight = checkpoint["denoiser.final_layer.linear.weight"]
    assert not torch.equal(ema_weight, online_weight)
    loaded = [p for n, p in transformer.state_dict().items() if p.shape == ema_weight.shape and torch.equal(p, ema_weight)]
    assert loaded, "the EMA final layer weight is not in the converted transformer"


def test_converter_accepts_nested_layouts_and_rejects_wrong_checkpoints(reference_dir):
    folder = reference_dir / "cod_official"
    checkpoint = load_file(folder / "tiny_pixel_state_dict.safetensors")
    codec, transformer, _ = build_official_tiny(reference_dir, "pixel")
    models = {"condition_codec": codec, "transformer": transformer}
    load_official_weights({"state_dict": checkpoint}, models)
    load_official_weights({"module": checkpoint}, models)
    # A latent checkpoint into pixel models: every mismatch is listed, nothing loads silently.
    latent = load_file(folder / "tiny_latent_state_dict.safetensors")
    with pytest.raises(CheckpointConversionError, match="transformer"):
        load_official_weights(latent, models)
    with pytest.raises(CheckpointConversionError, match="no 'ema_denoiser"):
        load_official_weights({"foo.bar": torch.zeros(1)}, models)
    with pytest.raises(CheckpointConversionError, match="no mapping"):
        load_official_weights({**checkpoint, "ema_denoiser.extra_module.weight": torch.zeros(1)}, models)
