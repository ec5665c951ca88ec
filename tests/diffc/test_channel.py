import logging
import math

import pytest
import torch

from cod_diffc.codecs.randomness import derive_key
from cod_diffc.diffc.channel import ChunkedPFRSimulator, StepCode


def _mu(dim: int, kl_bits: float, seed: int = 0) -> torch.Tensor:
    """A random direction scaled so that KL(N(mu, I) || N(0, I)) = kl_bits."""
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return direction / direction.norm() * math.sqrt(2.0 * math.log(2.0) * kl_bits)


def _rate_bound_bits(simulator: ChunkedPFRSimulator, kl_bits: float, kl_code: int) -> float:
    """The docstring's bound on the expected ideal index bits of a step, plus the first step's kl_code symbol."""
    layout = simulator.layout(kl_code)
    chunk_kl = layout.chunk_kl_bits
    return kl_bits + layout.num_chunks * (math.log2(chunk_kl + 1.0) + 4.0) + math.log2(simulator.max_kl_code + 1)


class TestChunkedPFRSimulator:
    """Plain-coder specifics; the `ChannelSimulator` contract tests are in test_channel_contract.py."""

    @pytest.mark.parametrize("max_chunk_bits, dim, kl_bits", [(16, 64, 12.0), (12, 128, 60.0), (10, 512, 150.0)])
    def test_code_length_is_within_the_stated_bound(self, max_chunk_bits, dim, kl_bits):
        simulator = ChunkedPFRSimulator(max_chunk_bits=max_chunk_bits)
        lengths = []
        for seed in range(16):
            code, _ = simulator.encode(_mu(dim, kl_bits, seed), derive_key(b"bound", seed))
            layout = simulator.layout(code.kl_code)
            assert layout.kl_bits >= kl_bits > simulator.layout(code.kl_code - 1).kl_bits
            bits = simulator.code_length_bits([code])
            # Worst case: every index at the largest cost lambda * max_chunk_bits + log2(zeta(lambda)).
            worst_index_bits = layout.zipf_exponent * max_chunk_bits + math.log2(layout.chunk_kl_bits + 2.53)
            assert bits <= layout.num_chunks * worst_index_bits + math.log2(simulator.max_kl_code + 1)
            lengths.append(bits)
        assert sum(lengths) / len(lengths) <= _rate_bound_bits(simulator, kl_bits, code.kl_code)

    def test_zero_kl_sends_nothing_and_draws_from_the_prior(self):
        simulator = ChunkedPFRSimulator()
        code, sample = simulator.encode(torch.zeros(4096), b"zero")
        assert code == StepCode(kl_code=0, indices=())
        assert torch.equal(simulator.decode(code, 4096, b"zero"), sample)
        assert abs(sample.mean().item()) < 0.1 and abs(sample.std().item() - 1.0) < 0.1

    def test_tiny_kl_uses_one_small_chunk(self):
        simulator = ChunkedPFRSimulator()
        code, _ = simulator.encode(_mu(32, 1e-6), b"tiny")
        layout = simulator.layout(code.kl_code)
        assert code.kl_code == 1 and layout.num_chunks == 1 and layout.candidate_bits(0) == 3

    def test_dim_smaller_than_chunk_count_is_clamped(self, caplog):
        simulator = ChunkedPFRSimulator(max_chunk_bits=8)
        with caplog.at_level(logging.WARNING, logger="cod_diffc.diffc.channel"):
            code, sample = simulator.encode(_mu(3, 100.0), b"clamped")
        assert "truncated" in caplog.text
        assert simulator.layout(code.kl_code).num_chunks == 3
        assert torch.equal(simulator.decode(code, 3, b"clamped"), sample)

    def test_layouts_are_consistent(self):
        simulator = ChunkedPFRSimulator()
        assert simulator.layout(0).num_chunks == 0
        for kl_code in range(1, simulator.max_kl_code + 1):
            layout = simulator.layout(kl_code)
            bits = [layout.candidate_bits(chunk) for chunk in range(layout.num_chunks)]
            assert layout.kl_bits > simulator.layout(kl_code - 1).kl_bits
            assert 1 <= min(bits) and max(bits) <= simulator.max_chunk_bits
            assert sum(bits) == math.ceil(layout.kl_bits) + layout.num_chunks * simulator.padding_bits
            assert layout.chunk_kl_bits <= simulator.max_chunk_bits - simulator.padding_bits
        assert simulator.layout(simulator.max_kl_code).kl_bits >= simulator.max_kl_bits

    @pytest.mark.parametrize(
        "mu",
        [
            torch.tensor([1.0, float("nan")]),
            torch.tensor([float("inf"), 0.0]),
            torch.zeros(2, 3),
            torch.zeros(0),
            torch.zeros(3, dtype=torch.int64),
        ],
    )
    def test_encode_rejects_bad_mu(self, mu):
        with pytest.raises(ValueError):
            ChunkedPFRSimulator().encode(mu, b"key")
