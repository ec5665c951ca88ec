"""End to end: the pipeline `cod-diffc convert` made from each tiny checkpoint reproduces the official sampler runs.

Every run stored in the io file (`sample_<sampler>_n<steps>_<dtype>`) is repeated from the stored initial noise, with
the condition decoded from the stored `.cod` payload and the folder's guidance scale. Our time convention is
sigma = 1 - t and our velocity is minus the official one; the samples are the same numbers (latent variants: in latent
space, before the VAE).
"""

import re

import pytest
import torch

from cod_diffc import CodFlowMatchScheduler, CodPipeline

from conformance_helpers import (
    ATOL,
    MAX_ROUNDING_DIFFERENCES,
    SAMPLE_ATOL,
    SOLVER_ORDER,
    stored_samples,
    uint8_differences,
)


pytestmark = pytest.mark.conformance


def pipeline_with_sampler(pipe: CodPipeline, sampler: str) -> CodPipeline:
    """The converted pipeline's components with its scheduler switched to the official `sampler`'s order."""
    scheduler = CodFlowMatchScheduler.from_config(pipe.scheduler.config, solver_order=SOLVER_ORDER[sampler])
    sampling = CodPipeline(
        transformer=pipe.transformer,
        condition_codec=pipe.condition_codec,
        scheduler=scheduler,
        vae=pipe.vae,
        default_guidance_scale=pipe.config.default_guidance_scale,
    )
    sampling.set_progress_bar_config(disable=True)
    return sampling


