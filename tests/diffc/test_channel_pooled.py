import math

import pytest
import scipy.stats
import torch

from cod_diffc.backbones.gaussian import GaussianBackbone
from cod_diffc.codecs.randomness import CounterGenerator, derive_key, gaussian_pool
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.bitstream import read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator, StepCode
from cod_diffc.diffc.channel_pooled import POOL_KEY, PooledPFRSimulator, _Segments
from cod_diffc.diffc.channel_registry import channel_from_config
from cod_diffc.diffc.codec import decode, encode
from cod_diffc.diffc.index_coding import decode_step_codes, encode_step_codes


def _mu(dim: int, kl_bits: float, seed: int = 0) -> torch.Tensor:
    """A random direction scaled so that KL(N(mu, I) || N(0, I)) = kl_bits."""
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return direction / direction.norm() * math.sqrt(2.0 * math.log(2.0) * kl_bits)


def _chunk_statistics(simulator, mu: torch.Tensor, num_steps: int, tag: bytes):
    """Per step: the code, the sample and the projection <z, mu> / |mu|^2."""
    codes, samples = [], []
    for step in range(num_steps):
        code, sample = simulator.encode(mu, derive_key(tag, step))
        codes.append(code)
        samples.append(sample.double())
    samples = torch.stack(samples)  # (N, d)
    return codes, samples, samples @ mu / mu.square().sum()


TWO_SAMPLE_MU, TWO_SAMPLE_STEPS = _mu(64, 14.9), 300


def _two_sample_statistics(simulator, tag: bytes) -> tuple:
    """Index bits log2(i + 1) of every chunk, step projections, and noise across mu (8 coordinates per step)."""
    mu = TWO_SAMPLE_MU
    codes, samples, projections = _chunk_statistics(simulator, mu, TWO_SAMPLE_STEPS, tag)
    assert simulator.layout(codes[0].kl_code).num_chunks == 2
    index_bits = torch.tensor([math.log2(index + 1) for code in codes for index in code.indices])
    noise = samples - mu  # (N, d)
    noise_across = noise - (noise @ mu / mu.square().sum())[:, None] * mu  # (N, d)
    return index_bits.numpy(), projections.numpy(), noise_across[:, :8].reshape(-1).numpy()


@pytest.fixture(scope="module")
def plain_statistics() -> tuple:
    return _two_sample_statistics(ChunkedPFRSimulator(max_chunk_bits=10, padding_bits=2), b"two-sample plain")


