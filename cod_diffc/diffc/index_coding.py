r"""Entropy coding of DiffC step codes with the truncated Zipf model, through CompressAI's rANS coder.

A step's [`~diffc.channel.StepCode`] is coded as, in one rANS stream for all steps:

1. `kl_code`, uniformly over `[0, max_kl_code]` for the first step (~7.6 bits), then with
   `P(c | previous) ∝ 2**-|c - previous|`: the KL changes slowly along a DiffC schedule, so a step's code usually
   costs 1.6 (same code as the previous step) to 2.6 bits (one grid step away).
2. for every chunk of the layout `simulator.layout(kl_code)`, the bit length `L = index.bit_length()` of its
   candidate index `i < K = 2**k`, with the distribution the truncated Zipf model
   `P(i) ∝ (i + 1)**-lambda`, `lambda = 1 + 1 / (KL_chunk + log2(e) / e + 1)` (Li & El Gamal 2018) induces on
   `L in [0, k]`;
3. the `L - 1` bits of `i` below its leading one, uniformly, in pieces of at most 8 bits.

CompressAI's CDFs have 16-bit precision, so an alphabet of `2**16` candidates cannot be one symbol; given its bit
length, a Zipf index is close to uniform (within a factor `2**lambda` over the bucket), so step 3 costs at most
~0.03 bits per chunk more than the exact conditional model. [`ideal_code_length_bits`] is the exact Zipf code
length, the rate model; the coded stream is longer by that gap, the 16-bit quantisation of the CDFs and the final
8-byte rANS state (the encoder sizes cuts by their real bytes).

`compressai` is imported inside the functions: importing it pulls torchvision.
"""

import functools
import importlib
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from cod_diffc.errors import StreamError


if TYPE_CHECKING:
    from .channel import ChannelSimulator, ChunkLayout, StepCode

_CDF_PRECISION = 16
_MAX_UNIFORM_PIECE_BITS = 8
# No symbol of these models is likelier than 0.7588 (the Zipf P(i = 0) at lambda <= 1 + 1 / 1.53 and K >= 2), so
# every decoded symbol accounts for at least -log2(0.76) > 0.39 bits of the stream; a stream of B bytes cannot hold
# more than (8 B + 64) / 0.39 symbols. Decoding garbage stops there instead of following a corrupt layout.
_MIN_SYMBOL_BITS = 0.39
_LOG2_E_OVER_E = math.log2(math.e) / math.e


def zipf_exponent(chunk_kl_bits: float) -> float:
    r"""The Zipf exponent `lambda = 1 + 1 / (KL + log2(e) / e + 1)` for a chunk of nominal KL `chunk_kl_bits`."""
    return 1.0 + 1.0 / (chunk_kl_bits + _LOG2_E_OVER_E + 1.0)


@functools.lru_cache(maxsize=1024)
def _zipf_table(candidate_bits: int, exponent: float) -> tuple[float, tuple[float, ...]]:
    """`(log2 Z, P(L) for L in 0..candidate_bits)` of the Zipf model truncated to `2**candidate_bits` indices."""
    weights = np.arange(1, 2**candidate_bits + 1, dtype=np.float64) ** -exponent  # (K,): weight of index i at i
    normaliser = weights.sum()
    length_starts = [0] + [2 ** (length - 1) for length in range(1, candidate_bits + 1)]
    length_masses = np.add.reduceat(weights, length_starts) / normaliser  # (k + 1,)
    return math.log2(normaliser), tuple(length_masses.tolist())


@functools.lru_cache(maxsize=4096)
def _kl_code_pmf(previous: int | None, max_kl_code: int) -> tuple[float, ...]:
    """`P(c | previous) ∝ 2**-|c - previous|` for `c` in `[0, max_kl_code]`; uniform when `previous` is None."""
    if previous is None:
        return (1.0 / (max_kl_code + 1),) * (max_kl_code + 1)
    weights = 2.0 ** -np.abs(np.arange(max_kl_code + 1) - previous)
    return tuple((weights / weights.sum()).tolist())


