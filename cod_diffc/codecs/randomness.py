r"""Shared randomness for DiffC: stable key derivation and a counter-based Gaussian generator.

Encoder and decoder share no state except a key, so every random number DiffC uses is a pure function of
`(key, stream, row, column)`:

- [`derive_key`] hashes a tuple of parts (bytes, ints, strings) with BLAKE2b into a 32-byte key. It never uses
  Python's `hash()` (salted per process) or a global RNG.
- [`CounterGenerator`] turns a key into numbers with Philox4x32-10 (Salmon et al., "Parallel random numbers: as
  easy as 1, 2, 3", SC 2011), written with int64 tensor ops only, so that it runs on any torch device and gives
  the same integers everywhere. Row `r` of a draw never depends on which other rows are drawn with it: candidate
  `k` of a chunk can be regenerated on its own.

Philox counter layout (four 32-bit words) for draw element (stream `s`, row `r`, column block `j`):

    x0 = j   (column block: 4 outputs per block)
    x1 = r   (row, e.g. candidate index)
    x2 = s   (stream, e.g. chunk index)
    x3 = third 32-bit word of the generator's key digest

and the 64-bit Philox key is the first two 32-bit words of that digest, so a generator carries 96 bits of key.
Normals use Box-Muller in float64 on 32-bit uniforms (so |z| <= 6.66), rounded to float32. The integer part is
bit-exact on every device and thread count; `log`, `sqrt`, `cos` and `sin` are the device's float64 kernels, which
may differ in the last float64 ulp between CPU and CUDA (or between a vectorised and a scalar CPU path). After
rounding to float32 such a difference survives only in the ~2^-29 of values that sit on a float32 rounding
boundary, so CPU and GPU candidates agree except for rare last-ulp float32 differences.
"""

import functools
import hashlib

import torch

from .devices import check_in_range


_MASK32 = 0xFFFFFFFF
_PHILOX_ROUNDS = 10
_PHILOX_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_PHILOX_WEYL = (0x9E3779B9, 0xBB67AE85)
_TWO_POW_MINUS_32 = 2.0**-32


