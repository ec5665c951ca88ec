"""The frozen DiffC streams of `tests/golden/`: which cases exist and how each is made and decoded.

One definition serves the generator (`make_golden_streams.py`) and the test (`test_golden_streams.py`), so the two
cannot drift apart. A case is an input image, a backbone, a channel coder and a cut; its files are
`<name>.png` (input), `<name>.cdc` (stream) and the tensors `<name>/latent` and `<name>/image` in
`expected.safetensors` (the decoded noisy latent and the decompressed image, float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from cod_diffc.diffc import BackboneAdapter, DiffCSchedule, decode, decompress, encode, load_backbone
from cod_diffc.diffc.channel import ChannelSimulator, ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.image_files import load_image


GOLDEN_DIR = Path(__file__).resolve().parent
TINY_COD_DIR = GOLDEN_DIR / "tiny_cod"
EXPECTED_FILE = GOLDEN_DIR / "expected.safetensors"
GAUSSIAN_STD = 0.3
SEED = 11
DENOISE_STEPS = 3


@dataclass(frozen=True)
class GoldenCase:
    """One frozen stream: `backbone` ("gaussian" or "cod", the tiny CoD in `tiny_cod/`), `coder` ("chunked" or
    "pooled", the default coder), `stop_step` (0 = condition only), on a `side x side` image."""

    name: str
    backbone: str
    coder: str
    stop_step: int
    side: int
    num_steps: int

    @property
    def schedule(self) -> DiffCSchedule:
        return DiffCSchedule(num_steps=self.num_steps, t_end=0.05)

    @property
    def image_path(self) -> Path:
        return GOLDEN_DIR / f"{self.name}.png"

    @property
    def stream_path(self) -> Path:
        return GOLDEN_DIR / f"{self.name}.cdc"


CASES = (
    GoldenCase("gaussian-chunked-steps", "gaussian", "chunked", stop_step=10, side=16, num_steps=16),
    GoldenCase("gaussian-pooled-steps", "gaussian", "pooled", stop_step=10, side=16, num_steps=16),
    GoldenCase("gaussian-condition-only", "gaussian", "pooled", stop_step=0, side=16, num_steps=16),
    GoldenCase("cod-chunked-steps", "cod", "chunked", stop_step=5, side=64, num_steps=8),
    GoldenCase("cod-pooled-steps", "cod", "pooled", stop_step=5, side=64, num_steps=8),
    GoldenCase("cod-condition-only", "cod", "pooled", stop_step=0, side=64, num_steps=8),
)


def simulator_of(case: GoldenCase) -> ChannelSimulator:
    """The chunked coder at small chunks (fast), or the default pooled coder exactly as `encode` builds it."""
    if case.coder == "chunked":
        return ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2)
    return PooledPFRSimulator(max_chunk_bits=15)


def adapter_of(case: GoldenCase) -> BackboneAdapter:
    if case.backbone == "gaussian":
        return load_backbone("gaussian", std=GAUSSIAN_STD)
    return load_backbone("cod", str(TINY_COD_DIR))


def make_input_image(case: GoldenCase) -> np.ndarray:
    """A smooth gradient with seeded texture, `(side, side, 3)` uint8."""
    rng = np.random.default_rng(sum(map(ord, case.name)))
    rows, cols = np.mgrid[0 : case.side, 0 : case.side] / case.side
    base = 40 + 160 * np.stack([rows, cols, (rows + cols) / 2], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def encode_case(case: GoldenCase, adapter: BackboneAdapter) -> bytes:
    """The stream of `case`, encoded from its stored input image."""
    image = load_image(case.image_path)  # (1, 3, H, W) in [0, 1]
    result = encode(
        image,
        adapter,
        stop_step=case.stop_step,
        schedule=case.schedule,
        seed=SEED,
        simulator=simulator_of(case),
        progress=False,
    )
    return result.points[0].stream


def decode_case(stream: bytes, adapter: BackboneAdapter) -> dict[str, torch.Tensor]:
    """The decoded noisy latent `(1, C, h, w)` and the decompressed image `(1, 3, H, W)`, both float32."""
    latent = decode(stream, adapter, progress=False).latent
    image = decompress(stream, adapter, num_denoise_steps=DENOISE_STEPS, progress=False)
    return {"latent": latent.float().contiguous(), "image": image.float().contiguous()}


def save_input_image(case: GoldenCase) -> None:
    PIL.Image.fromarray(make_input_image(case)).save(case.image_path)
