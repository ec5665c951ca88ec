"""Regenerates the frozen streams of `tests/golden/` (see README.md there: only with a format-version bump), or
adds the cases of a new codec.

    python tests/golden/make_golden_streams.py --i-am-bumping-the-format-version
    python tests/golden/make_golden_streams.py --new-cases-only

The first writes every case's input PNG and current-version stream, and `expected.safetensors` with what they decode
to (move the previous version's streams and `expected.safetensors` to `v<N>/` first); the second only the cases
that have no stream yet, adding their outputs to `expected.safetensors`. The tiny models (`tiny_cod/`,
`tiny_cod_lite/`, float16 weights) are written only if missing, since existing streams carry their fingerprints.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for tiny_models

from safetensors.torch import load_file

import cod_diffc
from cod_diffc.pipelines import get_named_config

from golden_cases import CASES, TINY_MODELS, adapter_of, decode_case, encode_case, expected_file, save_input_image
from tiny_models import save_tiny_cod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--i-am-bumping-the-format-version",
        action="store_true",
        help="golden streams freeze the stream format: regenerate them only together with a format-version bump",
    )
    which.add_argument("--new-cases-only", action="store_true", help="write only the cases that have no stream yet")
    new_cases_only = parser.parse_args().new_cases_only
    torch.set_num_threads(1)
    for directory, name in TINY_MODELS.values():
        if not directory.exists():
            save_tiny_cod(directory, seed=2024, name=name)
            pipeline_class = getattr(cod_diffc, get_named_config(name).pipeline)
            pipeline_class.from_pretrained(directory).to(torch.float16).save_pretrained(directory)

    expected = load_file(str(expected_file())) if new_cases_only else {}
    for case in CASES:
        if new_cases_only and case.stream_path().exists():
            continue
        save_input_image(case)
        adapter = adapter_of(case)
        stream = encode_case(case, adapter)
        case.stream_path().write_bytes(stream)
        for key, value in decode_case(case, stream, adapter_of(case)).items():
            expected[f"{case.name}/{key}"] = value
        print(f"{case.name}: {len(stream)} bytes")
    save_file(expected, str(expected_file()))


if __name__ == "__main__":
    main()
