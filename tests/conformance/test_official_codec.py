"""The condition codec of each converted tiny checkpoint against the official CoD condition codec.

Inputs and outputs are the reference folder's (`tiny_<variant>_io.safetensors`, see its README): indices and bytes
must match exactly, float maps to the README's tolerance, in float32 and float64.
"""

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc.models.condition_codec_cod import CodConditionCodec, pack_indices, unpack_indices

from conformance_helpers import ATOL, DTYPES


pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module", params=list(DTYPES))
def dtype_name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def codec(converted_pipelines, dtype_name: str) -> CodConditionCodec:
    return converted_pipelines[dtype_name].condition_codec


def image_of(reference_io: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """The codec input: the stored uint8 image in [0, 1], `(1, 3, H, W)`."""
    return reference_io["image_uint8"].to(dtype) / 255


def payload_of(reference_io: dict[str, torch.Tensor]) -> bytes:
    return bytes(reference_io["bitstream_uint8"].tolist())


@torch.no_grad()
def test_encoder_output_matches(codec, dtype_name, reference_io):
    latents = codec.encode(image_of(reference_io, DTYPES[dtype_name]))
    torch.testing.assert_close(latents, reference_io[f"enc_out_{dtype_name}"], rtol=0, atol=ATOL[dtype_name])


@torch.no_grad()
def test_vq_indices_match_exactly(codec, dtype_name, reference_io):
    codes, indices = codec.quantize(codec.encode(image_of(reference_io, DTYPES[dtype_name])))
    assert indices.dtype == torch.int64
    assert indices.reshape(-1).tolist() == reference_io["vq_indices"].tolist()
    torch.testing.assert_close(codes, reference_io[f"codes_q_{dtype_name}"], rtol=0, atol=0)


@torch.no_grad()
def test_null_image_indices_match_exactly(codec, dtype_name, reference_io):
    null_images = torch.full_like(image_of(reference_io, DTYPES[dtype_name]), -1.0)  # (1, 3, H, W)
    _, indices = codec.quantize(codec.encoder(null_images))  # `encode` checks the [0, 1] range; -1 lies outside
    assert indices.reshape(-1).tolist() == reference_io["vq_indices_null"].tolist()


@torch.no_grad()
def test_compressed_bytes_match_the_official_bitstream(codec, dtype_name, reference_io):
    compressed = codec.compress(image_of(reference_io, DTYPES[dtype_name]))
    payload = payload_of(reference_io)
    assert compressed["strings"] == [[payload]]
    assert compressed["shape"] == codec.code_grid_size(*reference_io["image_uint8"].shape[-2:])
    assert pack_indices(reference_io["vq_indices"], bits=codec.config.codebook_bits) == payload
    # The official `.cod` file is a 4-byte (H, W) header followed by exactly this payload.
    assert bytes(reference_io["cod_file_uint8"][4:].tolist()) == payload


@torch.no_grad()
def test_decompress_path_matches(codec, dtype_name, reference_io):
    code_grid = codec.code_grid_size(*reference_io["image_uint8"].shape[-2:])
    indices = unpack_indices(payload_of(reference_io), codec.config.codebook_bits, code_grid[0] * code_grid[1])
    indices = indices.reshape(1, *code_grid)
    torch.testing.assert_close(codec.lookup_codes(indices), reference_io[f"codes_q_{dtype_name}"], rtol=0, atol=0)

    expected = reference_io[f"cond_map_{dtype_name}"]
    torch.testing.assert_close(codec.decode_indices(indices), expected, rtol=0, atol=ATOL[dtype_name])
    condition = codec.decompress([[payload_of(reference_io)]], code_grid)["condition"]
    torch.testing.assert_close(condition, expected, rtol=0, atol=ATOL[dtype_name])


@torch.no_grad()
def test_straight_through_forward_matches(codec, dtype_name, reference_io):
    outputs = codec(image_of(reference_io, DTYPES[dtype_name]))
    expected = reference_io[f"cond_map_st_{dtype_name}"]
    torch.testing.assert_close(outputs["condition"], expected, rtol=0, atol=ATOL[dtype_name])
    assert outputs["indices"].reshape(-1).tolist() == reference_io["vq_indices"].tolist()


@torch.no_grad()
def test_null_condition_matches(codec, dtype_name, reference_io):
    null_condition = codec.null_condition(*reference_io["image_uint8"].shape[-2:])
    expected = reference_io[f"null_map_{dtype_name}"]
    torch.testing.assert_close(null_condition, expected, rtol=0, atol=ATOL[dtype_name])


def test_official_packing_vectors(cod_official_dir: Path):
    # Stand-alone vectors of the official packer: `pack_b{bits}_n{count}_indices` and `..._bytes`, in any io file.
    checked = 0
    for path in sorted(cod_official_dir.glob("tiny_*_io.safetensors")):
        tensors = load_file(path)
        for name in sorted(tensors):
            match = re.fullmatch(r"pack_b(\d+)_n(\d+)_indices", name)
            if match is None:
                continue
            bits, indices = int(match.group(1)), tensors[name].tolist()
            expected = bytes(tensors[name.replace("_indices", "_bytes")].tolist())
            assert len(indices) == int(match.group(2))
            assert pack_indices(indices, bits) == expected, f"{path.name}: {name}"
            assert unpack_indices(expected, bits, len(indices)).tolist() == indices, f"{path.name}: {name}"
            checked += 1
    assert checked > 0, f"no pack_* vectors in {cod_official_dir}"
