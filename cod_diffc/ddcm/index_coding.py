r"""Exact-cost coding of the DDCM family's choices: atom subsets by their rank, and every choice of a stream as one
mixed-radix integer.

A step of a block chooses one of `R` alternatives (DDCM: `R = K` atoms; Turbo-DDCM: `R = C(K, M) * 2**M`, a subset
of `M` of the `K` atoms and a sign for each). The choices are uniform by construction (the atoms are i.i.d.), so
their ideal code is `log2 R` bits, and a stream of choices `d_i < R_i` is coded as the integer

    value = d_0 + R_0 * (d_1 + R_1 * (d_2 + ...)),    0 <= value < prod(R_i),

in the fewest bytes that hold `prod(R_i) - 1`: at most one byte above the ideal `sum(log2 R_i)` bits for the whole
stream. An entropy coder (CompressAI's rANS) would spend its flush bytes for no gain on uniform symbols, so this
is the coder that fits here. A subset `c_1 < c_2 < ... < c_M` of `range(K)` is numbered by the combinatorial number
system, `rank = sum_i C(c_i, i)` (`i` from 1), a bijection onto `range(C(K, M))`.
"""

import math
from collections.abc import Sequence

from cod_diffc.errors import StreamError


def subset_rank(indices: Sequence[int]) -> int:
    """The rank in `range(C(K, M))` of `M` distinct indices given in increasing order."""
    return sum(math.comb(index, position) for position, index in enumerate(indices, start=1))


def subset_unrank(rank: int, size: int, num_items: int) -> list[int]:
    """The `size` increasing indices in `range(num_items)` of rank `rank` ([`subset_rank`]'s inverse)."""
    indices = []
    upper = num_items
    for position in range(size, 0, -1):
        # The largest index c < upper with C(c, position) <= rank: binary search, C is increasing in c.
        low, high = position - 1, upper - 1
        while low < high:
            middle = (low + high + 1) // 2
            if math.comb(middle, position) <= rank:
                low = middle
            else:
                high = middle - 1
        indices.append(low)
        rank -= math.comb(low, position)
        upper = low
    return indices[::-1]


Runs = Sequence[tuple[int, int]]
"""The radices of a stream's digits as `(radix, count)` runs, in digit order."""


def _radix_product(runs: Runs) -> int:
    return math.prod(radix**count for radix, count in runs)


def packed_size(runs: Runs) -> int:
    """Bytes of the mixed-radix integer of digits with these radices (0 for no digits)."""
    return ((_radix_product(runs) - 1).bit_length() + 7) // 8


def _radices(runs: Runs) -> list[int]:
    return [radix for radix, count in runs for _ in range(count)]


def pack_digits(digits: Sequence[int], runs: Runs) -> bytes:
    """Digits `0 <= digits[i] < radix_i` as one little-endian integer of [`packed_size`] bytes."""
    radices = _radices(runs)
    if len(digits) != len(radices):
        raise ValueError(f"{len(digits)} digits for {len(radices)} radices")
    value = 0
    for digit, radix in zip(reversed(digits), reversed(radices)):
        if not 0 <= digit < radix:
            raise ValueError(f"digit {digit} outside [0, {radix})")
        value = value * radix + digit
    return value.to_bytes(packed_size(runs), "little")


def unpack_digits(data: bytes, runs: Runs) -> list[int]:
    """[`pack_digits`]'s inverse; [`~errors.StreamError`] for bytes of the wrong length or too large a value."""
    if len(data) != packed_size(runs):
        raise StreamError(f"corrupt stream: {len(data)} bytes of atom choices, expected {packed_size(runs)}")
    value = int.from_bytes(data, "little")
    if value >= _radix_product(runs):
        raise StreamError("corrupt stream: the atom choices encode a value outside their range")
    digits = []
    for radix in _radices(runs):
        value, digit = divmod(value, radix)
        digits.append(digit)
    return digits
