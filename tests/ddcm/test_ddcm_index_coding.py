import itertools
import math
import random

import pytest

from cod_diffc.ddcm.index_coding import pack_digits, packed_size, subset_rank, subset_unrank, unpack_digits
from cod_diffc.errors import StreamError


def test_subset_ranks_are_a_bijection_onto_the_binomial_range():
    num_items, size = 9, 4
    ranks = [subset_rank(subset) for subset in itertools.combinations(range(num_items), size)]
    assert sorted(ranks) == list(range(math.comb(num_items, size)))
    for subset in itertools.combinations(range(num_items), size):
        assert subset_unrank(subset_rank(subset), size, num_items) == list(subset)


def test_large_subsets_round_trip():
    rng = random.Random(0)
    for _ in range(20):
        subset = sorted(rng.sample(range(2**14), 64))
        rank = subset_rank(subset)
        assert 0 <= rank < math.comb(2**14, 64)
        assert subset_unrank(rank, 64, 2**14) == subset


@pytest.mark.parametrize("radix", [2, 4096, math.comb(4096, 7) * 2**7])
def test_digits_round_trip_in_their_ideal_size(radix):
    rng = random.Random(radix)
    digits = [rng.randrange(radix) for _ in range(50)]
    packed = pack_digits(digits, [(radix, 50)])
    assert len(packed) == packed_size([(radix, 50)]) == math.ceil(50 * math.log2(radix) / 8 - 1e-12)
    assert unpack_digits(packed, [(radix, 50)]) == digits


def test_runs_of_different_radices_round_trip():
    runs = [(math.comb(64, 3) * 8, 7), (math.comb(64, 2) * 4, 5)]
    rng = random.Random(1)
    digits = [rng.randrange(radix) for radix, count in runs for _ in range(count)]
    packed = pack_digits(digits, runs)
    ideal_bits = sum(count * math.log2(radix) for radix, count in runs)
    assert len(packed) == math.ceil(ideal_bits / 8) and unpack_digits(packed, runs) == digits


def test_no_digits_take_no_bytes():
    assert pack_digits([], []) == b"" and unpack_digits(b"", []) == []


def test_forged_choices_are_stream_errors():
    packed = pack_digits([5, 6, 7], [(10, 3)])  # 999 < 1000: 2 bytes
    with pytest.raises(StreamError, match="expected 2"):
        unpack_digits(packed + b"\x00", [(10, 3)])
    with pytest.raises(StreamError, match="outside their range"):
        unpack_digits((1000).to_bytes(2, "little"), [(10, 3)])
    with pytest.raises(ValueError, match="outside"):
        pack_digits([10], [(10, 1)])
