"""The frozen streams of `tests/golden/`: which cases exist and how each is made and decoded.

One definition serves the generator (`make_golden_streams.py`) and the test (`test_golden_streams.py`), so the two
cannot drift apart. A case is an input image, a backbone, a channel coder and a cut; its files are `<name>.png`
(input, shared by every format version), and per format version, in that version's folder ([`FORMAT_DIRS`]),
`<name>.cdc` (stream) and the tensors `<name>/latent` and `<name>/image` in `expected.safetensors` (the decoded
noisy latent and the decompressed image, float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from cod_diffc.backbones import BackboneAdapter, load_backbone
from cod_diffc.codecs import Codec, decompress, load_codec
from cod_diffc.diffc import DiffCSchedule, decode, encode
from cod_diffc.diffc.channel import ChannelSimulator, ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.image_files import load_image


GOLDEN_DIR = Path(__file__).resolve().parent
TINY_COD_DIR = GOLDEN_DIR / "tiny_cod"
TINY_COD_LITE_DIR = GOLDEN_DIR / "tiny_cod_lite"
TINY_MODELS = {"cod": (TINY_COD_DIR, "cod-pixel-tiny"), "cod-lite": (TINY_COD_LITE_DIR, "cod-lite-tiny")}
"""Backbone -> the frozen tiny model its cases run on (float16 weights) and the named configuration it was made of."""
CURRENT_VERSION = 2
FORMAT_DIRS = {1: GOLDEN_DIR / "v1", CURRENT_VERSION: GOLDEN_DIR}
"""Where the streams of each format version live: the current version's at the top, older ones in `v<N>/`."""
GAUSSIAN_STD = 0.3
SEED = 11
DENOISE_STEPS = 3


@dataclass(frozen=True)
class GoldenCase:
    """One frozen stream: `backbone` ("gaussian", or a tiny model of [`TINY_MODELS`]) on a `side x side` image, and
    either DiffC with `coder` ("chunked" or "pooled", the default coder) cut at `stop_step` (0 = condition only), or
    another `codec` at `target_bpp` (the DDCM family with small codebooks: [`codec_of`])."""

    name: str
    backbone: str
    coder: str | None
    stop_step: int | None
    side: int
    num_steps: int
    codec: str = "diffc"
    target_bpp: float | None = None

    @property
    def schedule(self) -> DiffCSchedule:
        return DiffCSchedule(num_steps=self.num_steps, t_end=0.05)

    @property
    def image_path(self) -> Path:
        return GOLDEN_DIR / f"{self.name}.png"

    def stream_path(self, version: int = CURRENT_VERSION) -> Path:
        return FORMAT_DIRS[version] / f"{self.name}.cdc"


def expected_file(version: int = CURRENT_VERSION) -> Path:
    """The decoded outputs of the streams of format `version`."""
    return FORMAT_DIRS[version] / "expected.safetensors"


DIFFC_CASES = (
    GoldenCase("gaussian-chunked-steps", "gaussian", "chunked", stop_step=10, side=16, num_steps=16),
    GoldenCase("gaussian-pooled-steps", "gaussian", "pooled", stop_step=10, side=16, num_steps=16),
    GoldenCase("gaussian-condition-only", "gaussian", "pooled", stop_step=0, side=16, num_steps=16),
    GoldenCase("cod-chunked-steps", "cod", "chunked", stop_step=5, side=64, num_steps=8),
    GoldenCase("cod-pooled-steps", "cod", "pooled", stop_step=5, side=64, num_steps=8),
    GoldenCase("cod-condition-only", "cod", "pooled", stop_step=0, side=64, num_steps=8),
)
DDCM_CASES = (
    GoldenCase(
        "gaussian-turbo-ddcm", "gaussian", None, None, side=16, num_steps=8, codec="turbo-ddcm", target_bpp=3.0
    ),
    GoldenCase("gaussian-ddcm", "gaussian", None, None, side=16, num_steps=24, codec="ddcm", target_bpp=2.0),
    GoldenCase("cod-turbo-ddcm", "cod", None, None, side=64, num_steps=6, codec="turbo-ddcm", target_bpp=0.3),
)
ONE_STEP_CASES = (
    GoldenCase(
        "cod-lite-onestep", "cod-lite", None, None, side=64, num_steps=1, codec="cod-lite-onestep", target_bpp=1
    ),
)
CASES_BY_VERSION = {1: DIFFC_CASES, CURRENT_VERSION: DIFFC_CASES + DDCM_CASES + ONE_STEP_CASES}
"""The cases each format version has files of (format 1 had DiffC only)."""
CASES = CASES_BY_VERSION[CURRENT_VERSION]


def codec_of(case: GoldenCase) -> Codec:
    """The case's codec (not DiffC); the DDCM family with codebooks small enough for tiny images (2**8 atoms,
    1024-wide blocks)."""
    if case.codec not in ("turbo-ddcm", "ddcm"):
        return load_codec(case.codec)
    settings = {"num_steps": case.num_steps, "t_end": 0.05, "codebook_bits": 8, "block_width": 1024}
    return load_codec(case.codec, **settings, **({"max_atoms": 8} if case.codec == "turbo-ddcm" else {}))


def simulator_of(case: GoldenCase) -> ChannelSimulator:
    """The chunked coder at small chunks (fast), or the default pooled coder exactly as `encode` builds it."""
    if case.coder == "chunked":
        return ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2)
    return PooledPFRSimulator(max_chunk_bits=15)


def adapter_of(case: GoldenCase) -> BackboneAdapter:
    if case.backbone == "gaussian":
        return load_backbone("gaussian", std=GAUSSIAN_STD)
    return load_backbone(case.backbone, str(TINY_MODELS[case.backbone][0]))


def make_input_image(case: GoldenCase) -> np.ndarray:
    """A smooth gradient with seeded texture, `(side, side, 3)` uint8."""
    rng = np.random.default_rng(sum(map(ord, case.name)))
    rows, cols = np.mgrid[0 : case.side, 0 : case.side] / case.side
    base = 40 + 160 * np.stack([rows, cols, (rows + cols) / 2], axis=-1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def encode_case(case: GoldenCase, adapter: BackboneAdapter) -> bytes:
    """The stream of `case`, encoded from its stored input image."""
    image = load_image(case.image_path)  # (1, 3, H, W) in [0, 1]
    if case.codec != "diffc":
        return codec_of(case).compress(image, adapter, target_bpp=case.target_bpp, seed=SEED, progress=False)
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


def decode_case(case: GoldenCase, stream: bytes, adapter: BackboneAdapter) -> dict[str, torch.Tensor]:
    """The decoded noisy latent `(1, C, h, w)` (of the codecs that decode through one) and the decompressed image
    `(1, 3, H, W)`, both float32."""
    image = decompress(stream, adapter, num_denoise_steps=DENOISE_STEPS, progress=False)
    decoded = {"image": image.float().contiguous()}
    if case.codec == "diffc":
        decoded["latent"] = decode(stream, adapter, progress=False).latent.float().contiguous()
    elif case.codec in ("turbo-ddcm", "ddcm"):
        decoded["latent"] = codec_of(case).decode(stream, adapter, progress=False).latent.float().contiguous()
    return decoded


def save_input_image(case: GoldenCase) -> None:
    PIL.Image.fromarray(make_input_image(case)).save(case.image_path)