class TestPooledPFRSimulator:
    """Pooled-coder specifics; the `ChannelSimulator` contract tests are in test_channel_contract.py."""

    def test_candidates_are_signed_pool_rows_of_distinct_windows(self):
        # 3 chunks of ~33 coordinates, each split into 5 segments of <= 7: candidate k of a chunk is made of pool
        # rows K * (r_s // K) + (k + r_s) mod K, distinct across the segments of a candidate.
        simulator = PooledPFRSimulator(max_chunk_bits=10, padding_bits=2, pool_width=7)
        dim, key = 100, b"structure"
        code, _ = simulator.encode(_mu(dim, 20.0), key)
        layout = simulator.layout(code.kl_code)
        segments = _Segments(layout, dim, 7, 2**10, key, torch.device("cpu"))
        assert layout.num_chunks == 3 and segments.num_segments == 15
        num_candidates = 2 ** (layout.base_candidate_bits + (segments.chunk < layout.num_wide_chunks).long())
        permutation = simulator._permutation(key, dim, torch.device("cpu"))
        for index in (0, 1, 2**layout.base_candidate_bits - 1):
            rows = segments.rows(torch.full((15,), index), num_candidates)
            assert len(set(rows.tolist())) == 15
            sample = simulator.decode(StepCode(code.kl_code, (index,) * 3), dim, key)[permutation]
            for segment, row in enumerate(rows.tolist()):
                start, length = segments.start[segment].item(), segments.length[segment].item()
                assert torch.equal(
                    sample[start : start + length].abs(), gaussian_pool(POOL_KEY, 2**10, length)[row].abs()
                )
        # A segment's K candidates take K distinct rows.
        for k_bits in (4, 10):
            all_rows = torch.stack([segments.rows(torch.full((15,), k), 2**k_bits) for k in range(2**k_bits)])
            assert all(len(set(all_rows[:, segment].tolist())) == 2**k_bits for segment in range(15))

    def test_pool_rows_are_regenerated_exactly(self):
        rows = torch.tensor([0, 17, 2**12 - 1])
        regenerated = CounterGenerator(POOL_KEY).normal(torch.zeros_like(rows), rows, 100)
        assert torch.equal(gaussian_pool(POOL_KEY, 2**12, 100)[rows], regenerated)
        # A wider pool extends the narrower one.
        assert torch.equal(gaussian_pool(POOL_KEY, 2**12, 300)[rows, :100], regenerated)

    def test_early_stopped_selection_equals_the_full_argmin(self):
        generator = torch.Generator().manual_seed(0)
        arrivals = CounterGenerator(b"arrivals")
        for scale in (0.5, 3.0, 6.0):
            scores = scale * torch.randn(6, 2**13, generator=generator)
            chunk_ids = torch.arange(6) + 10
            block = min(2048, scores.shape[1])
            uniforms = torch.cat(
                [arrivals.uniform(chunk_ids, torch.full_like(chunk_ids, j), block) for j in range(2**13 // block)], 1
            )
            full = torch.argmin(torch.log(torch.cumsum(-torch.log(uniforms), dim=1)) - scores, dim=1)
            assert torch.equal(PooledPFRSimulator._pfr_argmin(scores, arrivals, chunk_ids), full)

    @pytest.mark.parametrize("pool_width", [64, 5])
    def test_indices_and_projections_match_the_plain_coder(self, pool_width, plain_statistics):
        # 2 chunks of 32 coordinates, 7.5 bits of nominal KL each, K = 2**9 or 2**10; pool_width 5 splits every chunk
        # into 7 segments whose candidates share pool rows with other candidates. Two-sample tests (index bits,
        # projections, noise across mu) against the plain coder.
        pooled = PooledPFRSimulator(max_chunk_bits=10, padding_bits=2, pool_width=pool_width)
        pooled_statistics = _two_sample_statistics(pooled, b"two-sample pooled")
        for plain_values, pooled_values in zip(plain_statistics, pooled_statistics):
            assert scipy.stats.ks_2samp(plain_values, pooled_values).pvalue > 0.001

    def test_noise_is_uncorrelated_across_chunks_and_steps(self):
        # A small pool (M = 2**8 rows, K = M) makes rows recur across the chunks and steps of the sample.
        simulator = PooledPFRSimulator(max_chunk_bits=8, padding_bits=4, pool_width=4)
        mu, num_steps = _mu(48, 14.9), 300
        codes, samples, _ = _chunk_statistics(simulator, mu, num_steps, b"correlation")
        assert simulator.layout(codes[0].kl_code).num_chunks == 4
        noise = samples - samples.mean(0)  # (N, d)
        noise = noise / noise.norm(dim=0)
        bound = 5.0 / num_steps**0.5  # 5 sigma of a correlation estimated from N independent pairs
        # Within a step: every pair of coordinates (same or different chunks).
        within = noise.T @ noise  # (d, d)
        off_diagonal = within[~torch.eye(48, dtype=torch.bool)]
        assert off_diagonal.abs().max() < bound
        assert abs(off_diagonal.square().mean().item() * num_steps - 1.0) < 0.15
        # Across steps: coordinates of step 2i against coordinates of step 2i + 1.
        even, odd = noise[0::2] / noise[0::2].norm(dim=0), noise[1::2] / noise[1::2].norm(dim=0)
        across = even.T @ odd  # (d, d)
        assert across.abs().max() < 5.0 / (num_steps // 2) ** 0.5
        assert abs(across.square().mean().item() * num_steps / 2 - 1.0) < 0.15

    def test_pool_rows_recur_within_a_step_at_the_chance_rate(self):
        # M = 2**8 rows, ~130 segments per step: the chosen rows of two segments of different chunks coincide with
        # probability 1 / (M - 1), except for chunks of equal candidate count and index (the r_s are distinct).
        num_rows, dim = 2**8, 512
        simulator = PooledPFRSimulator(max_chunk_bits=8, padding_bits=2, pool_width=4)
        observed = expected = 0.0
        for step in range(60):
            key = derive_key(b"recurrence", step)
            code, _ = simulator.encode(_mu(dim, 40.0, seed=step), key)
            layout = simulator.layout(code.kl_code)
            segments = _Segments(layout, dim, 4, num_rows, key, torch.device("cpu"))
            indices = torch.tensor(code.indices)
            wide = (torch.arange(layout.num_chunks) < layout.num_wide_chunks).long()
            chunk_candidates = 2 ** (layout.base_candidate_bits + wide)  # (n,)
            rows = segments.rows(indices[segments.chunk], chunk_candidates[segments.chunk])  # (S,)
            counts = torch.bincount(rows, minlength=num_rows)
            observed += (counts * (counts - 1) / 2).sum().item()
            segments_per_chunk = torch.bincount(segments.chunk).double()
            same_code = (indices[:, None] == indices[None, :]) & (wide[:, None] == wide[None, :])  # (n, n)
            pairs = segments_per_chunk[:, None] * segments_per_chunk[None, :] * (~same_code).double()
            expected += pairs.triu(diagonal=1).sum().item() / (num_rows - 1)
        assert expected > 500
        assert abs(observed - expected) < 4.0 * expected**0.5

    def test_codes_round_trip_through_index_coding(self):
        simulator = PooledPFRSimulator(max_chunk_bits=12, pool_width=16)
        kl_values = [0.0, 5.0, 30.0, 31.0]
        codes = [simulator.encode(_mu(200, kl, i), derive_key(b"ans", i))[0] for i, kl in enumerate(kl_values)]
        assert decode_step_codes(encode_step_codes(codes, simulator), len(codes), simulator) == codes

    def test_stream_coded_with_the_pooled_simulator_decodes(self):
        # The stream records the simulator (channel_config), so the decoder rebuilds it without being told.
        adapter = GaussianBackbone(std=0.3)
        image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        simulator = PooledPFRSimulator(max_chunk_bits=8, padding_bits=2, pool_width=16)
        schedule = DiffCSchedule(num_steps=8, t_end=0.05)
        encoded = encode(
            image, adapter, stop_step=[3, 8], schedule=schedule, seed=1, simulator=simulator, progress=False
        )
        for point in encoded.points:
            assert repr(channel_from_config(read_stream(point.stream).channel)) == repr(simulator)
            decoded = decode(point.stream, adapter, progress=False)
            assert torch.equal(decoded.latent, point.latent)
