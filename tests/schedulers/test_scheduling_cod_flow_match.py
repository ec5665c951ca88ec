import re

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc.schedulers import CodFlowMatchScheduler


@pytest.fixture(scope="module")
def official_grids(cod_official_dir) -> dict[str, dict[str, torch.Tensor]]:
    """Every official sampler grid of the reference folder: `{"<variant> <sampler>_n<steps>": {field: tensor}}`.

    Fields: `timesteps` (N+1,), `t_inputs` (N,) and, for Adams–Bashforth, `coeffs` (N, 2), all float32.
    """
    grids = {}
    for path in sorted(cod_official_dir.glob("tiny_*_io.safetensors")):
        for name, tensor in load_file(path).items():
            match = re.fullmatch(r"sampler_(\w+_n\d+)_(timesteps|t_inputs|coeffs)", name)
            if match is not None:
                grids.setdefault(f"{path.name} {match[1]}", {})[match[2]] = tensor
    assert grids, f"no sampler_* tensors in {cod_official_dir}"
    return grids


def num_steps_of(run: str) -> int:
    return int(run.rsplit("_n", 1)[1])


@pytest.mark.conformance
def test_grid_and_network_times_match_the_release(official_grids, subtests):
    for run, official in official_grids.items():
        with subtests.test(msg=run):
            scheduler = CodFlowMatchScheduler()
            scheduler.set_timesteps(num_steps_of(run))
            # Our sigma is 1 - CoD's t, exactly.
            assert torch.equal(1.0 - scheduler.sigmas, official["timesteps"].double())
            assert torch.equal(1.0 - scheduler.timesteps, official["t_inputs"].double())


@pytest.mark.conformance
def test_multistep_coefficients_match_the_release(official_grids, subtests):
    runs = {run: official["coeffs"] for run, official in official_grids.items() if "coeffs" in official}
    assert runs, "no sampler_adam2_n<steps>_coeffs in the reference folder"
    for run, coefficients in runs.items():
        with subtests.test(msg=run):
            num_steps = num_steps_of(run)
            scheduler = CodFlowMatchScheduler()
            scheduler.set_timesteps(num_steps)
            ours = torch.tensor([scheduler.multistep_coefficients(i) for i in range(num_steps)], dtype=torch.float64)
            # Runs too short for a second-order step store only the weight on the current velocity: (N, 1).
            official = torch.nn.functional.pad(coefficients.double(), (2 - coefficients.shape[1], 0))  # (N, 2)
            # The release integrates the weights in float32; ours are exact.
            torch.testing.assert_close(ours, official, atol=2e-5, rtol=0)
            assert ours.sum(1).sub(1).abs().max() < 1e-12


def test_endpoints_and_step_count():
    scheduler = CodFlowMatchScheduler()
    scheduler.set_timesteps(25)
    assert scheduler.sigmas[0] == 1.0 and scheduler.sigmas[-1] == 0.0
    assert len(scheduler.timesteps) == 25 and len(scheduler.sigmas) == 26
    assert torch.all(scheduler.sigmas[1:] < scheduler.sigmas[:-1])
    assert scheduler.sigmas[-2].item() == pytest.approx(0.04, abs=1e-7)


def test_one_step_is_the_closed_form_decode():
    scheduler = CodFlowMatchScheduler()
    scheduler.set_timesteps(1)
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    velocity = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert scheduler.timesteps.tolist() == [1.0]
    x0 = scheduler.step(velocity, scheduler.timesteps[0], noise).prev_sample
    torch.testing.assert_close(x0, noise - velocity, atol=0, rtol=0)


def test_exact_velocity_field_reaches_the_data():
    # For a single data point the true velocity noise - x0 is constant along the straight path,
    # so every step count must land on x0 (up to rounding).
    x0 = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    for num_steps in (1, 2, 7, 25):
        scheduler = CodFlowMatchScheduler()
        scheduler.set_timesteps(num_steps)
        sample = noise
        for sigma in scheduler.timesteps:
            sample = scheduler.step(noise - x0, sigma, sample).prev_sample
        torch.testing.assert_close(sample, x0, atol=1e-5, rtol=0)


def test_second_order_integrates_a_linear_velocity_exactly():
    # dx/dsigma = c * sigma has the exact solution x(0) = x(1) - c / 2; AB2 integrates a linear field exactly
    # after its first (Euler) step, Euler alone does not.
    c = torch.tensor(1.7, dtype=torch.float64)
    errors = {}
    for order in (1, 2):
        scheduler = CodFlowMatchScheduler(solver_order=order)
        scheduler.set_timesteps(25)
        sample = torch.zeros((), dtype=torch.float64)
        for sigma in scheduler.sigmas[:-1]:
            sample = scheduler.step(c * sigma, sigma, sample, return_dict=False)[0]
        errors[order] = abs(sample.item() + c.item() / 2)
    assert errors[2] < errors[1] / 10


def test_dict_and_tuple_outputs_are_equal():
    scheduler = CodFlowMatchScheduler()
    scheduler.set_timesteps(3)
    sample = torch.ones(1, 3, 2, 2)
    out_dict = scheduler.step(torch.full_like(sample, 0.5), scheduler.timesteps[0], sample).prev_sample
    scheduler.set_timesteps(3)
    (out_tuple,) = scheduler.step(torch.full_like(sample, 0.5), scheduler.timesteps[0], sample, return_dict=False)
    assert torch.equal(out_dict, out_tuple)


def test_scale_noise_is_the_forward_process():
    scheduler = CodFlowMatchScheduler()
    x0, noise = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    assert torch.equal(scheduler.scale_noise(x0, 1.0, noise), noise)
    assert torch.equal(scheduler.scale_noise(x0, 0.0, noise), x0)
    mixed = scheduler.scale_noise(x0, torch.tensor([0.25, 0.75]), noise)
    assert mixed[0].unique().item() == 0.25 and mixed[1].unique().item() == 0.75
    with pytest.raises(ValueError, match="sigma"):
        scheduler.scale_noise(x0, 1.5, noise)


def test_save_and_load_round_trip(tmp_path):
    scheduler = CodFlowMatchScheduler(last_step_size=0.05, solver_order=1)
    scheduler.save_pretrained(tmp_path)
    loaded = CodFlowMatchScheduler.from_pretrained(tmp_path)
    assert loaded.config.last_step_size == 0.05 and loaded.config.solver_order == 1
    loaded.set_timesteps(4)
    scheduler.set_timesteps(4)
    assert torch.equal(loaded.sigmas, scheduler.sigmas)


@pytest.mark.parametrize("kwargs", [{"last_step_size": 0.0}, {"last_step_size": 1.0}, {"solver_order": 3}])
def test_bad_configuration_is_rejected(kwargs):
    with pytest.raises(ValueError):
        CodFlowMatchScheduler(**kwargs)


def test_misuse_is_rejected():
    scheduler = CodFlowMatchScheduler()
    sample = torch.zeros(1, 3, 2, 2)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(sample, 1.0, sample)
    with pytest.raises(ValueError, match="positive integer"):
        scheduler.set_timesteps(0)
    scheduler.set_timesteps(1)
    with pytest.raises(ValueError, match="shape"):
        scheduler.step(torch.zeros(1, 3, 4, 4), 1.0, sample)
    scheduler.step(sample, 1.0, sample)
    with pytest.raises(ValueError, match="steps are done"):
        scheduler.step(sample, 1.0, sample)


def test_compatibles_lists_the_scheduler_itself():
    assert CodFlowMatchScheduler().compatibles == [CodFlowMatchScheduler]
