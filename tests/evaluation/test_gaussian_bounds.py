"""The closed forms of cod_diffc/evaluation/gaussian_bounds.py: the figures Theis et al. (2022) state, the inverses,
and agreement with the Gaussian backbone's exact decodes of an exact sample of z_t."""

import math

import pytest
import torch

from cod_diffc.backbones.gaussian import GaussianBackbone
from cod_diffc.evaluation import gaussian_bounds as bounds


def decibels_above(distortion: float, reference: float) -> float:
    return 10 * math.log10(distortion / reference)


@pytest.mark.parametrize("std", [0.3, 1.0])
def test_the_stated_gaps_to_shannon(std):
    # DiffC-F: 0.30 dB above Shannon at 1 bit, 0.07 dB at 2 bits; ancestral: 3 dB everywhere
    assert decibels_above(bounds.flow_distortion(1, std), bounds.shannon_distortion(1, std)) == pytest.approx(
        0.30, abs=0.01
    )
    assert decibels_above(bounds.flow_distortion(2, std), bounds.shannon_distortion(2, std)) == pytest.approx(
        0.07, abs=0.01
    )
    for rate in (0.1, 0.5, 3.0):
        gap = decibels_above(bounds.ancestral_distortion(rate, std), bounds.shannon_distortion(rate, std))
        assert gap == pytest.approx(10 * math.log10(2))
    assert bounds.shannon_distortion(0, std) == pytest.approx(std**2)
    assert bounds.flow_distortion(0, std) == pytest.approx(2 * std**2)  # an independent sample: twice the variance


@pytest.mark.parametrize("rate", [0.05, 0.25, 1.0, 2.0, 4.0])
def test_each_rate_function_inverts_its_distortion(rate):
    for distortion, inverse in [
        (bounds.shannon_distortion, bounds.shannon_rate),
        (bounds.flow_distortion, bounds.flow_rate),
        (bounds.ancestral_distortion, bounds.ancestral_rate),
    ]:
        assert inverse(distortion(rate, 0.3), 0.3) == pytest.approx(rate, rel=1e-9)
    assert bounds.rate_overhead(1.5, 1.0) == pytest.approx(0.5)
    assert bounds.rate_overhead(1.0, 0.0) == math.inf


@pytest.mark.parametrize("t", [0.2, 0.5, 0.9])
def test_the_backbone_decodes_of_an_exact_sample_meet_the_bounds_at_its_information(t):
    std = 0.3
    backbone = GaussianBackbone(std=std)
    alpha, sigma = (float(c) for c in backbone.alpha_sigma(torch.tensor(t, dtype=torch.float64)))
    rate = bounds.mutual_information_bits(alpha, sigma, std)
    assert backbone.posterior_mse(t) == pytest.approx(bounds.shannon_distortion(rate, std), rel=1e-9)
    assert backbone.flow_decode_mse(t) == pytest.approx(bounds.flow_distortion(rate, std), rel=1e-9)
