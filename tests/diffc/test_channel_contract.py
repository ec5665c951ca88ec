"""The `ChannelSimulator` contract, checked for every chunked PFR simulator.

Each simulator is a `Coder`: its class plus the class-specific constructor kwargs of each contract test (e.g. the
pooled coder's `pool_width`), its own round-trip problems and its own invalid configurations. The tests of one coder
only (code-length bound, layouts, pool rows, early stopping, ...) live in `test_channel.py` / `test_channel_pooled.py`.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
import scipy.stats
import torch

from cod_diffc.codecs.randomness import derive_key
from cod_diffc.diffc.channel import ChunkedChannelSimulator, ChunkedPFRSimulator, StepCode
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.errors import StreamError


def _mu(dim: int, kl_bits: float, seed: int = 0) -> torch.Tensor:
    """A random direction scaled so that KL(N(mu, I) || N(0, I)) = kl_bits."""
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return direction / direction.norm() * math.sqrt(2.0 * math.log(2.0) * kl_bits)


@dataclass(frozen=True)
class Coder:
    """A simulator class and its class-specific settings of the contract tests."""

    name: str
    cls: type[ChunkedChannelSimulator]
    # Per test ("roundtrip", "reproducible", "threads", "distribution", "rejects", "gpu"): constructor kwargs added to
    # the ones the test passes itself.
    kwargs: Mapping[str, Mapping[str, object]]
    # (dim, kl_bits, key tag) of test_identical_across_thread_counts.
    thread_problems: tuple[tuple[int, float, bytes], ...]
    # (dim, kl_bits, constructor kwargs) round trips beyond ROUNDTRIP_PROBLEMS.
    extra_roundtrips: tuple[tuple[int, float, Mapping[str, object]], ...] = ()
    # Constructor kwargs that only this class rejects, beyond BAD_CONFIGS.
    extra_bad_configs: tuple[Mapping[str, object], ...] = ()
    # Whether a CUDA encode gives the same code as a CPU encode (no ties of the objective between devices).
    codes_agree_across_devices: bool = False

    def make(self, test: str, **kwargs) -> ChunkedChannelSimulator:
        return self.cls(**{**self.kwargs.get(test, {}), **kwargs})


PLAIN = Coder(
    name="plain",
    cls=ChunkedPFRSimulator,
    kwargs={"threads": {"max_chunk_bits": 10}},
    thread_problems=((300, 60.0, b"small chunks"), (20000, 3.0, b"one wide chunk")),
    extra_bad_configs=({"tile_size": 0},),
)
POOLED = Coder(
    name="pooled",
    cls=PooledPFRSimulator,
    kwargs={
        "roundtrip": {"pool_width": 7},
        "reproducible": {"pool_width": 32},
        "threads": {"max_chunk_bits": 12, "pool_width": 64},
        "distribution": {"max_chunk_bits": 12},
        "rejects": {"max_chunk_bits": 12},
        "gpu": {"pool_width": 64},
    },
    thread_problems=((300, 60.0, b"small chunks"), (20000, 8.0, b"one chunk of many segments")),
    extra_roundtrips=((1000, 40.0, {"pool_width": 1024}), (300, 60.0, {"pool_width": 1})),
    extra_bad_configs=({"pool_width": 0}, {"pool_width": 2**16}),
    codes_agree_across_devices=True,
)
CODERS = (PLAIN, POOLED)

ROUNDTRIP_PROBLEMS = ((1, 0.0), (16, 1e-9), (16, 0.5), (2, 2.0), (64, 14.0), (1000, 40.0), (5, 200.0))
BAD_CONFIGS = (
    {"max_chunk_bits": 0},
    {"max_chunk_bits": 25},
    {"padding_bits": 16},
    {"padding_bits": -1},
    {"kl_codes_per_octave": 0},
    {"max_kl_bits": 0.5},
)


def _case_id(coder: Coder, *values) -> str:
    """E.g. `plain-16-0.5`, `pooled-300-60.0-pool_width=1`, `pooled-max_chunk_bits=0`."""
    words = [
        "-".join(f"{name}={v}" for name, v in value.items()) if isinstance(value, Mapping) else str(value)
        for value in values
    ]
    return "-".join([coder.name, *filter(None, words)])


ROUNDTRIP_CASES = [
    pytest.param(coder, dim, kl_bits, kwargs, id=_case_id(coder, dim, kl_bits, kwargs))
    for coder in CODERS
    for dim, kl_bits, kwargs in tuple((*problem, {}) for problem in ROUNDTRIP_PROBLEMS) + coder.extra_roundtrips
]
BAD_CONFIG_CASES = [
    pytest.param(coder, kwargs, id=_case_id(coder, kwargs))
    for coder in CODERS
    for kwargs in BAD_CONFIGS + coder.extra_bad_configs
]


@pytest.fixture(params=CODERS, ids=lambda coder: coder.name)
def coder(request) -> Coder:
    return request.param


class TestChannelSimulatorContract:
    @pytest.mark.parametrize("coder, dim, kl_bits, kwargs", ROUNDTRIP_CASES)
    def test_decode_regenerates_the_encoded_sample(self, coder, dim, kl_bits, kwargs):
        simulator = coder.make("roundtrip", max_chunk_bits=12, **kwargs)
        key = derive_key(b"roundtrip", dim)
        code, sample = simulator.encode(_mu(dim, kl_bits).float(), key)
        assert sample.shape == (dim,) and sample.dtype == torch.float32
        assert len(code.indices) == simulator.layout(code.kl_code).num_chunks <= dim
        assert torch.equal(simulator.decode(code, dim, key), sample)

    def test_encoding_is_reproducible(self, coder):
        simulator = coder.make("reproducible", max_chunk_bits=12)
        mu = _mu(300, 50.0)
        first, second = simulator.encode(mu, b"key"), simulator.encode(mu.clone(), b"key")
        assert first[0] == second[0] and torch.equal(first[1], second[1])
        other_key = simulator.encode(mu, b"other key")
        assert other_key[0] != first[0] and not torch.equal(other_key[1], first[1])

    def test_identical_across_thread_counts(self, coder):
        simulator = coder.make("threads")
        problems = [(_mu(dim, kl_bits), key) for dim, kl_bits, key in coder.thread_problems]
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

    def test_sample_has_the_target_distribution_and_truncation_biases_it(self, coder):
        # d = 2, KL = 2 bits: with 8 padding bits (K = 2**10 or 2**11) truncation is negligible, with none (K = 4 or 8)
        # it is not.
        mu = _mu(2, 2.0)
        direction = mu / mu.norm()
        statistics = {}
        for padding_bits in (8, 0):
            simulator = coder.make("distribution", padding_bits=padding_bits)
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

    def test_decode_rejects_inconsistent_codes(self, coder):
        simulator = coder.make("rejects")
        code, _ = simulator.encode(_mu(10, 30.0), b"key")
        out_of_range = 2**simulator.max_chunk_bits  # above every chunk's candidate count
        too_many_chunks = simulator.kl_code_for(1000.0, 1000)
        bad_codes = [
            StepCode(code.kl_code, code.indices[:-1]),
            StepCode(code.kl_code, (out_of_range,) + code.indices[1:]),
            StepCode(code.kl_code, (out_of_range,) * 3),  # and, with max_chunk_bits = 12, one chunk short
            StepCode(simulator.max_kl_code + 1, ()),
            StepCode(too_many_chunks, (0,) * simulator.layout(too_many_chunks).num_chunks),
        ]
        for bad_code in bad_codes:
            with pytest.raises(StreamError):
                simulator.decode(bad_code, 10, b"key")
        with pytest.raises(ValueError, match="dim"):
            simulator.decode(code, 0, b"key")

    @pytest.mark.parametrize("coder, kwargs", BAD_CONFIG_CASES)
    def test_rejects_bad_configs(self, coder, kwargs):
        with pytest.raises(ValueError):
            coder.cls(**kwargs)

    @pytest.mark.gpu
    def test_gpu_encode_cpu_decode(self, coder):
        simulator = coder.make("gpu", max_chunk_bits=12)
        mu = _mu(2000, 100.0)
        code, sample = simulator.encode(mu.cuda(), b"device")
        assert sample.device.type == "cuda"
        assert simulator.encode(mu.cuda(), b"device")[0] == code  # run to run: no order-dependent reductions
        assert torch.equal(simulator.decode(code, 2000, b"device", "cuda"), sample)
        # Candidates agree across devices up to rare last-ulp float32 differences of the transcendental kernels.
        torch.testing.assert_close(simulator.decode(code, 2000, b"device"), sample.cpu(), rtol=2**-22, atol=0.0)
        if coder.codes_agree_across_devices:
            # Scores differ between devices only in float32 rounding, so the codes agree unless two objectives tie.
            assert simulator.encode(mu, b"device")[0] == code
