"""benchmarks/gaussian_theory.py measures what it says on a small latent: DiffC's rate against the closed-form
bounds, with its bits accounted for (loose figures, not a timing)."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from cod_diffc.backbones.gaussian import GaussianBackbone, GaussianVPBackbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc import DiffCCodec
from cod_diffc.diffc.channel import ChunkedPFRSimulator


SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gaussian_theory.py"


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("gaussian_theory", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "adapter", [GaussianBackbone(std=0.3), GaussianVPBackbone(std=0.3, prediction_type="v_prediction")]
)
def test_diffc_lands_near_its_bounds_at_two_bits_per_coordinate(benchmark, adapter):
    latent = 0.3 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    codec = DiffCCodec(schedule=DiffCSchedule(num_steps=24), simulator=ChunkedPFRSimulator(max_chunk_bits=10))
    (row,) = benchmark.measure(codec, adapter, latent, [2.0])
    assert 1.5 < row["bits_per_coordinate"] <= 2.0
    # every byte counted (header included) on 768 coordinates: well above the bounds, but not wildly so
    assert 0 < row["overhead_mean_over_shannon"] < 3 and 0 < row["overhead_flow_over_diffc_f"] < 3
    assert row["mse_mean"] < row["mse_flow"] < 2 * 0.3**2  # the mean decode has the lower squared error


def test_the_decomposition_accounts_for_the_bits(benchmark):
    adapter = GaussianBackbone(std=0.3)
    latent = 0.3 * torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    (row,) = benchmark.diffc_decomposition(adapter, latent, [2.0])
    assert row["header_bytes"] > 0 and row["stop_step"] > 0
    assert row["file_bits_over_kl"] > 1  # the index code costs more than the KL it carries
    assert 0.9 < row["kl_over_information"] < 1.5  # the summed KL is about I(X; Z_t) with an exact denoiser
    assert math.isfinite(row["distortion_excess_db"]) and row["distortion_excess_db"] > -0.5
