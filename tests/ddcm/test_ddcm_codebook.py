import pytest
import torch

from cod_diffc.codecs.randomness import gaussian_pool
from cod_diffc.ddcm.codebook import ATOM_POOL_KEY, BlockLayout, StepCodebook


@pytest.mark.parametrize(("dim", "block_width"), [(10, 4), (12, 4), (7, 7), (5, 100), (1000, 33)])
def test_blocks_are_near_equal_and_invert(dim, block_width):
    layout = BlockLayout.of(dim, block_width)
    assert layout.width <= block_width and layout.num_blocks == -(-dim // block_width)
    flat = torch.arange(dim, dtype=torch.float32) + 1
    blocks = layout.to_blocks(flat)
    assert blocks.shape == (layout.num_blocks, layout.width)
    assert int((blocks != 0).sum()) == dim  # only padding is zero
    assert torch.equal(layout.from_blocks(blocks), flat)


def codebook(seed=3, step=0, dim=50, block_width=16, size=32) -> StepCodebook:
    return StepCodebook(seed, step, BlockLayout.of(dim, block_width), size, torch.device("cpu"))


def test_an_atom_is_a_signed_pool_row_on_the_blocks_coordinates():
    book = codebook()
    layout, pool = book.layout, gaussian_pool(ATOM_POOL_KEY, 32, book.layout.width)
    indices = torch.tensor([[5], [0], [31], [5]])  # (B, 1): two blocks share a row
    atom = book.combine(indices, torch.ones(4, 1), regenerate=False)
    permuted = atom[book.permutation] * book.signs  # back to block order, unsigned
    blocks = layout.to_blocks(permuted)
    for block, row in enumerate(indices[:, 0].tolist()):
        length = layout.width if block < layout.num_long else layout.width - 1
        assert torch.equal(blocks[block, :length], pool[row, :length])
    # Two blocks on the same row still differ: their coordinates' signs are independent.
    assert not torch.equal(atom[book.permutation[:13]].abs(), atom[book.permutation[13:26]].abs())


def test_scores_are_the_inner_products_with_every_atom():
    book = codebook()
    vector = torch.randn(50, generator=torch.Generator().manual_seed(0))
    scores = book.scores(vector)  # (K, B)
    for block in range(book.layout.num_blocks):
        for row in (0, 7, 31):
            indices = torch.zeros(book.layout.num_blocks, 1, dtype=torch.int64)
            coefficients = torch.zeros(book.layout.num_blocks, 1)
            indices[block, 0], coefficients[block, 0] = row, 1.0
            atom = book.combine(indices, coefficients, regenerate=True)
            torch.testing.assert_close(scores[row, block], atom @ vector, rtol=1e-5, atol=1e-5)


def test_decoder_regeneration_equals_the_encoders_pool():
    book = codebook(dim=300, block_width=64, size=64)
    indices = torch.randint(0, 64, (book.layout.num_blocks, 3), generator=torch.Generator().manual_seed(1))
    coefficients = torch.randn(book.layout.num_blocks, 3, generator=torch.Generator().manual_seed(2))
    assert torch.equal(
        book.combine(indices, coefficients, regenerate=True), book.combine(indices, coefficients, regenerate=False)
    )


def test_codebooks_are_keyed_by_seed_and_step():
    assert torch.equal(codebook().permutation, codebook().permutation)
    assert torch.equal(codebook().signs, codebook().signs)
    assert not torch.equal(codebook(step=1).permutation, codebook().permutation)
    assert not torch.equal(codebook(seed=4).signs, codebook().signs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_builds_the_same_codebook():
    """The integer parts (permutation, signs) are equal bit for bit; the atoms' normals come from float64 `log`,
    `sqrt`, `cos` and `sin`, which may differ by one float64 ulp between devices, so after rounding to float32 an
    atom may differ in its last float32 bit (rarely): equal within one float32 ulp."""
    cpu = codebook()
    gpu = StepCodebook(3, 0, cpu.layout, 32, torch.device("cuda"))
    assert torch.equal(gpu.permutation.cpu(), cpu.permutation) and torch.equal(gpu.signs.cpu(), cpu.signs)
    indices = torch.tensor([[1], [2], [3], [4]])
    torch.testing.assert_close(
        gpu.combine(indices.cuda(), torch.ones(4, 1, device="cuda"), regenerate=True).cpu(),
        cpu.combine(indices, torch.ones(4, 1), regenerate=True),
        rtol=2**-23,
        atol=0,
    )
