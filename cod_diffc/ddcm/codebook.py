r"""The seeded per-step codebooks of the DDCM family, regenerated from counter-based randomness.

A latent of `d` coordinates is split into `B = ceil(d / block_width)` blocks of near-equal size (at most
`block_width`); a latent that fits one block (Stable Diffusion at 512 x 512: 16,384 numbers) has one codebook
over all of it, as in the papers. Step `n` of a stream with seed `s` draws, from the key `(s, n)`, a permutation of
the `d` coordinates and a random sign per coordinate; block `b` owns the coordinates at permuted positions
`start_b .. start_b + len_b - 1`, and its atom `k` (`k < K`) there is

    atom_{n, b, k} = signs[start_b : start_b + len_b] * P[k, :len_b],

with `P` a fixed `(K, block_width)` pool of i.i.d. N(0, 1) numbers (a pure function of a constant key, built once per
process and cached; a decoder regenerates only the rows it uses). Within a block the `K` atoms are distinct pool
rows, so they are i.i.d. N(0, I) as DDCM needs; the permutation and the signs make every step's and every block's
codebook a fresh one, so blocks that choose the same row still get uncorrelated noise. The scores of every atom of
every block against a vector are one matrix product, `P (K, w) @ V (w, B)`, at BLAS speed.
"""

from dataclasses import dataclass

import torch

from cod_diffc.codecs.randomness import CounterGenerator, derive_key, gaussian_pool, pool_rows


ATOM_POOL_KEY = derive_key(b"cod_diffc.ddcm", "atom-pool")
"""Key of the atom pool (frozen: changing it changes every stream)."""


@dataclass(frozen=True)
class BlockLayout:
    r"""
    Near-equal blocks of a `dim`-coordinate latent: the first `num_long` blocks have `width` coordinates, the others
    `width - 1` (all `width` when `num_long == num_blocks`).

    Attributes:
        dim (`int`): Coordinates of the latent.
        num_blocks (`int`): `ceil(dim / block_width)`.
        width (`int`): The longest block, at most `block_width`.
        num_long (`int`): Blocks of `width` coordinates.
    """

    dim: int
    num_blocks: int
    width: int
    num_long: int

    @classmethod
    def of(cls, dim: int, block_width: int) -> "BlockLayout":
        """The layout of a `dim`-coordinate latent in blocks of at most `block_width` coordinates."""
        if dim < 1 or block_width < 1:
            raise ValueError(f"invalid latent size {dim} or block width {block_width}")
        num_blocks = -(-dim // block_width)
        base, remainder = divmod(dim, num_blocks)
        if remainder == 0:
            return cls(dim=dim, num_blocks=num_blocks, width=base, num_long=num_blocks)
        return cls(dim=dim, num_blocks=num_blocks, width=base + 1, num_long=remainder)

    def to_blocks(self, flat: torch.Tensor) -> torch.Tensor:
        """`(dim,)` in permuted order -> `(B, width)`, short blocks zero-padded at the end."""
        split = self.num_long * self.width
        long_blocks = flat[:split].view(self.num_long, self.width)
        short_blocks = flat[split:].view(self.num_blocks - self.num_long, self.width - 1)
        short_blocks = torch.nn.functional.pad(short_blocks, (0, 1))
        return torch.cat([long_blocks, short_blocks])

    def from_blocks(self, blocks: torch.Tensor) -> torch.Tensor:
        """[`to_blocks`]'s inverse: `(B, width)` -> `(dim,)`, dropping the padding."""
        long_blocks = blocks[: self.num_long].reshape(-1)
        short_blocks = blocks[self.num_long :, : self.width - 1].reshape(-1)
        return torch.cat([long_blocks, short_blocks])


class StepCodebook:
    r"""
    The codebook of step `step` of a stream: `K` atoms per block of the [`BlockLayout`].

    Args:
        seed (`int`): The stream's seed.
        step (`int`): The step.
        layout ([`BlockLayout`]): The latent's blocks.
        codebook_size (`int`): `K`, atoms per block.
        device (`torch.device`): Where the latent lives.
    """

    def __init__(self, seed: int, step: int, layout: BlockLayout, codebook_size: int, device: torch.device):
        generator = CounterGenerator(derive_key(seed, "ddcm-step", step), device)
        self.layout = layout
        self.codebook_size = codebook_size
        self.device = device
        self.permutation = generator.permutation(layout.dim, stream=0)  # (d,) coordinate at each position
        positions = torch.arange(layout.dim, device=device)
        coin = generator.random_words(torch.ones_like(positions), positions, 1)[0] & 1  # (d,)
        self.signs = (1 - 2 * coin).to(torch.float32)  # (d,) +-1, by permuted position

    def scores(self, vector: torch.Tensor) -> torch.Tensor:
        """`(K, B)` inner products of every atom of every block with a `(dim,)` float32 vector."""
        blocks = self.layout.to_blocks(vector[self.permutation] * self.signs)  # (B, w)
        pool = gaussian_pool(ATOM_POOL_KEY, self.codebook_size, self.layout.width, self.device)  # (K, w)
        return pool @ blocks.T

    def combine(self, indices: torch.Tensor, coefficients: torch.Tensor, *, regenerate: bool) -> torch.Tensor:
        r"""
        The `(dim,)` vector `sum_j coefficients[b, j] * atom_{b, indices[b, j]}` over every block `b`.

        Args:
            indices (`torch.Tensor`): `(B, M)` int64 atom indices.
            coefficients (`torch.Tensor`): `(B, M)` float32.
            regenerate (`bool`): Regenerate only the rows used (a decoder), or read them from the cached pool (an
                encoder, which built it to score); both give the same bits.
        """
        if regenerate:
            rows, inverse = torch.unique(indices, return_inverse=True)
            atoms = pool_rows(ATOM_POOL_KEY, rows, self.layout.width, self.device)[inverse]  # (B, M, w)
        else:
            atoms = gaussian_pool(ATOM_POOL_KEY, self.codebook_size, self.layout.width, self.device)[indices]
        blocks = torch.einsum("bm,bmw->bw", coefficients, atoms)  # (B, w)
        permuted = self.layout.from_blocks(blocks) * self.signs  # (d,) by permuted position
        return torch.empty_like(permuted).index_put_((self.permutation,), permuted)
