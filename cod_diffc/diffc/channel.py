r"""Gaussian channel simulation for DiffC: send a sample of q = N(mu, I) to a decoder that knows only p = N(0, I).

One DiffC step normalises its reverse-step Gaussians by their common std, leaving q = N(mu, I_d) against the prior
p = N(0, I_d), `KL(q || p) = |mu|^2 / (2 ln 2)` bits. A [`ChannelSimulator`] turns `(mu, key)` into a [`StepCode`]
plus the sample z it stands for; the decoder regenerates z from the code and the key alone.

[`ChunkedPFRSimulator`] is the plain coder of DiffC (Theis et al. 2022; Vonderfecht & Liu, ICLR 2025):

    mu (d,) --KL--> kl_code --layout--> n chunks, chunk c: K_c = 2**k_c candidates
       |                                       |
       +--> key-seeded permutation of the d coordinates into n chunks of d // n or d // n + 1
       |
       +--> per chunk: candidates z_0..z_{K-1} ~ N(0, I) (shared, counter-based: (key, chunk, k)),
                       arrival times T_1 < T_2 < ... (cumulative Exp(1), encoder-private),
                       index = argmin_k log T_k - <z_k, mu_c>      (Poisson functional representation)
       v
    StepCode(kl_code, indices)  --decoder-->  z[chunk c] = candidate indices[c] of chunk c

Every random number is a pure function of the step key (see [`~codecs.randomness.CounterGenerator`]), so encoding
is reproducible (same inputs, same code) and the decoder regenerates only the chosen candidates, on any device.

[`ChunkedChannelSimulator`] holds what every chunked coder shares (the `kl_code` grid, the layouts, the coordinate
permutation, the encode/decode frame); [`~diffc.channel_pooled.PooledPFRSimulator`] is the fast variant that
scores every chunk of a step against one shared Gaussian pool.
"""

import bisect
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from cod_diffc.codecs.randomness import CounterGenerator, derive_key
from cod_diffc.errors import StreamError

from .index_coding import ideal_code_length_bits, zipf_exponent


logger = logging.getLogger(__name__)

# kl_code grid resolution: KL values are stored as integers in units of 1/256 bit so layouts are integer arithmetic.
_KL_UNITS_PER_BIT = 256
# Finest kl_code grid a stream may ask for (it sizes the table of every code's KL).
_MAX_KL_CODES_PER_OCTAVE = 64


@dataclass(frozen=True)
class StepCode:
    """Everything one DiffC step transmits (opaque to the caller; serialised only by `index_coding`).

    Parameters:
        kl_code (`int`):
            Quantised KL of the step; the decoder derives the chunk layout from it ([`ChannelSimulator.layout`]).
        indices (`tuple[int, ...]`):
            The chosen candidate index of every chunk.
    """

    kl_code: int
    indices: tuple[int, ...]


@dataclass(frozen=True)
class ChunkLayout:
    """The chunks a `kl_code` stands for: chunk `c` has `2**candidate_bits(c)` candidates.

    The first `num_wide_chunks` chunks have `base_candidate_bits + 1` bits, the others `base_candidate_bits`.

    Parameters:
        kl_bits (`float`):
            The nominal KL (bits) of the step: at least the true KL unless the encoder had to clamp it.
        num_chunks (`int`):
            Number of chunks (0 when the step sends nothing and z is a draw from the prior).
        base_candidate_bits (`int`):
            `log2` of the candidate count of the narrow chunks.
        num_wide_chunks (`int`):
            Number of chunks with one more candidate bit.
    """

    kl_bits: float
    num_chunks: int
    base_candidate_bits: int
    num_wide_chunks: int

    @property
    def chunk_kl_bits(self) -> float:
        """Nominal KL per chunk, the figure the Zipf model of the chunk indices is set for."""
        return self.kl_bits / self.num_chunks if self.num_chunks else 0.0

    @property
    def zipf_exponent(self) -> float:
        return zipf_exponent(self.chunk_kl_bits)

    def candidate_bits(self, chunk: int) -> int:
        return self.base_candidate_bits + (chunk < self.num_wide_chunks)