def conditions(pipe: CodPipeline, reference_io: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The condition decoded from the stored `.cod` file and the null condition, `(1, C, H/16, W/16)` each."""
    height, width, payload = pipe.parse_cod_file(bytes(reference_io["cod_file_uint8"].tolist()))
    shape = pipe.condition_codec.code_grid_size(height, width)
    condition = pipe.condition_codec.decompress([[payload]], shape)["condition"]
    return condition, pipe.condition_codec.null_condition(height, width)


def run(pipe: CodPipeline, reference_io, sampler: str, num_steps: int, dtype_name: str, guidance: float):
    condition, null_condition = conditions(pipe, reference_io)
    sampling = pipeline_with_sampler(pipe, sampler)
    return sampling.sample(reference_io[f"xT_{dtype_name}"], condition, null_condition, num_steps, guidance)


def test_stored_sampler_runs_are_reproduced(converted_pipelines, reference_io, tiny_config, subtests):
    runs = stored_samples(reference_io)
    assert runs, "no sample_<sampler>_n<steps>_<dtype> tensors in the io file"
    for name, sampler, num_steps, dtype_name in runs:
        with subtests.test(msg=name):
            pipe = converted_pipelines[dtype_name]
            sample = run(pipe, reference_io, sampler, num_steps, dtype_name, tiny_config["cfg_scale_used"])
            assert sample.dtype == reference_io[name].dtype
            torch.testing.assert_close(sample, reference_io[name], atol=SAMPLE_ATOL[dtype_name], rtol=0)


def test_conditions_decoded_from_the_cod_file_match(converted_pipelines, reference_io):
    for dtype_name, pipe in converted_pipelines.items():
        condition, null_condition = conditions(pipe, reference_io)
        atol = ATOL[dtype_name]
        torch.testing.assert_close(condition, reference_io[f"cond_map_{dtype_name}"], atol=atol, rtol=0)
        torch.testing.assert_close(null_condition, reference_io[f"null_map_{dtype_name}"], atol=atol, rtol=0)


def test_converted_pipeline_has_the_official_sampler_and_sizes(converted_pipelines, reference_io, tiny_config):
    pipe = converted_pipelines["f32"]
    assert pipe.scheduler.config.last_step_size == pytest.approx(tiny_config["last_step"])
    height, width = tiny_config["image_hw"]
    assert tuple(reference_io["image_uint8"].shape[-2:]) == (height, width)
    assert pipe.sample_shape(height, width) == tuple(reference_io["xT_f32"].shape[1:])
    assert (pipe.vae is not None) == tiny_config["latent"]


def test_guidance_is_used_only_inside_the_official_window(converted_pipelines, reference_io, tiny_config):
    # The release guides only where low < t < high (strictly); elsewhere the conditional velocity is used.
    guidance = tiny_config["cfg_scale_used"]
    if guidance == 1.0:
        pytest.skip("guidance scale 1: guided and conditional velocities are the same")
    pipe = converted_pipelines["f64"]
    low, high = tiny_config["guidance_interval_exclusive"]
    condition, null_condition = conditions(pipe, reference_io)
    sample = reference_io["xT_f64"]
    margin = 1e-3
    for t in [low - margin, low + margin, (low + high) / 2, high - margin, min(high + margin, 1.0)]:
        sigma = torch.tensor(1.0 - t, dtype=torch.float64)
        with torch.no_grad():
            guided = pipe.guided_velocity(sample, sigma, condition, null_condition, guidance)
            conditional = pipe.transformer(sample, sigma.expand(1), condition).sample
        assert torch.equal(guided, conditional) == (not low < t < high), f"t = {t}"


def stored_reconstructions(reference_io: dict[str, torch.Tensor]) -> list[tuple[str, str, int]]:
    """`(name, sampler, num_steps)` of the uint8 reconstructions stored (pixel variants: `recon_<sampler>_n<steps>_uint8`,
    the float32 sample mapped to uint8 in bfloat16 arithmetic)."""
    stored = [(name, re.fullmatch(r"recon_(adam2|euler)_n(\d+)_uint8", name)) for name in sorted(reference_io)]
    return [(name, match[1], int(match[2])) for name, match in stored if match is not None]


def test_reconstruction_bytes_match_the_release_up_to_explained_rounding(
    converted_pipelines, reference_io, tiny_config
):
    stored = stored_reconstructions(reference_io)
    if not stored:
        pytest.skip("no recon_* tensors in this io file")
    pipe = converted_pipelines["f32"]
    for name, sampler, num_steps in stored:
        sample = run(pipe, reference_io, sampler, num_steps, "f32", tiny_config["cfg_scale_used"])
        differing, unexplained = uint8_differences(pipe, sample, reference_io[name], SAMPLE_ATOL["f32"])
        assert unexplained == 0, f"{name}: {unexplained} of {differing} differing values are not float rounding"
        assert differing <= MAX_ROUNDING_DIFFERENCES * reference_io[name].numel(), f"{name}: {differing} differ"


def test_the_uint8_check_fails_a_wrong_sampler_guidance_or_time_grid(converted_pipelines, reference_io, tiny_config):
    stored = stored_reconstructions(reference_io)
    if not stored:
        pytest.skip("no recon_* tensors in this io file")
    pipe = converted_pipelines["f32"]
    name, sampler, num_steps = stored[0]
    guidance = tiny_config["cfg_scale_used"]
    wrong_runs = {
        "other sampler": ("euler" if sampler == "adam2" else "adam2", num_steps, guidance),
        "other time grid": (sampler, num_steps + 1, guidance),
    }
    if guidance != 1.0:
        wrong_runs["no guidance"] = (sampler, num_steps, 1.0)
    for mutation, (wrong_sampler, wrong_steps, wrong_guidance) in wrong_runs.items():
        sample = run(pipe, reference_io, wrong_sampler, wrong_steps, "f32", wrong_guidance)
        differing, unexplained = uint8_differences(pipe, sample, reference_io[name], SAMPLE_ATOL["f32"])
        limit = MAX_ROUNDING_DIFFERENCES * reference_io[name].numel()
        assert unexplained > 0 or differing > limit, f"{mutation}: the check passed a wrong run"


def test_standalone_codec_file_matches_the_release(converted_pipelines, reference_io):
    pipe = converted_pipelines["f32"]
    (cod_file,) = pipe.compress(reference_io["image_uint8"].float() / 255)
    assert cod_file == bytes(reference_io["cod_file_uint8"].tolist())
