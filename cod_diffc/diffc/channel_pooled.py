r"""Pooled Poisson functional representation: DiffC's chunked coder with every chunk scored against one Gaussian pool.

The plain coder ([`~diffc.channel.ChunkedPFRSimulator`]) draws `~2**max_chunk_bits * dim` fresh normals per step,
so generating candidates costs seconds to minutes. [`PooledPFRSimulator`] draws its candidates from a fixed pool
`P` of `M = 2**max_chunk_bits` rows of i.i.d. N(0, 1) numbers, the same for every step of every stream (a pure
function of a constant key, generated once per process and cached; a decoder regenerates only the rows it uses):

    chunk c (d_c coordinates, in the step's key-drawn coordinate order, K = 2**k_c candidates)
      = segments s of at most `pool_width` coordinates (ceil(d_c / pool_width) near-equal pieces)
    candidate k of chunk c, on segment s:  z_k[s] = signs[s] * P[row_s(k), :len(s)],
      row_s(k) = K * (r_s // K) + (k + r_s) mod K       (a window of K rows, entered at a random place)
      signs: one random sign per coordinate, r_s: a distinct pool row per segment (a random permutation of the
      rows), both drawn from the step's key

Because distinct `k` take distinct rows of every segment, the `K <= M` candidates of a chunk are marginally
i.i.d. N(0, I_{d_c}) exactly, as PFR needs. A segment's scores `<z_k[s], mu[s]>` for all `k` are its window's
rows of the matrix product `P (M, w) @ V (w, S)` (V holds the signed mu of each segment), computed window by
window, so scoring a step costs `K * dim` multiply-adds at BLAS speed instead of `K * dim` generated normals.
Each chunk's score is the sum of its segments' rolled score rows.

What sharing the pool changes, and what the tests check on large samples:

- two segments share pool numbers only where they use the same row: within a chunk's candidate never (distinct
  `r_s`); between the chosen candidates of two chunks of a step with probability `1 / (M - 1)` per pair of segments
  (never for two chunks of equal K and index; birthday rate, `~S**2 / (2 M)` colliding pairs among a step's `S`
  segments); across steps likewise. A shared row gives two segments equal up to independent random signs, so the
  sent noise stays uncorrelated.
- candidates `k` and `k'` of a multi-segment chunk share a row when the windows of two of its segments overlap
  there: their scores are weakly correlated. The chosen indices and projections match the plain coder's in
  two-sample tests.

**Arrival times** are the plain coder's (cumulative Exp(1), encoder-private, counter-based), generated in blocks of
`_ARRIVAL_BLOCK` candidates per chunk; a chunk stops once no later candidate can win
(`log T_next - max(remaining scores) >= best`), which is exact and skips most of the arrivals.

Chunk layout and `kl_code` grid: [`~diffc.channel.ChunkedChannelSimulator`], so `kl_code`s, layouts and index
coding are the plain coder's. The method runs on any torch device; CPU and GPU codes agree except where two
candidates' PFR objectives tie within float32 rounding of the scores (the decoder is exact either way: it depends
only on the code).
"""

import numpy as np
import torch

from cod_diffc.codecs.devices import host_to_device
from cod_diffc.codecs.randomness import CounterGenerator, derive_key, gaussian_pool

from .channel import ChunkedChannelSimulator, ChunkLayout, StepCode


# Candidates per block of arrival times (and the granularity of the early stop).
_ARRIVAL_BLOCK = 2048
# Largest score matrix (segments x candidates) computed at once while encoding.
_MAX_SCORE_ELEMENTS = 2**23
POOL_KEY = derive_key(b"cod_diffc.diffc.channel_pooled", "gaussian-pool")
"""Key of the pooled coder's Gaussian pool (frozen: changing it changes every stream)."""


