import logging
import math

import pytest
import scipy.stats
import torch

from cod_diffc.diffc.channel import ChunkedPFRSimulator, StepCode
from cod_diffc.diffc.errors import StreamError
from cod_diffc.diffc.randomness import derive_key


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
    @pytest.mark.parametrize(
        "dim, kl_bits",
        [(1, 0.0), (16, 1e-9), (16, 0.5), (2, 2.0), (64, 14.0), (1000, 40.0), (5, 200.0)],
    )
    def test_decode_regenerates_the_encoded_sample(self, dim, kl_bits):
        simulator = ChunkedPFRSimulator(max_chunk_bits=12)
        key = derive_key(b"roundtrip", dim)
        code, sample = simulator.encode(_mu(dim, kl_bits).float(), key)
        assert sample.shape == (dim,) and sample.dtype == torch.float32
        assert len(code.indices) == simulator.layout(code.kl_code).num_chunks <= dim
        assert torch.equal(simulator.decode(code, dim, key), sample)

    def test_encoding_is_reproducible(self):
        simulator = ChunkedPFRSimulator(max_chunk_bits=12)
        mu = _mu(300, 50.0)
        first, second = simulator.encode(mu, b"key"), simulator.encode(mu.clone(), b"key")
        assert first[0] == second[0] and torch.equal(first[1], second[1])
        other_key = simulator.encode(mu, b"other key")
        assert other_key[0] != first[0] and not torch.equal(other_key[1], first[1])

    def test_identical_across_thread_counts(self):
        simulator = ChunkedPFRSimulator(max_chunk_bits=10)
        problems = [(_mu(300, 60.0), b"small chunks"), (_mu(20000, 3.0), b"one wide chunk")]
        previous = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one_thread = [simulator.encode(mu, key) for mu, key in problems]
            torch.set_num_threads(2)
            two_threads = [simulator.encode(mu, key) for mu, key in problems]
        finally:
            torch.set_num_threads(previous)
        for (code_1, sample_1), (code_2, sample_2) in zip(one_thread, two_threads):
            assert code_1 == code_2 and torch.equal(sample_1, sample_2)

    def test_sample_has_the_target_distribution_and_truncation_biases_it(self):
        # d = 2, KL = 2 bits; with 8 padding bits (K = 2**11) truncation is negligible, with none (K = 8) it is not.
        mu = _mu(2, 2.0)
        direction = mu / mu.norm()
        statistics = {}
        for padding_bits in (8, 0):
            simulator = ChunkedPFRSimulator(padding_bits=padding_bits)
            samples = torch.stack([simulator.encode(mu, derive_key(b"distribution", i))[1] for i in range(500)])
            noise = samples.double() - mu  # (500, 2): N(0, I) if the sample follows q
            along, across = noise @ direction, noise @ torch.stack((-direction[1], direction[0]))
            statistics[padding_bits] = (
                scipy.stats.kstest(along.numpy(), "norm"),
                scipy.stats.kstest(across.numpy(), "norm"),
                (samples.double() @ mu / mu.square().sum()).mean().item(),
            )
        (along_ks, across_ks, projection), (truncated_along_ks, truncated_across_ks, truncated_projection) = (
            statistics[8],
            statistics[0],
        )
        assert along_ks.pvalue > 0.01 and across_ks.pvalue > 0.01
        assert abs(projection - 1.0) < 4.0 / (mu.norm().item() * 500**0.5)
        # Truncation pulls the sample toward the prior along mu only.
        assert truncated_along_ks.pvalue < 1e-6 and truncated_along_ks.statistic > 3 * along_ks.statistic
        assert truncated_projection < projection - 0.2
        assert truncated_across_ks.pvalue > 0.01

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

    def test_decode_rejects_inconsistent_codes(self):
        simulator = ChunkedPFRSimulator()
        code, _ = simulator.encode(_mu(10, 30.0), b"key")
        too_many_chunks = simulator.kl_code_for(1000.0, 1000)
        bad_codes = [
            StepCode(code.kl_code, code.indices[:-1]),
            StepCode(code.kl_code, (2**16,) + code.indices[1:]),
            StepCode(simulator.max_kl_code + 1, ()),
            StepCode(too_many_chunks, (0,) * simulator.layout(too_many_chunks).num_chunks),
        ]
        for bad_code in bad_codes:
            with pytest.raises(StreamError):
                simulator.decode(bad_code, 10, b"key")
        with pytest.raises(ValueError, match="dim"):
            simulator.decode(code, 0, b"key")

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_chunk_bits": 0},
            {"max_chunk_bits": 25},
            {"padding_bits": 16},
            {"padding_bits": -1},
            {"kl_codes_per_octave": 0},
            {"max_kl_bits": 0.5},
            {"tile_size": 0},
        ],
    )
    def test_rejects_bad_configs(self, kwargs):
        with pytest.raises(ValueError):
            ChunkedPFRSimulator(**kwargs)

    @pytest.mark.gpu
    def test_gpu_encode_cpu_decode(self):
        simulator = ChunkedPFRSimulator(max_chunk_bits=12)
        code, sample = simulator.encode(_mu(2000, 100.0).cuda(), b"device")
        assert sample.device.type == "cuda"
        assert torch.equal(simulator.decode(code, 2000, b"device", "cuda"), sample)
        # Candidates agree across devices up to rare last-ulp float32 differences of the transcendental kernels.
        torch.testing.assert_close(simulator.decode(code, 2000, b"device"), sample.cpu(), rtol=2**-22, atol=0.0)