def ideal_index_bits(layout: "ChunkLayout", indices: Sequence[int]) -> float:
    r"""Ideal Zipf code length (bits) of a step's chunk indices, `sum(lambda log2(i + 1) + log2 Z)`.

    Args:
        layout (`ChunkLayout`): the step's layout.
        indices (`Sequence[int]`): one index per chunk.
    """
    if layout.num_chunks == 0:
        return 0.0
    exponent = layout.zipf_exponent
    bits = exponent * float(np.log2(np.asarray(indices, dtype=np.float64) + 1.0).sum())
    num_narrow = layout.num_chunks - layout.num_wide_chunks
    if num_narrow:
        bits += num_narrow * _zipf_table(layout.base_candidate_bits, exponent)[0]
    if layout.num_wide_chunks:
        bits += layout.num_wide_chunks * _zipf_table(layout.base_candidate_bits + 1, exponent)[0]
    return bits


def ideal_code_length_bits(codes: Sequence["StepCode"], simulator: "ChannelSimulator") -> float:
    r"""Ideal code length (bits) of `codes` under the models [`encode_step_codes`] codes them with.

    Args:
        codes (`Sequence[StepCode]`): the steps, in stream order.
        simulator (`ChannelSimulator`): gives each `kl_code`'s chunk layout.

    Returns:
        `float`: `sum(-log2 P(kl_code | previous)) + sum(-log2 P_zipf(index))`.
    """
    bits = 0.0
    previous = None
    for code in codes:
        layout = simulator.check_code(code)
        bits -= math.log2(_kl_code_pmf(previous, simulator.max_kl_code)[code.kl_code])
        bits += ideal_index_bits(layout, code.indices)
        previous = code.kl_code
    return bits


_MIN_RANS_SYMBOLS = 4


def _compressai_module(name: str):
    """Imports a CompressAI module on first use (it pulls torchvision), without its torch.jit deprecation noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        return importlib.import_module(name)


class _CdfTables:
    """The quantised CDFs of one coding call, in CompressAI's `(cdfs, cdf_sizes, offsets)` form.

    Every CDF carries CompressAI's escape symbol (one count, never used by the encoder).
    """

    def __init__(self):
        self.cdfs: list[list[int]] = []
        self.cdf_sizes: list[int] = []
        self.offsets: list[int] = []
        self._slots: dict[tuple, int] = {}

    def slot(self, model: tuple) -> int:
        """Index of the CDF for `model` = `("kl", previous, max_code)`, `("length", k, exponent)`, `("uniform", b)`."""
        if model not in self._slots:
            self._slots[model] = len(self.cdfs)
            cdf = list(_quantized_cdf(model))
            self.cdfs.append(cdf)
            self.cdf_sizes.append(len(cdf))
            self.offsets.append(0)
        return self._slots[model]


@functools.lru_cache(maxsize=4096)
def _quantized_cdf(model: tuple) -> tuple[int, ...]:
    pmf_to_quantized_cdf = _compressai_module("compressai._CXX").pmf_to_quantized_cdf

    kind = model[0]
    if kind == "kl":
        pmf = list(_kl_code_pmf(model[1], model[2]))
    elif kind == "length":
        pmf = list(_zipf_table(model[1], model[2])[1])
    else:
        pmf = [2.0 ** -model[1]] * 2 ** model[1]
    return tuple(pmf_to_quantized_cdf(pmf + [0.0], _CDF_PRECISION))


def _remainder_piece_bits(length: int) -> list[int]:
    """Sizes of the uniform pieces (least significant first) of the `length - 1` bits below an index's leading one."""
    remaining = max(length - 1, 0)
    pieces = []
    while remaining > 0:
        pieces.append(min(remaining, _MAX_UNIFORM_PIECE_BITS))
        remaining -= pieces[-1]
    return pieces


def _chunk_candidate_bits(layout: "ChunkLayout") -> list[int]:
    return [layout.base_candidate_bits + 1] * layout.num_wide_chunks + [layout.base_candidate_bits] * (
        layout.num_chunks - layout.num_wide_chunks
    )


@functools.lru_cache(maxsize=4096)
def _symbol_bits(model: tuple) -> tuple[float, ...]:
    """What rANS spends on each symbol of `model`: `-log2` of its quantised probability."""
    cdf = _quantized_cdf(model)
    return tuple(_CDF_PRECISION - math.log2(high - low) for low, high in zip(cdf[:-1], cdf[1:]))


