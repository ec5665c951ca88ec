import pytest
import scipy.stats
import torch

from cod_diffc.codecs.randomness import CounterGenerator, derive_key, philox4x32


def _normals(generator: CounterGenerator, stream: int, num_rows: int, num_columns: int) -> torch.Tensor:
    rows = torch.arange(num_rows)
    return generator.normal(torch.full_like(rows, stream), rows, num_columns)


class TestDeriveKey:
    def test_digest_is_stable(self):
        # BLAKE2b-256, person b"cod_diffc.key", over (tag, 8-byte big-endian length, payload) per part.
        expected = "1fd92b9cb46d4ee4a21f45c3ac7be37881c8873421cfbb6cfd371bd3bfd7f1fd"
        assert derive_key(b"seed", "diffc-step", 3).hex() == expected

    def test_parts_are_distinguished(self):
        keys = [
            derive_key("ab", "c"),
            derive_key("a", "bc"),
            derive_key(b"ab", "c"),
            derive_key("abc"),
            derive_key("ab", "c", 0),
            derive_key(1),
            derive_key("1"),
            derive_key(b"\x01"),
            derive_key(-1),
            derive_key(255),
            derive_key(),
        ]
        assert len(set(keys)) == len(keys)
        assert all(len(key) == 32 for key in keys)

    @pytest.mark.parametrize("part", [1.5, True, None, [1]])
    def test_rejects_other_types(self, part):
        with pytest.raises(TypeError):
            derive_key(b"seed", part)


class TestPhilox:
    @pytest.mark.parametrize(
        "counter, key, expected",
        [
            # Known-answer vectors of Philox4x32-10 (Salmon et al. 2011, Random123's kat_vectors).
            ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
            ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
            (
                (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
                (0xA4093822, 0x299F31D0),
                (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
            ),
        ],
    )
    def test_known_answers(self, counter, key, expected):
        words = philox4x32(torch.tensor(counter, dtype=torch.int64).view(4, 1), key)
        assert tuple(words[:, 0].tolist()) == expected


class TestCounterGenerator:
    def test_candidate_alone_equals_candidate_in_batch(self):
        generator = CounterGenerator(b"key")
        batch = _normals(generator, stream=5, num_rows=64, num_columns=7)  # (64, 7)
        for row in (0, 13, 63):
            alone = generator.normal(torch.tensor([5]), torch.tensor([row]), 7)
            assert torch.equal(alone[0], batch[row])
        # A column does not depend on how many columns are drawn.
        assert torch.equal(_normals(generator, 5, 64, 5), batch[:, :5])
        uniforms = generator.uniform(torch.full((64,), 5), torch.arange(64), 9)
        assert torch.equal(generator.uniform(torch.tensor([5]), torch.tensor([40]), 3)[0], uniforms[40, :3])

    def test_keys_and_streams_give_different_numbers(self):
        reference = _normals(CounterGenerator(b"key"), 0, 8, 8)
        assert torch.equal(reference, _normals(CounterGenerator(b"key"), 0, 8, 8))
        assert not torch.isclose(reference, _normals(CounterGenerator(b"key2"), 0, 8, 8)).any()
        assert not torch.isclose(reference, _normals(CounterGenerator(b"key"), 1, 8, 8)).any()

    def test_identical_across_thread_counts(self):
        generator = CounterGenerator(b"threads")
        previous = torch.get_num_threads()
        try:
            torch.set_num_threads(1)
            one_thread = (_normals(generator, 3, 1000, 131), generator.permutation(5000))
            torch.set_num_threads(2)
            two_threads = (_normals(generator, 3, 1000, 131), generator.permutation(5000))
        finally:
            torch.set_num_threads(previous)
        assert torch.equal(one_thread[0], two_threads[0])
        assert torch.equal(one_thread[1], two_threads[1])

    def test_normals_are_standard_normal(self):
        normals = _normals(CounterGenerator(b"statistics"), 0, 512, 512).double()  # (512, 512)
        values = normals.flatten()
        n = values.numel()
        assert abs(values.mean().item()) < 4.0 / n**0.5
        assert abs(values.var().item() - 1.0) < 4.0 * (2.0 / n) ** 0.5
        assert scipy.stats.kstest(values.numpy(), "norm").pvalue > 1e-3
        # Neighbouring columns (same Box-Muller pair or block) and rows are uncorrelated.
        pairs = ((normals[:, 0], normals[:, 1]), (normals[:, 1], normals[:, 2]), (normals[0], normals[1]))
        for first, second in pairs:
            assert abs((first * second).mean().item()) < 4.0 / first.numel() ** 0.5

    def test_uniforms_are_uniform(self):
        uniforms = CounterGenerator(b"uniform").uniform(torch.zeros(64), torch.arange(64), 1000).flatten()
        assert 0.0 < uniforms.min().item() and uniforms.max().item() < 1.0
        assert scipy.stats.kstest(uniforms.numpy(), "uniform").pvalue > 1e-3

    def test_permutation(self):
        generator = CounterGenerator(b"permutation")
        permutation = generator.permutation(1000)
        assert torch.equal(permutation.sort().values, torch.arange(1000))
        assert torch.equal(permutation, generator.permutation(1000))
        assert not torch.equal(permutation, generator.permutation(1000, stream=1))

    def test_rejects_out_of_range_counters(self):
        generator = CounterGenerator(b"key")
        with pytest.raises(ValueError, match="rows"):
            generator.normal(torch.zeros(1), torch.tensor([2**32]), 4)
        with pytest.raises(ValueError, match="same length"):
            generator.normal(torch.zeros(2), torch.zeros(3), 4)
        with pytest.raises(TypeError):
            CounterGenerator("not bytes")

    @pytest.mark.gpu
    def test_cpu_and_gpu_agree(self):
        generator_cpu, generator_gpu = CounterGenerator(b"device"), CounterGenerator(b"device", "cuda")
        rows = torch.arange(4096)
        streams = torch.full_like(rows, 7)
        words_cpu = generator_cpu.random_words(streams, rows, 16)
        assert torch.equal(words_cpu, generator_gpu.random_words(streams, rows, 16).cpu())
        assert torch.equal(generator_cpu.permutation(10000), generator_gpu.permutation(10000).cpu())
        normals_cpu = generator_cpu.normal(streams, rows, 64)
        normals_gpu = generator_gpu.normal(streams, rows, 64).cpu()
        # Transcendental kernels may differ in the last float64 ulp, which survives rounding to float32 rarely.
        assert (normals_cpu != normals_gpu).float().mean().item() < 1e-4
        torch.testing.assert_close(normals_cpu, normals_gpu, rtol=2**-22, atol=0.0)
