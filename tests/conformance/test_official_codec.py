"""Numerical conformance of `CodConditionCodec` with the official CoD condition codec.

The reference tensors in `shared/reference/cod_official/` were produced by running the official implementation
(microsoft/GenCodec `CoD/`) on tiny random weights; see that folder's README for tensor names and tolerances.
"""

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc.models.condition_codec_cod import CodConditionCodec, pack_indices, unpack_indices


KEY_MAP_PATH = Path(__file__).resolve().parents[2] / "third_party" / "cod_official" / "key_map_condition_codec.tsv"
CHECKPOINT_PREFIX = "ema_denoiser."
CODEC_KEY = re.compile(r"y_embedder\.(?:encoder|bottleneck|decoder)\..+")
VARIANTS = ["pixel", "latent", "latent_64bits"]
# Codec parameter counts of the released models (reference README, "Parameter totals").
RELEASED_PARAMETER_COUNTS = {
    "pixel": {"encoder": 28_708_224, "codebook": 2_048, "decoder": 148_695_552},
    "latent": {"encoder": 28_708_224, "codebook": 2_048, "decoder": 148_695_552},
    "latent_64bits": {"encoder": 114_531_200, "codebook": 2_048, "decoder": 196_485_120},
}
RELEASED_HIDDEN_SIZE = 1152
ATOL = {torch.float32: 5e-5, torch.float64: 1e-9}
SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


# ----------------------------------------------------------------------------------------------------------------
# Test-local key conversion (the project's converter lives in cod_diffc.conversion)
# ----------------------------------------------------------------------------------------------------------------


def _read_key_map() -> list[tuple[re.Pattern, str]]:
    rows = []
    for line in KEY_MAP_PATH.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pattern, replacement = line.split("\t")
        rows.append((re.compile(pattern), replacement))
    return rows