class ChannelSimulator(ABC):
    """Sends z ~ q = N(mu, I) to a decoder that shares only `key` and the prior N(0, I).

    Subclasses define the chunk layout of a `kl_code`, the encode/decode pair and the settings a stream stores
    (`settings_bytes` / `from_settings_bytes`); the entropy coding of the codes (`index_coding`) and the ideal code
    length are shared. `method` is the coder's name in the channel registry ([`~diffc.channel_registry`]), in
    streams of third-party coders and in benchmark results.
    """

    method: str
    max_kl_code: int

    @abstractmethod
    def settings_bytes(self) -> bytes:
        """Every setting the decoder depends on, as the stream stores them.

        Raises:
            `ValueError`: For a setting the format cannot store.
        """

    @classmethod
    @abstractmethod
    def from_settings_bytes(cls, settings: bytes) -> "ChannelSimulator":
        """The simulator `settings` describe ([`settings_bytes`]'s inverse).

        Raises:
            `ValueError`: For settings it cannot rebuild; checked before building anything sized by them.
        """

    @abstractmethod
    def layout(self, kl_code: int) -> ChunkLayout:
        """The chunk layout that `kl_code` (in `[0, max_kl_code]`) stands for."""

    @abstractmethod
    def encode(self, mu: torch.Tensor, key: bytes) -> tuple[StepCode, torch.Tensor]:
        r"""Chooses the code of a sample of N(mu, I).

        Args:
            mu (`torch.Tensor`): `(dim,)` mean, any float dtype and device.
            key (`bytes`): the step's key, shared with the decoder.

        Returns:
            `tuple[StepCode, torch.Tensor]`: the code and the sample z it stands for, `(dim,)` float32 on
            `mu.device`.
        """

    @abstractmethod
    def decode(self, code: StepCode, dim: int, key: bytes, device: torch.device | str = "cpu") -> torch.Tensor:
        r"""Regenerates the sample of `code`: `(dim,)` float32, identical to `encode`'s z on the same device."""

    def code_length_bits(self, codes: Sequence[StepCode]) -> float:
        """Ideal code length (bits) of `codes` in stream order: the rate model the coded stream approaches (the
        encoder itself sizes cuts by their real bytes)."""
        return ideal_code_length_bits(codes, self)

    def check_code(self, code: StepCode) -> ChunkLayout:
        """Returns the layout of `code`, raising `ValueError` if the code does not fit it."""
        if not 0 <= code.kl_code <= self.max_kl_code:
            raise ValueError(f"kl_code {code.kl_code} out of range [0, {self.max_kl_code}]")
        layout = self.layout(code.kl_code)
        if len(code.indices) != layout.num_chunks:
            raise ValueError(f"kl_code {code.kl_code} has {layout.num_chunks} chunks, got {len(code.indices)} indices")
        for chunk, index in enumerate(code.indices):
            if not 0 <= index < 2 ** layout.candidate_bits(chunk):
                raise ValueError(f"index {index} of chunk {chunk} out of range [0, 2**{layout.candidate_bits(chunk)})")
        return layout


@dataclass(frozen=True)
class _ChunkGroup:
    """Consecutive chunks with the same coordinate count and candidate bits."""

    first_chunk: int
    num_chunks: int
    chunk_dim: int
    candidate_bits: int
    first_coordinate: int  # position in the coordinate permutation


