"""Frozen streams: files written by an earlier version must decode to exactly what they decoded to then, and the
same input must still encode to the same bytes. Any change to the stream format, the shared randomness, the
channel coders, the index coding or the backbones' numerics fails here (regenerate only with a format-version
bump: README.md in this folder)."""

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc.diffc import read_stream

from golden_cases import CASES, EXPECTED_FILE, adapter_of, decode_case, encode_case


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(EXPECTED_FILE))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden_stream_decodes_bit_for_bit(case, expected):
    stream = case.stream_path.read_bytes()
    parsed = read_stream(stream)
    assert (parsed.backbone, parsed.stop_step, parsed.height) == (case.backbone, case.stop_step, case.side)
    decoded = decode_case(stream, adapter_of(case))
    for key, value in decoded.items():
        assert torch.equal(value, expected[f"{case.name}/{key}"]), f"{case.name}: decoded {key} changed"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden_input_encodes_to_the_golden_bytes(case):
    assert encode_case(case, adapter_of(case)) == case.stream_path.read_bytes()