def derive_key(*parts: bytes | int | str) -> bytes:
    r"""Derives a 32-byte key from `parts` with a stable, prefix-free encoding hashed by BLAKE2b.

    Each part is written as a one-byte type tag (`b` bytes, `i` int, `s` str), an 8-byte big-endian length and the
    payload (ints: minimal signed big-endian two's complement; strings: UTF-8), so `derive_key("ab", "c")`,
    `derive_key("a", "bc")` and `derive_key(b"ab", "c")` all differ. The digest is stable across processes,
    platforms and Python versions.

    Args:
        parts (`bytes`, `int` or `str`):
            The values to combine, e.g. `derive_key(stream_seed, "diffc-step", n)`.

    Returns:
        `bytes`: a 32-byte key.
    """
    hasher = hashlib.blake2b(digest_size=32, person=b"cod_diffc.key")
    for part in parts:
        if isinstance(part, (bytes, bytearray)):
            tag, payload = b"b", bytes(part)
        elif isinstance(part, bool) or not isinstance(part, (int, str)):
            raise TypeError(f"derive_key parts must be bytes, int or str, got {type(part).__name__}")
        elif isinstance(part, int):
            tag, payload = b"i", part.to_bytes(part.bit_length() // 8 + 1, "big", signed=True)
        else:
            tag, payload = b"s", part.encode("utf-8")
        hasher.update(tag + len(payload).to_bytes(8, "big") + payload)
    return hasher.digest()


@functools.cache
def _philox_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(multipliers_low, multipliers_high, rounds)` on `device`, `(2, 1)`, `(2, 1)` and `(10, 1)` int64, made once
    per device: a host-to-device copy in every call would wait for the device."""
    multipliers = torch.tensor(_PHILOX_MULTIPLIERS, dtype=torch.int64).view(2, 1)
    rounds = torch.arange(_PHILOX_ROUNDS, dtype=torch.int64).view(_PHILOX_ROUNDS, 1)
    return (multipliers & 0xFFFF).to(device), (multipliers >> 16).to(device), rounds.to(device)


def philox4x32(counters: torch.Tensor, key: tuple[int, int]) -> torch.Tensor:
    r"""Philox4x32-10 block function on int64 tensors.

    Every 32x32-bit multiplication is split into two 32x16-bit products (< 2^48), so no intermediate value leaves
    the int64 range and the result is the same on every device.

    Args:
        counters (`torch.Tensor`):
            `(4, N)` int64 tensor of counter words, each in `[0, 2**32)`.
        key (`tuple[int, int]`):
            The two 32-bit key words.

    Returns:
        `torch.Tensor`: `(4, N)` int64 tensor of random 32-bit words.
    """
    multipliers_low, multipliers_high, rounds = _philox_constants(counters.device)
    # Round r uses key (k0 + r W0, k1 + r W1) mod 2^32, computed on the device from the key's Python ints.
    round_keys = torch.cat([(rounds * weyl + word) & _MASK32 for word, weyl in zip(key, _PHILOX_WEYL)], dim=1)
    round_keys = round_keys.view(_PHILOX_ROUNDS, 2, 1)
    # Words (x0, x2) are multiplied, (x1, x3) are mixed in; keep them as two (2, N) halves between rounds.
    multiplied, mixed = counters[0::2].contiguous(), counters[1::2].contiguous()
    low_product, high_product = torch.empty_like(multiplied), torch.empty_like(multiplied)
    for round_key in round_keys:
        torch.mul(multiplied, multipliers_low, out=low_product)  # (2, N), < 2^48
        torch.mul(multiplied, multipliers_high, out=high_product)  # (2, N), < 2^48
        product_hi = (low_product >> 16).add_(high_product).bitwise_right_shift_(16)
        product_lo = high_product.bitwise_and_(0xFFFF).bitwise_left_shift_(16).add_(low_product).bitwise_and_(_MASK32)
        # x0' = hi(M1 x2) ^ x1 ^ k0, x2' = hi(M0 x0) ^ x3 ^ k1, x1' = lo(M1 x2), x3' = lo(M0 x0)
        multiplied = product_hi.flip(0).bitwise_xor_(mixed).bitwise_xor_(round_key)
        mixed = product_lo.flip(0)
    words = torch.empty_like(counters)
    words[0::2], words[1::2] = multiplied, mixed
    return words


class CounterGenerator:
    r"""Counter-based random numbers keyed by `key`: element `(stream, row, column)` is a pure function of them.

    Parameters:
        key (`bytes`):
            Any byte string; it is hashed (with [`derive_key`]) into the Philox key and the fixed counter word.
        device (`torch.device` or `str`, *optional*, defaults to `"cpu"`):
            Where the numbers are generated.
    """

    def __init__(self, key: bytes, device: torch.device | str = "cpu"):
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"key must be bytes, got {type(key).__name__}")
        digest = derive_key("philox4x32-10", key)
        self.philox_key = (int.from_bytes(digest[0:4], "little"), int.from_bytes(digest[4:8], "little"))
        self.counter_salt = int.from_bytes(digest[8:12], "little")
        self.device = torch.device(device)

    def random_words(self, streams: torch.Tensor, rows: torch.Tensor, num_blocks: int) -> torch.Tensor:
        r"""Raw Philox output for column blocks `0..num_blocks-1` of each `(stream, row)` pair.

        Args:
            streams (`torch.Tensor`): `(R,)` integer stream ids in `[0, 2**32)`.
            rows (`torch.Tensor`): `(R,)` integer row ids in `[0, 2**32)`.
            num_blocks (`int`): column blocks per row (4 words each).

        Returns:
            `torch.Tensor`: `(4, R * num_blocks)` int64 words, row-major in `(row, block)`.
        """
        streams = streams.to(device=self.device, dtype=torch.int64).reshape(-1)
        rows = rows.to(device=self.device, dtype=torch.int64).reshape(-1)
        if streams.shape != rows.shape:
            raise ValueError(f"streams {tuple(streams.shape)} and rows {tuple(rows.shape)} must have the same length")
        if num_blocks < 0 or num_blocks > _MASK32:
            raise ValueError(f"num_blocks must be in [0, 2**32), got {num_blocks}")
        for name, values in (("streams", streams), ("rows", rows)):
            check_in_range(values, 0, _MASK32, f"{name} must be in [0, 2**32)")
        counters = torch.empty(4, rows.numel(), num_blocks, dtype=torch.int64, device=self.device)
        counters[0] = torch.arange(num_blocks, dtype=torch.int64, device=self.device)
        counters[1] = rows[:, None]
        counters[2] = streams[:, None]
        counters[3] = self.counter_salt
        return philox4x32(counters.view(4, -1), self.philox_key)

    def uniform(self, streams: torch.Tensor, rows: torch.Tensor, num_columns: int) -> torch.Tensor:
        r"""Uniforms in the open interval (0, 1) with 32-bit resolution.

        Args:
            streams (`torch.Tensor`): `(R,)` stream ids.
            rows (`torch.Tensor`): `(R,)` row ids.
            num_columns (`int`): columns per row; column `c` does not depend on `num_columns`.

        Returns:
            `torch.Tensor`: `(R, num_columns)` float64.
        """
        num_blocks = -(-num_columns // 4)
        words = self.random_words(streams, rows, num_blocks)  # (4, R * num_blocks)
        uniforms = (words.to(torch.float64) + 0.5) * _TWO_POW_MINUS_32
        return uniforms.view(4, -1, num_blocks).permute(1, 2, 0).reshape(-1, 4 * num_blocks)[:, :num_columns]

    def normal(self, streams: torch.Tensor, rows: torch.Tensor, num_columns: int) -> torch.Tensor:
        r"""Standard normals (Box-Muller on pairs of 32-bit uniforms, computed in float64).

        Block `j` of a row gives columns `4j..4j+3`: `(r0 cos t0, r0 sin t0, r1 cos t1, r1 sin t1)` with
        `r = sqrt(-2 log u)`, `u = (w + 1) / 2**32` in (0, 1] and `t = 2 pi w' / 2**32`.

        Args:
            streams (`torch.Tensor`): `(R,)` stream ids.
            rows (`torch.Tensor`): `(R,)` row ids.
            num_columns (`int`): columns per row; column `c` does not depend on `num_columns`.

        Returns:
            `torch.Tensor`: `(R, num_columns)` float32.
        """
        num_blocks = -(-num_columns // 4)
        words = self.random_words(streams, rows, num_blocks).to(torch.float64)  # (4, R * num_blocks)
        radius = torch.sqrt(-2.0 * torch.log((words[0::2] + 1.0) * _TWO_POW_MINUS_32))  # (2, R * num_blocks)
        angle = words[1::2] * (2.0 * torch.pi * _TWO_POW_MINUS_32)  # (2, R * num_blocks)
        normals = torch.empty(4, words.shape[1], dtype=torch.float32, device=self.device)
        normals[0::2] = radius * torch.cos(angle)
        normals[1::2] = radius.mul_(torch.sin(angle))
        # (4, R, num_blocks) -> (R, num_blocks, 4): column 4j + w of a row comes from word w of its block j.
        return normals.view(4, -1, num_blocks).permute(1, 2, 0).reshape(-1, 4 * num_blocks)[:, :num_columns]

    def permutation(self, size: int, stream: int = 0) -> torch.Tensor:
        r"""A uniformly random permutation of `range(size)` (stable argsort of 63-bit random keys).

        Args:
            size (`int`): length of the permutation.
            stream (`int`, *optional*, defaults to 0): stream id.

        Returns:
            `torch.Tensor`: `(size,)` int64.
        """
        positions = torch.arange(size, dtype=torch.int64, device=self.device)
        words = self.random_words(torch.full_like(positions, stream), positions, 1)  # (4, size)
        sort_keys = (words[0] << 31) | (words[1] >> 1)  # 63 random bits, never negative
        return torch.argsort(sort_keys, stable=True)


# Rows of a pool generated per call while building it (bounds the generator's temporary memory).
_POOL_ROWS_PER_CALL = 4096
# Pool columns are generated in multiples of this, so requests of slightly different widths share one pool.
_POOL_COLUMN_QUANTUM = 64
# (key, rows, device) -> (rows, width) float32 pool, the widest built so far.
_POOL_CACHE: dict[tuple[bytes, int, str], torch.Tensor] = {}


def gaussian_pool(key: bytes, num_rows: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    r"""
    The first `width` columns of the first `num_rows` rows of the Gaussian pool of `key`, cached per process.

    Row `r` is `CounterGenerator(key).normal` at stream 0, row `r`; column `j` does not depend on `width`, so a
    decoder regenerates single rows without building the pool.

    Args:
        key (`bytes`): The pool's key.
        num_rows (`int`): Rows of the pool.
        width (`int`): Columns needed.
        device (`torch.device` or `str`, *optional*, defaults to `"cpu"`): Where the pool lives.

    Returns:
        `torch.Tensor`: `(num_rows, width)` float32 view of the cached pool.
    """
    cache_key = (bytes(key), num_rows, str(torch.device(device)))
    pool = _POOL_CACHE.get(cache_key)
    if pool is None or pool.shape[1] < width:
        width_built = -(-width // _POOL_COLUMN_QUANTUM) * _POOL_COLUMN_QUANTUM
        _POOL_CACHE.pop(cache_key, None)
        pool = None  # a narrower pool is freed before the wider one is built
        generator = CounterGenerator(key, device)
        pool = torch.empty(num_rows, width_built, dtype=torch.float32, device=device)
        for start in range(0, num_rows, _POOL_ROWS_PER_CALL):
            rows = torch.arange(start, min(start + _POOL_ROWS_PER_CALL, num_rows), device=device)
            pool[start : start + rows.numel()] = generator.normal(torch.zeros_like(rows), rows, width_built)
        _POOL_CACHE[cache_key] = pool
    return pool[:, :width]


def pool_rows(key: bytes, rows: torch.Tensor, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """`(R, width)` rows of the pool of `key`, regenerated on their own (what a decoder needs), equal to
    `gaussian_pool(key, ...)[rows]`."""
    return CounterGenerator(key, device).normal(torch.zeros_like(rows), rows, width)


def seeded_normal(key: bytes, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise of `shape` keyed by `key`, drawn on the CPU so every device gets the same bits."""
    numel = 1
    for size in shape:
        numel *= size
    noise = CounterGenerator(key).normal(torch.zeros(1), torch.zeros(1), numel)  # (1, numel)
    return noise.view(*shape).to(device)