class ChunkedChannelSimulator(ChannelSimulator):
    r"""Base of the chunked channel simulators: the `kl_code` grid, the chunk layouts and the encode/decode frame.

    **Layout.** The encoder rounds the step's KL up onto a geometric grid, `kl_code = c` standing for
    `KL_c = 2**(c / kl_codes_per_octave) - 1` bits (stored in 1/256-bit units, so layouts use integer arithmetic
    only), `kl_code = 0` meaning KL = 0. A code gives `n = ceil(KL_c / (max_chunk_bits - padding_bits))` chunks
    and `B = ceil(KL_c) + n * padding_bits` candidate bits, spread as evenly as possible (`k_c` = floor or ceil of
    `B / n`, never above `max_chunk_bits`); so each chunk carries at most `max_chunk_bits - padding_bits` bits of
    nominal KL with `padding_bits` of slack against truncation. The `d` coordinates go to the chunks through a
    permutation drawn from the key, `d // n` or `d // n + 1` each. The encoder lowers `kl_code` until `n <= d`
    (every chunk needs a coordinate); a step clamped this way (KL above `d * (max_chunk_bits - padding_bits)`
    bits) is sent with the largest candidate sets and a logged warning: its sample is biased toward the prior.
    A step with KL = 0 sends no index; its sample is a draw from the prior.

    Subclasses choose how the candidates of a chunk are made: `_choose_indices` (the encoder's selection) and
    `_chosen_candidates` (the sample a code stands for, the decoder's path).

    Parameters:
        max_chunk_bits (`int`, *optional*, defaults to 16):
            log2 of the largest candidate set of a chunk (the reference coder's `max_chunk_size`).
        padding_bits (`int`, *optional*, defaults to 2):
            Candidate bits per chunk above its nominal KL (the reference's `chunk_padding`); more padding means less
            truncation bias and more encoding work.
        kl_codes_per_octave (`int`, *optional*, defaults to 8):
            Resolution of the `kl_code` grid (8: codes ~9 % apart).
        max_kl_bits (`float`, *optional*, defaults to `2**24`):
            Largest KL per step a code can stand for; it bounds the layouts a decoder will accept.
    """

    def __init__(
        self,
        max_chunk_bits: int = 16,
        padding_bits: int = 2,
        kl_codes_per_octave: int = 8,
        max_kl_bits: float = 2.0**24,
    ):
        if not 1 <= max_chunk_bits <= 24:
            raise ValueError(f"max_chunk_bits must be in [1, 24], got {max_chunk_bits}")
        if not 0 <= padding_bits < max_chunk_bits:
            raise ValueError(f"padding_bits must be in [0, max_chunk_bits), got {padding_bits}")
        if kl_codes_per_octave < 1:
            raise ValueError(f"kl_codes_per_octave must be >= 1, got {kl_codes_per_octave}")
        if not 1.0 <= max_kl_bits <= 2.0**32:
            raise ValueError(f"max_kl_bits must be in [1, 2**32], got {max_kl_bits}")
        self.max_chunk_bits = max_chunk_bits
        self.padding_bits = padding_bits
        self.kl_codes_per_octave = kl_codes_per_octave
        self.max_kl_bits = max_kl_bits
        self.max_kl_code = math.ceil(kl_codes_per_octave * math.log2(1.0 + max_kl_bits))
        # KL of every code in 1/256-bit units, rounded up: strictly increasing, code 0 -> 0.
        self._kl_units = [
            math.ceil(_KL_UNITS_PER_BIT * (2.0 ** (code / kl_codes_per_octave) - 1.0))
            for code in range(self.max_kl_code + 1)
        ]
        self._chunk_kl_units = (max_chunk_bits - padding_bits) * _KL_UNITS_PER_BIT
        self._layouts: dict[int, ChunkLayout] = {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_chunk_bits={self.max_chunk_bits}, padding_bits={self.padding_bits}, "
            f"kl_codes_per_octave={self.kl_codes_per_octave}, max_kl_bits={self.max_kl_bits})"
        )

    def settings_bytes(self) -> bytes:
        """4 bytes: `max_chunk_bits`, `padding_bits`, `kl_codes_per_octave` (at most 64) and `log2(max_kl_bits)` (a
        power of two)."""
        max_kl_exponent = math.log2(self.max_kl_bits)
        if not (max_kl_exponent.is_integer() and self.kl_codes_per_octave <= _MAX_KL_CODES_PER_OCTAVE):
            raise ValueError(
                f"the DiffC format stores max_kl_bits as a power of two and kl_codes_per_octave <= "
                f"{_MAX_KL_CODES_PER_OCTAVE}, got {self!r}"
            )
        return bytes([self.max_chunk_bits, self.padding_bits, self.kl_codes_per_octave, int(max_kl_exponent)])

    @classmethod
    def from_settings_bytes(cls, settings: bytes) -> "ChunkedChannelSimulator":
        return cls(*cls._grid_settings(settings, expected_size=4))

    @staticmethod
    def _grid_settings(settings: bytes, expected_size: int) -> tuple[int, int, int, float]:
        """The four settings of [`settings_bytes`] at the start of `settings` (of `expected_size` bytes in all),
        bounded before they size any table."""
        if len(settings) != expected_size:
            raise ValueError(f"expected {expected_size} bytes of settings, got {len(settings)}")
        max_chunk_bits, padding_bits, kl_codes_per_octave, max_kl_exponent = settings[:4]
        if not (kl_codes_per_octave <= _MAX_KL_CODES_PER_OCTAVE and max_kl_exponent <= 32):
            raise ValueError(
                f"kl_codes_per_octave {kl_codes_per_octave} (at most {_MAX_KL_CODES_PER_OCTAVE}) or "
                f"log2(max_kl_bits) {max_kl_exponent} (at most 32) out of range"
            )
        return max_chunk_bits, padding_bits, kl_codes_per_octave, 2.0**max_kl_exponent

    def layout(self, kl_code: int) -> ChunkLayout:
        if not 0 <= kl_code <= self.max_kl_code:
            raise ValueError(f"kl_code {kl_code} out of range [0, {self.max_kl_code}]")
        if kl_code not in self._layouts:
            kl_units = self._kl_units[kl_code]
            num_chunks = -(-kl_units // self._chunk_kl_units)
            if num_chunks == 0:
                self._layouts[kl_code] = ChunkLayout(0.0, 0, 0, 0)
            else:
                total_bits = -(-kl_units // _KL_UNITS_PER_BIT) + num_chunks * self.padding_bits
                self._layouts[kl_code] = ChunkLayout(
                    kl_bits=kl_units / _KL_UNITS_PER_BIT,
                    num_chunks=num_chunks,
                    base_candidate_bits=total_bits // num_chunks,
                    num_wide_chunks=total_bits % num_chunks,
                )
        return self._layouts[kl_code]

    def kl_code_for(self, kl_bits: float, dim: int) -> int:
        """The smallest `kl_code` whose nominal KL is at least `kl_bits`, lowered until its layout fits `dim`."""
        code = bisect.bisect_left(self._kl_units, kl_bits * _KL_UNITS_PER_BIT)
        largest_fitting = bisect.bisect_right(self._kl_units, dim * self._chunk_kl_units) - 1
        if code > min(largest_fitting, self.max_kl_code):
            logger.warning(
                f"KL of {kl_bits:.1f} bits exceeds what {dim} coordinates (or max_kl_bits) allow with "
                f"max_chunk_bits={self.max_chunk_bits}: the step is sent truncated and biased toward the prior"
            )
        return min(code, largest_fitting, self.max_kl_code)

    def encode(self, mu: torch.Tensor, key: bytes) -> tuple[StepCode, torch.Tensor]:
        if not isinstance(mu, torch.Tensor) or mu.ndim != 1 or mu.numel() == 0 or not mu.is_floating_point():
            raise ValueError(f"mu must be a non-empty 1-D float tensor, got {getattr(mu, 'shape', type(mu))}")
        mu64 = mu.detach().to(torch.float64)
        dim = mu.numel()
        kl_bits = self._kl_bits(mu64)
        kl_code = self.kl_code_for(kl_bits, dim)
        layout = self.layout(kl_code)
        permutation = self._permutation(key, dim, mu.device)
        if layout.num_chunks == 0:
            code = StepCode(kl_code=kl_code, indices=())
        else:
            indices = self._choose_indices(mu64, layout, key, permutation)
            code = StepCode(kl_code=kl_code, indices=tuple(indices.tolist()))
        return code, self._sample(code, layout, dim, key, mu.device, permutation)

    def _kl_bits(self, mu: torch.Tensor) -> float:
        r"""`|mu|**2 / (2 ln 2)` for `(dim,)` float64 `mu`, as the correctly rounded sum would give it.

        The device's float64 sum (one value read back) is within `dim * 2**-52` relative of the exact sum of the
        non-negative squares; only when a `kl_code` boundary lies that close does the exact sum (`math.fsum` on
        the host, reading all of `mu`) decide, so the same `mu` gets the same `kl_code` on every device and thread
        count.

        Raises:
            `ValueError`: If `mu` is not finite (or its squares overflow float64).
        """
        squares = mu.square()
        kl_bits = squares.sum().item() / (2.0 * math.log(2.0))
        if not math.isfinite(kl_bits):
            raise ValueError("mu must be finite")
        margin = kl_bits * mu.numel() * 2.0**-50  # 0 when every square is 0: then the sum is exact
        # The code is the number of grid values below kl_bits * 256: only a grid value within the margin can move it.
        nearest_above = bisect.bisect_left(self._kl_units, (kl_bits - margin) * _KL_UNITS_PER_BIT)
        if (
            kl_bits > 0
            and nearest_above < len(self._kl_units)
            and self._kl_units[nearest_above] <= (kl_bits + margin) * _KL_UNITS_PER_BIT
        ):
            kl_bits = math.fsum(squares.cpu().tolist()) / (2.0 * math.log(2.0))
        return kl_bits

    def decode(self, code: StepCode, dim: int, key: bytes, device: torch.device | str = "cpu") -> torch.Tensor:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        try:
            layout = self.check_code(code)
        except ValueError as error:
            raise StreamError(f"invalid step code: {error}") from error
        if layout.num_chunks > dim:
            raise StreamError(f"kl_code {code.kl_code} has {layout.num_chunks} chunks, more than {dim} coordinates")
        device = torch.device(device)
        return self._sample(code, layout, dim, key, device, self._permutation(key, dim, device))

    @abstractmethod
    def _choose_indices(
        self, mu: torch.Tensor, layout: ChunkLayout, key: bytes, permutation: torch.Tensor
    ) -> torch.Tensor:
        r"""The encoder's choice: `(num_chunks,)` int64 candidate indices for `mu` (`(dim,)` float64), `layout`
        with at least one chunk, and the coordinate `permutation` (`(dim,)`, chunk `c` owns a contiguous run)."""

    @abstractmethod
    def _chosen_candidates(
        self, code: StepCode, layout: ChunkLayout, dim: int, key: bytes, permutation: torch.Tensor
    ) -> torch.Tensor:
        r"""The sample `code` stands for, `(dim,)` float32 on `permutation.device` (`layout` has chunks)."""

    def _sample(
        self,
        code: StepCode,
        layout: ChunkLayout,
        dim: int,
        key: bytes,
        device: torch.device,
        permutation: torch.Tensor,
    ) -> torch.Tensor:
        """The sample of `code`, `(dim,)` float32: the chosen candidates, or a prior draw when nothing is sent."""
        if layout.num_chunks == 0:
            prior = CounterGenerator(derive_key(key, "prior-sample"), device)
            zeros = torch.zeros(1, dtype=torch.int64, device=device)
            return prior.normal(zeros, zeros, dim)[0]
        return self._chosen_candidates(code, layout, dim, key, permutation)

    def _permutation(self, key: bytes, dim: int, device: torch.device) -> torch.Tensor:
        return CounterGenerator(derive_key(key, "chunk-permutation"), device).permutation(dim)

    @staticmethod
    def _chunk_groups(layout: ChunkLayout, dim: int) -> list[_ChunkGroup]:
        """Splits the chunks into runs of equal coordinate count and candidate bits (at most 3 runs)."""
        num_chunks = layout.num_chunks
        if num_chunks == 0:
            return []
        base_dim, num_long_chunks = divmod(dim, num_chunks)
        bounds = sorted({0, num_long_chunks, layout.num_wide_chunks, num_chunks})
        return [
            _ChunkGroup(
                first_chunk=start,
                num_chunks=stop - start,
                chunk_dim=base_dim + (start < num_long_chunks),
                candidate_bits=layout.candidate_bits(start),
                first_coordinate=start * base_dim + min(start, num_long_chunks),
            )
            for start, stop in zip(bounds[:-1], bounds[1:])
        ]

    @staticmethod
    def _batches(
        group: _ChunkGroup, permutation: torch.Tensor, chunks_per_batch: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields `(chunk_ids (G,), coordinates (G, d_c))` for batches of at most `chunks_per_batch` chunks."""
        for offset in range(0, group.num_chunks, chunks_per_batch):
            count = min(chunks_per_batch, group.num_chunks - offset)
            chunk_ids = torch.arange(count, device=permutation.device) + group.first_chunk + offset
            start = group.first_coordinate + offset * group.chunk_dim
            yield chunk_ids, permutation[start : start + count * group.chunk_dim].view(count, group.chunk_dim)


class ChunkedPFRSimulator(ChunkedChannelSimulator):
    r"""Chunked Poisson functional representation (ordered random coding), DiffC's plain channel simulator.

    Every chunk draws its own `K_c * d_c` fresh candidate coordinates from the key (candidate `k` of chunk `c` is
    `CounterGenerator(key, "candidates")` row `(c, k)`), so the encoding work is `~2**max_chunk_bits * dim`
    normals per step. Chunk layout and `kl_code` grid: [`ChunkedChannelSimulator`].

    **Rate bound.** Let `D_c` be the true KL of chunk c (`sum D_c = KL`) and `a = KL_c / n + log2(e) / e + 1`.
    The chosen index is never larger than the index the untruncated PFR would choose from the same randomness, and
    the truncated Zipf normaliser is below `zeta(lambda) <= 1 + a`, so with Li & El Gamal's
    `E[log2(i + 1)] <= D_c + log2(e) / e + 1` the ideal code length of the indices of a step satisfies, when
    `KL <= KL_c` (always, unless clamped),

        E[index bits] <= sum_c (1 + 1 / a) (D_c + 1.53) + n log2(1 + a) <= KL + n (log2(KL_c / n + 1) + 4),

    plus the `kl_code` symbol (`-log2 P(kl_code | previous)`, ~1.6 bits for an unchanged code). Whatever the
    randomness, an index costs at most `lambda * max_chunk_bits + log2(1 + a)` bits.

    Parameters:
        max_chunk_bits (`int`, *optional*, defaults to 16):
            log2 of the largest candidate set of a chunk (the reference coder's `max_chunk_size`).
        padding_bits (`int`, *optional*, defaults to 2):
            Candidate bits per chunk above its nominal KL (the reference's `chunk_padding`); more padding means less
            truncation bias and proportionally more encoding work.
        kl_codes_per_octave (`int`, *optional*, defaults to 8):
            Resolution of the `kl_code` grid (8: codes ~9 % apart).
        max_kl_bits (`float`, *optional*, defaults to `2**24`):
            Largest KL per step a code can stand for; it bounds the layouts a decoder will accept.
        tile_size (`int`, *optional*):
            Candidate coordinates generated per batch while encoding; only speed depends on it (default `2**16`
            on CPU, where cache-sized batches are fastest, `2**24` elsewhere).
    """

    method = "chunked_pfr"

    def __init__(
        self,
        max_chunk_bits: int = 16,
        padding_bits: int = 2,
        kl_codes_per_octave: int = 8,
        max_kl_bits: float = 2.0**24,
        tile_size: int | None = None,
    ):
        super().__init__(max_chunk_bits, padding_bits, kl_codes_per_octave, max_kl_bits)
        if tile_size is not None and tile_size < 1:
            raise ValueError(f"tile_size must be >= 1, got {tile_size}")
        self.tile_size = tile_size

    def _choose_indices(
        self, mu: torch.Tensor, layout: ChunkLayout, key: bytes, permutation: torch.Tensor
    ) -> torch.Tensor:
        device = mu.device
        candidates = CounterGenerator(derive_key(key, "candidates"), device)
        arrivals = CounterGenerator(derive_key(key, "arrival-times"), device)
        tile_size = self._tile_size(device)
        indices = torch.empty(layout.num_chunks, dtype=torch.int64, device=device)
        for group in self._chunk_groups(layout, mu.numel()):
            num_candidates = 2**group.candidate_bits
            chunks_per_batch = max(1, tile_size // (num_candidates * group.chunk_dim))
            candidates_per_block = min(num_candidates, max(2, tile_size // group.chunk_dim))
            for chunk_ids, coordinates in self._batches(group, permutation, chunks_per_batch):
                mu_batch = mu[coordinates]  # (G, d_c)
                # Ordered arrival times T_1 < T_2 < ...: cumulative sums of Exp(1), private to the encoder.
                uniforms = arrivals.uniform(chunk_ids, torch.zeros_like(chunk_ids), num_candidates)  # (G, K)
                log_arrivals = torch.log(torch.cumsum(-torch.log(uniforms), dim=1))
                scores = torch.empty_like(log_arrivals)  # (G, K): <z_k, mu_c>
                for start in range(0, num_candidates, candidates_per_block):
                    rows = torch.arange(start, min(start + candidates_per_block, num_candidates), device=device)
                    block = candidates.normal(
                        chunk_ids.repeat_interleave(rows.numel()), rows.repeat(chunk_ids.numel()), group.chunk_dim
                    ).view(chunk_ids.numel(), rows.numel(), group.chunk_dim)  # (G, B, d_c)
                    # An elementwise product summed over the last dim (>= 2 rows): reduced in a fixed order.
                    scores[:, start : start + rows.numel()] = (block.to(torch.float64) * mu_batch[:, None]).sum(-1)
                # PFR: argmin_k T_k / (q/p)(z_k), and log (q/p)(z) = <z, mu> - |mu|^2 / 2.
                indices[chunk_ids] = torch.argmin(log_arrivals - scores, dim=1)
        return indices

    def _chosen_candidates(
        self, code: StepCode, layout: ChunkLayout, dim: int, key: bytes, permutation: torch.Tensor
    ) -> torch.Tensor:
        device = permutation.device
        candidates = CounterGenerator(derive_key(key, "candidates"), device)
        indices = torch.tensor(code.indices, dtype=torch.int64, device=device)
        sample = torch.empty(dim, dtype=torch.float32, device=device)
        tile_size = self._tile_size(device)
        for group in self._chunk_groups(layout, dim):
            chunks_per_batch = max(1, tile_size // group.chunk_dim)
            for chunk_ids, coordinates in self._batches(group, permutation, chunks_per_batch):
                chosen = candidates.normal(chunk_ids, indices[chunk_ids], group.chunk_dim)  # (G, d_c)
                sample[coordinates.reshape(-1)] = chosen.reshape(-1)
        return sample

    def _tile_size(self, device: torch.device) -> int:
        if self.tile_size is not None:
            return self.tile_size
        return 2**16 if device.type == "cpu" else 2**24