class _Segments:
    """The pool segments of a step: chunk `c`'s coordinates (a run of the permutation) split into near-equal pieces.

    Computed on the host (the encoder plans its matrix products from them without reading the device) and copied to
    the device once.

    Attributes:
        chunk, start, length, row_key (`torch.Tensor`):
            `(S,)` int64 on `device`: each segment's chunk (a chunk's segments are consecutive), first position in
            the coordinate permutation, coordinate count (at most `pool_width`) and pool row `r_s` (distinct
            within each run of `M` segments), which sets the segment's window and entry point ([`rows`]).
        host_row_key (`np.ndarray`): `(S,)` int64, `row_key` on the host.
        num_segments, width (`int`): `S` and the longest segment.
        first_segment (`list[int]`): chunk `c` owns segments `first_segment[c]` to `first_segment[c + 1] - 1`.
    """

    def __init__(
        self, layout: ChunkLayout, dim: int, pool_width: int, num_rows: int, key: bytes, device: torch.device
    ):
        chunk_ids = np.arange(layout.num_chunks, dtype=np.int64)
        base_dim, num_long_chunks = divmod(dim, layout.num_chunks)
        chunk_dims = base_dim + (chunk_ids < num_long_chunks)  # (n,)
        chunk_starts = chunk_ids * base_dim + np.minimum(chunk_ids, num_long_chunks)  # (n,)
        segments_per_chunk = -(-chunk_dims // pool_width)  # (n,)
        ends = np.cumsum(segments_per_chunk)
        self.first_segment = [0] + ends.tolist()
        chunk = np.repeat(chunk_ids, segments_per_chunk)  # (S,)
        local = np.arange(chunk.size) - (ends - segments_per_chunk)[chunk]  # (S,): position within its chunk
        segment_chunk_dims, segment_counts = chunk_dims[chunk], segments_per_chunk[chunk]  # (S,)
        base_length, num_long_segments = segment_chunk_dims // segment_counts, segment_chunk_dims % segment_counts
        length = base_length + (local < num_long_segments)
        start = chunk_starts[chunk] + local * base_length + np.minimum(local, num_long_segments)
        self.width = int(length.max())
        # Distinct rows: block b of M consecutive segments takes a random permutation of the pool rows.
        self.num_segments = chunk.size
        row_keys = CounterGenerator(derive_key(key, "pool-rows"))  # on the host: the same integers on every device
        self.host_row_key = torch.cat(
            [row_keys.permutation(num_rows, stream=block) for block in range(-(-self.num_segments // num_rows))]
        )[: self.num_segments].numpy()
        self.chunk, self.start, self.length, self.row_key = (
            host_to_device(values.astype(np.int64), device) for values in (chunk, start, length, self.host_row_key)
        )

    def rows(self, candidates: torch.Tensor, num_candidates: torch.Tensor | int) -> torch.Tensor:
        """`(S,)` pool row of candidate `candidates[s]` (of `num_candidates[s]`, a power of two) on each segment."""
        window, entry = self.row_key // num_candidates, self.row_key % num_candidates
        return window * num_candidates + (candidates + entry) % num_candidates

    def positions(self, segment_ids: torch.Tensor, dim: int) -> torch.Tensor:
        """`(len(segment_ids), width)` positions in the permutation, `dim` where a segment is shorter than `width`."""
        columns = torch.arange(self.width, device=segment_ids.device)
        positions = self.start[segment_ids, None] + columns  # (s, w)
        return torch.where(columns < self.length[segment_ids, None], positions, dim)


class PooledPFRSimulator(ChunkedChannelSimulator):
    r"""Chunked PFR whose candidates come from one shared Gaussian pool, scored with a matrix product.

    Same layouts, `kl_code` grid and index coding as [`~diffc.channel.ChunkedPFRSimulator`] (see the module
    docstring for the candidate construction and what it changes). Encoding costs `(K, w) @ (w, s)` products
    (`K * dim` multiply-adds for chunks of `K <= M = 2**max_chunk_bits` candidates), the arrival times of the
    chunks up to their early stop, and `dim` regenerated normals; decoding regenerates `dim` normals. The pool
    (`M * min(pool_width, chunk size)` float32, 256 MB for `M = 2**16` rows of 1024) is built once per process and
    device.

    Parameters:
        max_chunk_bits (`int`, *optional*, defaults to 16):
            log2 of the largest candidate set of a chunk, and of the pool's row count.
        padding_bits (`int`, *optional*, defaults to 2):
            Candidate bits per chunk above its nominal KL. More padding means less truncation bias; unlike the
            plain coder, the scoring work does not grow with it (only the arrival times do).
        kl_codes_per_octave (`int`, *optional*, defaults to 8):
            Resolution of the `kl_code` grid.
        max_kl_bits (`float`, *optional*, defaults to `2**24`):
            Largest KL per step a code can stand for.
        pool_width (`int`, *optional*, defaults to 1024):
            Most coordinates per pool segment, i.e. the pool's width. Wider segments mean fewer segments per step
            (fewer chance row collisions, `~(dim / pool_width)**2 / 2**(max_chunk_bits + 1)` pairs per step) and a
            bigger pool. Part of the format: the decoder must use the same value.
    """

    method = "pooled_pfr"

    def __init__(
        self,
        max_chunk_bits: int = 16,
        padding_bits: int = 2,
        kl_codes_per_octave: int = 8,
        max_kl_bits: float = 2.0**24,
        pool_width: int = 1024,
    ):
        super().__init__(max_chunk_bits, padding_bits, kl_codes_per_octave, max_kl_bits)
        if not 1 <= pool_width < 2**16:
            raise ValueError(f"pool_width must be in [1, 2**16), got {pool_width}")
        self.pool_width = pool_width
        self.pool_rows = 2**max_chunk_bits

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, pool_width={self.pool_width})"

    def settings_bytes(self) -> bytes:
        """6 bytes: the plain coder's 4 ([`~diffc.channel.ChunkedChannelSimulator.settings_bytes`]), then
        `pool_width` (big-endian)."""
        return super().settings_bytes() + self.pool_width.to_bytes(2, "big")

    @classmethod
    def from_settings_bytes(cls, settings: bytes) -> "PooledPFRSimulator":
        return cls(*cls._grid_settings(settings, expected_size=6), pool_width=int.from_bytes(settings[4:6], "big"))

    def _choose_indices(
        self, mu: torch.Tensor, layout: ChunkLayout, key: bytes, permutation: torch.Tensor
    ) -> torch.Tensor:
        device, dim = mu.device, mu.numel()
        segments = _Segments(layout, dim, self.pool_width, self.pool_rows, key, device)
        pool = gaussian_pool(POOL_KEY, self.pool_rows, segments.width, device)  # (M, w)
        # Signed mu in permutation order, with a trailing 0 that pads the segments shorter than w.
        signed_mu = torch.cat([self._signs(key, dim, device) * mu[permutation].float(), mu.new_zeros(1).float()])
        arrivals = CounterGenerator(derive_key(key, "arrival-times"), device)
        chunks_per_batch = self._chunks_per_batch(segments)
        indices = torch.empty(layout.num_chunks, dtype=torch.int64, device=device)
        first_chunk = 0
        while first_chunk < layout.num_chunks:
            # A batch of chunks with equal candidate bits (the wide chunks come first).
            last_chunk = min(first_chunk + chunks_per_batch, layout.num_chunks)
            if first_chunk < layout.num_wide_chunks < last_chunk:
                last_chunk = layout.num_wide_chunks
            num_candidates = 2 ** layout.candidate_bits(first_chunk)
            first_segment, end_segment = segments.first_segment[first_chunk], segments.first_segment[last_chunk]
            segment_ids = torch.arange(first_segment, end_segment, device=device)
            segment_mu = signed_mu[segments.positions(segment_ids, dim)]  # (s, w)
            entries = segments.row_key[segment_ids] % num_candidates  # (s,)
            window_scores = self._window_scores(
                segment_mu, segments.host_row_key[first_segment:end_segment] // num_candidates, pool, num_candidates
            )  # (s, K)
            # Candidate k of a segment is its window row (k + entry) mod K; a chunk's score sums its segments' rows.
            candidate_rows = (entries[:, None] + torch.arange(num_candidates, device=device)) % num_candidates
            segment_scores = window_scores.gather(1, candidate_rows)  # (s, K)
            scores = self._chunk_sums(segment_scores, segments.first_segment[first_chunk : last_chunk + 1])  # (G, K)
            chunk_ids = torch.arange(first_chunk, last_chunk, device=device)
            indices[first_chunk:last_chunk] = self._pfr_argmin(scores, arrivals, chunk_ids)
            first_chunk = last_chunk
        return indices

    def _chosen_candidates(
        self, code: StepCode, layout: ChunkLayout, dim: int, key: bytes, permutation: torch.Tensor
    ) -> torch.Tensor:
        device = permutation.device
        segments = _Segments(layout, dim, self.pool_width, self.pool_rows, key, device)
        indices = torch.tensor(code.indices, dtype=torch.int64, device=device)
        num_candidates = 2 ** (layout.base_candidate_bits + (segments.chunk < layout.num_wide_chunks).long())  # (S,)
        rows = segments.rows(indices[segments.chunk], num_candidates)  # (S,)
        pool_rows = CounterGenerator(POOL_KEY, device).normal(torch.zeros_like(rows), rows, segments.width)  # (S, w)
        positions = segments.positions(torch.arange(segments.num_segments, device=device), dim)  # (S, w)
        # Padding columns (position `dim`) all land in one spare slot, dropped after: no mask, no host sync.
        in_permutation_order = torch.empty(dim + 1, dtype=torch.float32, device=device)
        in_permutation_order[positions.reshape(-1)] = pool_rows.reshape(-1)
        sample = torch.empty(dim, dtype=torch.float32, device=device)
        sample[permutation] = in_permutation_order[:dim] * self._signs(key, dim, device)
        return sample

    @staticmethod
    def _window_scores(
        segment_mu: torch.Tensor, windows: np.ndarray, pool: torch.Tensor, num_candidates: int
    ) -> torch.Tensor:
        """`(s, K)` scores of every segment against the `K` rows of its window: row `j` of segment `i` is
        `<pool[windows[i] * K + j], segment_mu[i]>`. One matrix product per window present, planned from `windows`
        (`(s,)`, on the host) so that nothing is read back from the device."""
        order = np.argsort(windows, kind="stable")  # segments grouped by window, in segment order within each
        sorted_windows = windows[order]
        run_starts = [0, *(np.flatnonzero(np.diff(sorted_windows)) + 1).tolist(), windows.size]
        in_order = bool((order == np.arange(order.size)).all())  # always so with one window (K = M)
        order_on_device = None if in_order else host_to_device(order, segment_mu.device)
        sorted_mu = segment_mu if in_order else segment_mu[order_on_device]  # (s, w)
        sorted_scores = torch.empty(windows.size, num_candidates, device=segment_mu.device)  # (s, K)
        for start, end in zip(run_starts[:-1], run_starts[1:]):
            window = int(sorted_windows[start])
            window_rows = pool[window * num_candidates : (window + 1) * num_candidates]  # (K, w)
            sorted_scores[start:end] = sorted_mu[start:end] @ window_rows.T
        if in_order:
            return sorted_scores
        window_scores = torch.empty_like(sorted_scores)
        window_scores[order_on_device] = sorted_scores
        return window_scores

    @staticmethod
    def _chunk_sums(segment_scores: torch.Tensor, first_segment: list[int]) -> torch.Tensor:
        """`(G, K)` sums of the consecutive segment rows of each chunk (chunk `g` owns rows `first_segment[g] -
        first_segment[0]` up to the next chunk's), added one segment at a time in segment order: a fixed order on
        every device (a scatter-add such as `index_add_` sums in whatever order a GPU's atomics land)."""
        bounds = np.asarray(first_segment, dtype=np.int64) - first_segment[0]
        starts, counts = bounds[:-1], np.diff(bounds)  # (G,), (G,)
        if (counts == 1).all():  # one segment per chunk: the scores are the segments' rows
            return segment_scores
        device = segment_scores.device
        scores = segment_scores[host_to_device(starts, device)]  # (G, K): every chunk's first segment
        for position in range(1, int(counts.max())):
            chunks = np.flatnonzero(counts > position)
            rows = segment_scores[host_to_device(starts[chunks] + position, device)]  # (g, K)
            if chunks.size == counts.size:
                scores += rows
            else:
                scores[host_to_device(chunks, device)] += rows
        return scores

    @staticmethod
    def _signs(key: bytes, dim: int, device: torch.device) -> torch.Tensor:
        """`(dim,)` float32 random signs, one per position of the coordinate permutation (128 per Philox block)."""
        num_blocks = -(-dim // 128)
        blocks = torch.arange(num_blocks, device=device)
        words = CounterGenerator(derive_key(key, "pool-signs"), device).random_words(
            torch.zeros_like(blocks), blocks, 1
        )  # (4, num_blocks)
        bits = (words.T[:, :, None] >> torch.arange(32, device=device)) & 1  # (num_blocks, 4, 32)
        return (1 - 2 * bits.reshape(-1)[:dim]).float()

    def _chunks_per_batch(self, segments: _Segments) -> int:
        """Chunks scored per matrix product: at most `_MAX_SCORE_ELEMENTS` scores, at least one chunk."""
        segments_per_chunk = -(-segments.num_segments // (len(segments.first_segment) - 1))
        return max(1, _MAX_SCORE_ELEMENTS // (self.pool_rows * segments_per_chunk))

    @staticmethod
    def _pfr_argmin(scores: torch.Tensor, arrivals: CounterGenerator, chunk_ids: torch.Tensor) -> torch.Tensor:
        r"""PFR selection `argmin_k log T_k - scores[:, k]` of each chunk, with arrival times made block by block.

        Block `j` of chunk `c` is `arrivals.uniform` at stream `c`, row `j`: Exp(1) spacings of candidates
        `j * B .. (j + 1) * B - 1`. On the CPU a chunk stops once `log T` at the end of a block minus the largest
        score of the later blocks is at least its best objective: no later candidate can win, so the result equals
        the full argmin over the same arrival times (computed on other devices, see [`_stops_early`]).

        Args:
            scores (`torch.Tensor`): `(G, K)` float32 `<z_k, mu_c>`.
            arrivals (`CounterGenerator`): the step's encoder-private arrival-time generator.
            chunk_ids (`torch.Tensor`): `(G,)` the chunks' ids (their arrival streams).

        Returns:
            `torch.Tensor`: `(G,)` int64 chosen indices.
        """
        num_chunks, num_candidates = scores.shape
        device = scores.device
        block_size = min(_ARRIVAL_BLOCK, num_candidates)
        num_blocks = num_candidates // block_size
        block_max = scores.view(num_chunks, num_blocks, block_size).amax(dim=2).double()  # (G, J)
        # later_max[:, j]: largest score in blocks after j (-inf after the last).
        later_max = torch.cat(
            [block_max.flip(1).cummax(dim=1).values.flip(1)[:, 1:], block_max.new_full((num_chunks, 1), -torch.inf)],
            dim=1,
        )  # (G, J)
        best = torch.full((num_chunks,), torch.inf, dtype=torch.float64, device=device)
        best_index = torch.zeros(num_chunks, dtype=torch.int64, device=device)
        arrival_time = torch.zeros(num_chunks, dtype=torch.float64, device=device)  # T at the end of the last block
        active = torch.arange(num_chunks, device=device)
        for block in range(num_blocks):
            uniforms = arrivals.uniform(chunk_ids[active], torch.full_like(active, block), block_size)  # (g, B)
            times = arrival_time[active, None] + torch.cumsum(-torch.log(uniforms), dim=1)  # (g, B)
            columns = slice(block * block_size, (block + 1) * block_size)
            objective = torch.log(times) - scores[active, columns]  # (g, B), float64
            block_best, block_index = objective.min(dim=1)
            improved = block_best < best[active]
            best[active] = torch.where(improved, block_best, best[active])
            best_index[active] = torch.where(improved, block_index + block * block_size, best_index[active])
            arrival_time[active] = times[:, -1]
            if PooledPFRSimulator._stops_early(device):
                # Exact stop: every later candidate's objective is at least log T - later_max.
                active = active[torch.log(arrival_time[active]) - later_max[active, block] < best[active]]
                if active.numel() == 0:
                    break
        return best_index

    @staticmethod
    def _stops_early(device: torch.device) -> bool:
        """Whether `_pfr_argmin` drops the chunks that cannot improve after each block: it reads device values, free
        on the CPU and a host sync elsewhere, where the remaining blocks cost less than the wait. The choice is the
        same either way."""
        return device.type == "cpu"