class StepCodeWriter:
    r"""Codes a growing sequence of step codes into one rANS byte string, any prefix of it on demand.

    Each step's symbols are worked out once, when it is appended, so coding a prefix costs only CompressAI's rANS
    pass over it; and [`max_bytes`] bounds a prefix's coded size without coding it, from what rANS spends on each
    symbol (`-log2` of its quantised probability) plus the final 8-byte state. An encoder that needs exact sizes
    only near a target rate codes only there.

    Args:
        simulator (`ChannelSimulator`): gives each `kl_code`'s chunk layout (the decoder needs the same one).
    """

    def __init__(self, simulator: "ChannelSimulator"):
        self.simulator = simulator
        self._tables = _CdfTables()
        self._symbols: list[int] = []
        self._slots: list[int] = []
        self._step_ends = [0]  # symbols of steps 0..n-1 end at _step_ends[n]
        self._coded_bits = [0.0]  # rANS cost of the symbols of steps 0..n-1
        self._previous: int | None = None

    @property
    def num_steps(self) -> int:
        return len(self._step_ends) - 1

    def append(self, code: "StepCode") -> None:
        """Adds the next step's code (checked against its layout)."""
        layout = self.simulator.check_code(code)
        step_bits = self._add(code.kl_code, ("kl", self._previous, self.simulator.max_kl_code))
        self._previous = code.kl_code
        exponent = layout.zipf_exponent
        lengths = [index.bit_length() for index in code.indices]
        for length, candidate_bits in zip(lengths, _chunk_candidate_bits(layout)):
            step_bits += self._add(length, ("length", candidate_bits, exponent))
        for index, length in zip(code.indices, lengths):
            remainder = index - (1 << (length - 1)) if length else 0
            for piece_bits in _remainder_piece_bits(length):
                step_bits += self._add(remainder & ((1 << piece_bits) - 1), ("uniform", piece_bits))
                remainder >>= piece_bits
        self._step_ends.append(len(self._symbols))
        self._coded_bits.append(self._coded_bits[-1] + step_bits)

    def _add(self, symbol: int, model: tuple) -> float:
        """Appends `symbol` of `model` and returns what rANS spends on it (bits)."""
        self._symbols.append(symbol)
        self._slots.append(self._tables.slot(model))
        return _symbol_bits(model)[symbol]

    def max_bytes(self, num_steps: int) -> int:
        """An upper bound of `len(to_bytes(num_steps))`, without coding: what rANS spends on the symbols (bits, rounded
        up to bytes), its final 8-byte state and 4 bytes of slack for the rANS arithmetic."""
        return math.ceil(self._coded_bits[num_steps] / 8) + 12 if num_steps else 0

    def to_bytes(self, num_steps: int | None = None) -> bytes:
        """The rANS stream of the first `num_steps` steps (all by default; empty for none)."""
        BufferedRansEncoder = _compressai_module("compressai.ans").BufferedRansEncoder

        num_steps = self.num_steps if num_steps is None else num_steps
        if not 0 <= num_steps <= self.num_steps:
            raise ValueError(f"num_steps {num_steps} outside [0, {self.num_steps}]")
        if num_steps == 0:
            return b""
        end = self._step_ends[num_steps]
        symbols, slots = self._symbols[:end], self._slots[:end]
        # CompressAI's encoder sizes its output buffer by the number of symbols (one 32-bit word each), but flushing
        # writes the 64-bit state on top: with fewer than 4 symbols of up to 16 bits each it overruns the buffer and
        # corrupts the heap. Free trailing symbols (probability ~1, never decoded) keep the count safe.
        padding = max(0, _MIN_RANS_SYMBOLS - len(symbols))
        symbols += [0] * padding
        slots += [self._tables.slot(("uniform", 0))] * padding
        encoder = BufferedRansEncoder()
        tables = self._tables
        encoder.encode_with_indexes(symbols, slots, tables.cdfs, tables.cdf_sizes, tables.offsets)
        return encoder.flush()


