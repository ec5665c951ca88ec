"""Frozen streams: files written by an earlier version must decode to what they decoded to then, up to the last-bit
rounding that differs between CPUs (every format version this reader keeps), and the same input must still encode to the same bytes of the current version. Any change to the stream format, the shared randomness, the
channel coders, the index coding or the backbones' numerics fails here (regenerate only with a format-version
bump: README.md in this folder)."""

import pytest
import torch
from safetensors.torch import load_file

from cod_diffc.codecs import read_container, stream_codec
from cod_diffc.diffc import read_stream

from golden_cases import CASES, CASES_BY_VERSION, CURRENT_VERSION, adapter_of, decode_case, encode_case, expected_file


DECODE_ATOL = 1e-6  # a few float32 ulps at the decoded values' scale (|x| <= 4): rounding, not a format change


@pytest.fixture(scope="module")
def expected() -> dict[int, dict[str, torch.Tensor]]:
    return {version: load_file(str(expected_file(version))) for version in CASES_BY_VERSION}


VERSIONED_CASES = [(version, case) for version, cases in sorted(CASES_BY_VERSION.items()) for case in cases]


@pytest.mark.parametrize(("version", "case"), VERSIONED_CASES, ids=lambda item: getattr(item, "name", f"v{item}"))
def test_golden_stream_decodes_bit_for_bit(case, version, expected):
    stream = case.stream_path(version).read_bytes()
    assert stream[3] == version and stream_codec(stream) == case.codec
    if case.codec == "diffc":
        parsed = read_stream(stream)
        assert (parsed.backbone, parsed.stop_step, parsed.height) == (case.backbone, case.stop_step, case.side)
    else:
        assert (read_container(stream).backbone, read_container(stream).height) == (case.backbone, case.side)
    decoded = decode_case(case, stream, adapter_of(case))
    for key, value in decoded.items():
        # Bit for bit on the machine that wrote the files; another CPU may round a matrix product's last bit
        # differently (a 1-ulp change of the tiny CoD's pooled-steps latent on an AMD EPYC), never more.
        torch.testing.assert_close(
            value, expected[version][f"{case.name}/{key}"], rtol=0, atol=DECODE_ATOL, msg=f"{case.name}: {key}"
        )


def test_every_format_version_decodes_to_the_same_outputs(expected):
    """Format 2 moved DiffC's fields into the shared container and changed nothing else."""
    for version in CASES_BY_VERSION:
        for key, value in expected[version].items():
            assert torch.equal(value, expected[CURRENT_VERSION][key]), key


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_golden_input_encodes_to_the_golden_bytes(case):
    assert encode_case(case, adapter_of(case)) == case.stream_path().read_bytes()