def _convert_key(key: str, rows: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, replacement in rows:
        match = pattern.fullmatch(key)
        if match is not None:
            return match.expand(replacement)
    return None


def _convert_shapes(official_shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Maps official codec keys (with the checkpoint prefix) to our keys; every codec key must map, one-to-one."""
    rows = _read_key_map()
    converted = {}
    for key, shape in official_shapes.items():
        if not key.startswith(CHECKPOINT_PREFIX) or not CODEC_KEY.fullmatch(key[len(CHECKPOINT_PREFIX) :]):
            continue
        our_key = _convert_key(key[len(CHECKPOINT_PREFIX) :], rows)
        assert our_key is not None, f"no key-map row matches {key}"
        assert our_key not in converted, f"two official keys map to {our_key}"
        converted[our_key] = shape
    return converted


def _codec_kwargs(codec_config: dict) -> dict:
    """Our constructor arguments from the `condition_codec` block of a reference config."""
    return {
        "base_channels": codec_config["encoder_base_channels"],
        "channel_multipliers": tuple(codec_config["encoder_channel_multipliers_by_stage"]),
        "codebook_bits": codec_config["codebook_bits"],
        "codebook_dim": codec_config["codebook_dim"],
        "downsampling": codec_config["ds"],
        "up2x": codec_config["up2x"],
        "condition_channels": codec_config["decoder_channels"],
        "norm_num_groups": codec_config["groupnorm_groups"],
        "norm_eps": codec_config["groupnorm_eps"],
        "codebook_loss_weight": codec_config["vq_beta"],
    }


def _assert_same_keys_and_shapes(ours: dict[str, tuple[int, ...]], converted: dict[str, tuple[int, ...]]) -> None:
    assert sorted(set(converted) - set(ours)) == [], "official keys with no counterpart in our codec"
    assert sorted(set(ours) - set(converted)) == [], "codec keys that no official key fills"
    mismatched = {key: (ours[key], converted[key]) for key in ours if ours[key] != converted[key]}
    assert mismatched == {}


# ----------------------------------------------------------------------------------------------------------------
# Fixtures
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=VARIANTS)
def variant(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def official_dir(reference_dir: Path) -> Path:
    return reference_dir / "cod_official"


@pytest.fixture(scope="module")
def tiny_state_dict(official_dir: Path, variant: str) -> dict[str, torch.Tensor]:
    return load_file(official_dir / f"tiny_{variant}_state_dict.safetensors")


@pytest.fixture(scope="module")
def io(official_dir: Path, variant: str) -> dict[str, torch.Tensor]:
    return load_file(official_dir / f"tiny_{variant}_io.safetensors")


@pytest.fixture(scope="module")
def tiny_codec_f32(official_dir: Path, variant: str, tiny_state_dict) -> CodConditionCodec:
    codec_config = json.loads((official_dir / f"tiny_config_{variant}.json").read_text())["condition_codec"]
    codec = CodConditionCodec(**_codec_kwargs(codec_config))
    rows = _read_key_map()
    converted = {}
    for key, tensor in tiny_state_dict.items():
        # Only the EMA weights count; `denoiser.*` and `diffusion_trainer.*` are decoys.
        official_key = key.removeprefix(CHECKPOINT_PREFIX)
        if key.startswith(CHECKPOINT_PREFIX) and CODEC_KEY.fullmatch(official_key):
            converted[_convert_key(official_key, rows)] = tensor
    codec.load_state_dict(converted, strict=True)
    return codec.eval()


@pytest.fixture(scope="module", params=[torch.float32, torch.float64], ids=["f32", "f64"])
def codec_and_dtype(request, tiny_codec_f32) -> tuple[CodConditionCodec, torch.dtype]:
    dtype = request.param
    codec = tiny_codec_f32 if dtype == torch.float32 else copy.deepcopy(tiny_codec_f32).double()
    return codec, dtype


def _image(io: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    return io["image_uint8"].to(dtype) / 255


# ----------------------------------------------------------------------------------------------------------------
# Key map
# ----------------------------------------------------------------------------------------------------------------


def test_key_map_is_one_to_one_on_tiny_state_dict(tiny_codec_f32, tiny_state_dict):
    converted = _convert_shapes({key: tuple(tensor.shape) for key, tensor in tiny_state_dict.items()})
    ours = {key: tuple(tensor.shape) for key, tensor in tiny_codec_f32.state_dict().items()}
    _assert_same_keys_and_shapes(ours, converted)


def test_key_map_is_one_to_one_on_released_keys(official_dir, variant):
    lines = (official_dir / f"keys_{variant}.tsv").read_text().splitlines()
    assert lines[0].split("\t")[:2] == ["key", "shape"]
    official_shapes = {}
    for line in lines[1:]:
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")[:2]
        official_shapes[key] = tuple(json.loads(shape))
    config = json.loads((official_dir / f"config_{variant}.json").read_text())
    assert config["condition_codec"]["decoder_channels"] == RELEASED_HIDDEN_SIZE
    with torch.device("meta"):
        codec = CodConditionCodec(**_codec_kwargs(config["condition_codec"]))

    converted = _convert_shapes(official_shapes)
    ours = {key: tuple(tensor.shape) for key, tensor in codec.state_dict().items()}
    _assert_same_keys_and_shapes(ours, converted)

    parts = ["encoder", "codebook", "decoder"]
    counts = {part: sum(parameter.numel() for parameter in getattr(codec, part).parameters()) for part in parts}
    assert counts == RELEASED_PARAMETER_COUNTS[variant]


@pytest.mark.parametrize("variant_name, kwargs", [("pixel", {}), ("latent_64bits", {"downsampling": 128})])
def test_defaults_build_the_released_codecs(variant_name, kwargs):
    with torch.device("meta"):
        codec = CodConditionCodec(**kwargs)
    parts = ["encoder", "codebook", "decoder"]
    counts = {part: sum(parameter.numel() for parameter in getattr(codec, part).parameters()) for part in parts}
    assert counts == RELEASED_PARAMETER_COUNTS[variant_name]


# ----------------------------------------------------------------------------------------------------------------
# Codec outputs, fp32 (atol 5e-5) and fp64 (atol 1e-9)
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def test_encoder_output_matches(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    latents = codec.encode(_image(io, dtype))
    torch.testing.assert_close(latents, io[f"enc_out_{SUFFIX[dtype]}"], rtol=0, atol=ATOL[dtype])


@torch.no_grad()
def test_vq_indices_match_exactly(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    codes, indices = codec.quantize(codec.encode(_image(io, dtype)))
    assert indices.dtype == torch.int64
    assert indices.reshape(-1).tolist() == io["vq_indices"].tolist()
    torch.testing.assert_close(codes, io[f"codes_q_{SUFFIX[dtype]}"], rtol=0, atol=0)


@torch.no_grad()
def test_null_image_indices_match_exactly(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    height, width = io["image_uint8"].shape[2:]
    null_images = torch.full((1, 3, height, width), -1.0, dtype=dtype)
    _, indices = codec.quantize(codec.encoder(null_images))
    assert indices.reshape(-1).tolist() == io["vq_indices_null"].tolist()


@torch.no_grad()
def test_compressed_bytes_match_official_bitstream(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    compressed = codec.compress(_image(io, dtype))
    official_bitstream = bytes(io["bitstream_uint8"].tolist())
    assert compressed["strings"] == [official_bitstream]
    assert pack_indices(io["vq_indices"], bits=4) == official_bitstream
    # The official `.cod` file is a 4-byte (H, W) header followed by exactly this payload.
    assert bytes(io["cod_file_uint8"][4:].tolist()) == official_bitstream
    assert compressed["shape"] == codec.code_grid_size(*io["image_uint8"].shape[2:])


@torch.no_grad()
def test_decompress_path_matches(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    code_grid = codec.code_grid_size(*io["image_uint8"].shape[2:])
    indices = unpack_indices(bytes(io["bitstream_uint8"].tolist()), bits=4, count=code_grid[0] * code_grid[1])
    indices = indices.reshape(1, *code_grid)
    torch.testing.assert_close(codec.lookup_codes(indices), io[f"codes_q_{SUFFIX[dtype]}"], rtol=0, atol=0)

    expected = io[f"cond_map_{SUFFIX[dtype]}"]
    torch.testing.assert_close(codec.decode_indices(indices), expected, rtol=0, atol=ATOL[dtype])
    condition = codec.decompress([bytes(io["bitstream_uint8"].tolist())], code_grid)["condition"]
    torch.testing.assert_close(condition, expected, rtol=0, atol=ATOL[dtype])


@torch.no_grad()
def test_straight_through_forward_matches(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    outputs = codec(_image(io, dtype))
    torch.testing.assert_close(outputs["condition"], io[f"cond_map_st_{SUFFIX[dtype]}"], rtol=0, atol=ATOL[dtype])
    assert outputs["indices"].reshape(-1).tolist() == io["vq_indices"].tolist()


@torch.no_grad()
def test_null_condition_matches(codec_and_dtype, io):
    codec, dtype = codec_and_dtype
    null_condition = codec.null_condition(*io["image_uint8"].shape[2:])
    torch.testing.assert_close(null_condition, io[f"null_map_{SUFFIX[dtype]}"], rtol=0, atol=ATOL[dtype])


# ----------------------------------------------------------------------------------------------------------------
# Stand-alone packing vectors from the official packer
# ----------------------------------------------------------------------------------------------------------------


def _packing_vectors(official_dir: Path) -> list[tuple[int, list[int], bytes]]:
    io = load_file(official_dir / "tiny_pixel_io.safetensors")
    vectors = []
    for name in sorted(io):
        match = re.fullmatch(r"pack_b(\d+)_n(\d+)_indices", name)
        if match:
            indices = io[name].tolist()
            assert len(indices) == int(match.group(2))
            vectors.append((int(match.group(1)), indices, bytes(io[name.replace("_indices", "_bytes")].tolist())))
    return vectors


def test_official_packing_vectors(official_dir):
    vectors = _packing_vectors(official_dir)
    assert sorted(bits for bits, _, _ in vectors) == [3, 4, 5, 8, 11]
    for bits, indices, expected in vectors:
        assert pack_indices(indices, bits) == expected, f"bits={bits}"
        assert unpack_indices(expected, bits, len(indices)).tolist() == indices, f"bits={bits}"