def encode_step_codes(codes: Sequence["StepCode"], simulator: "ChannelSimulator") -> bytes:
    r"""Codes a sequence of step codes into one rANS byte string ([`StepCodeWriter`] in one go).

    Args:
        codes (`Sequence[StepCode]`): the steps, in stream order.
        simulator (`ChannelSimulator`): gives each `kl_code`'s chunk layout (the decoder needs the same one).

    Returns:
        `bytes`: the rANS stream (empty for no steps).
    """
    writer = StepCodeWriter(simulator)
    for code in codes:
        writer.append(code)
    return writer.to_bytes()


def decode_step_codes(data: bytes, num_steps: int, simulator: "ChannelSimulator") -> list["StepCode"]:
    r"""Decodes `num_steps` step codes from a stream written by [`encode_step_codes`].

    Each step's layout comes from its decoded `kl_code`, so no other side information is needed. Corrupt data
    raises [`StreamError`] or yields valid codes (every `kl_code` and index in range); the work and memory are
    bounded by `len(data)` (see `_MIN_SYMBOL_BITS`), never by a decoded value.

    Args:
        data (`bytes`): the rANS stream.
        num_steps (`int`): how many steps to decode (a prefix of the encoded steps is fine).
        simulator (`ChannelSimulator`): must equal the encoder's.

    Returns:
        `list[StepCode]`: the decoded steps.
    """
    RansDecoder = _compressai_module("compressai.ans").RansDecoder

    from .channel import StepCode

    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}")
    if num_steps == 0:
        return []
    max_symbols = int((8 * len(data) + 64) / _MIN_SYMBOL_BITS)
    if num_steps > max_symbols:
        raise StreamError(f"a {len(data)}-byte index stream cannot hold {num_steps} steps")
    # CompressAI's decoder does not bound-check its reads: zero padding keeps every read of a garbage stream inside
    # the buffer (at most one 32-bit word per symbol plus the escape's bypass bits, which the data bounds).
    decoder = RansDecoder()
    decoder.set_stream(bytes(data) + bytes(16 * len(data) + 5 * max_symbols + 64))
    num_decoded = 0

    def decode(models: list[tuple]) -> list[int]:
        nonlocal num_decoded
        num_decoded += len(models)
        if num_decoded > max_symbols:
            raise StreamError(f"index stream of {len(data)} bytes claims more symbols than it can hold")
        tables = _CdfTables()
        slots = [tables.slot(model) for model in models]
        values = decoder.decode_stream(slots, tables.cdfs, tables.cdf_sizes, tables.offsets)
        for value, model in zip(values, models):
            # An in-range value is below the escape symbol; the escape itself only appears in corrupt data.
            if not 0 <= value < len(_quantized_cdf(model)) - 2:
                raise StreamError(f"corrupt index stream: symbol {value} out of range for model {model[0]!r}")
        return values

    codes = []
    previous = None
    for _ in range(num_steps):
        (kl_code,) = decode([("kl", previous, simulator.max_kl_code)])
        previous = kl_code
        layout = simulator.layout(kl_code)
        if num_decoded + layout.num_chunks > max_symbols:
            raise StreamError(f"corrupt index stream: kl_code {kl_code} needs {layout.num_chunks} chunks")
        exponent = layout.zipf_exponent
        lengths = decode([("length", bits, exponent) for bits in _chunk_candidate_bits(layout)])
        piece_bits = [_remainder_piece_bits(length) for length in lengths]
        pieces = decode([("uniform", bits) for chunk_pieces in piece_bits for bits in chunk_pieces])
        codes.append(StepCode(kl_code=kl_code, indices=_join_pieces(lengths, piece_bits, pieces)))
    return codes


def _join_pieces(lengths: list[int], piece_bits: list[list[int]], pieces: list[int]) -> tuple[int, ...]:
    """Each chunk's index from its length symbol and its remainder's pieces (least significant first)."""
    pieces_iter = iter(pieces)
    indices = []
    for length, chunk_pieces in zip(lengths, piece_bits):
        remainder, shift = 0, 0
        for bits in chunk_pieces:
            remainder |= next(pieces_iter) << shift
            shift += bits
        indices.append((1 << (length - 1)) + remainder if length else 0)
    return tuple(indices)
