"""Regenerates the frozen streams of `tests/golden/` (see README.md there: only with a format-version bump).

    python tests/golden/make_golden_streams.py --i-am-bumping-the-format-version

Writes every case's input PNG and current-version stream, and `expected.safetensors` with what they decode to; the
tiny CoD model (`tiny_cod/`, float16 weights) only if it is missing, since the older versions' streams carry its
fingerprint. Move the previous version's streams and `expected.safetensors` to `v<N>/` first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for tiny_models

from cod_diffc import CodPipeline

from golden_cases import CASES, TINY_COD_DIR, adapter_of, decode_case, encode_case, expected_file, save_input_image
from tiny_models import save_tiny_cod


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--i-am-bumping-the-format-version",
        action="store_true",
        required=True,
        help="golden streams freeze the stream format: regenerate them only together with a format-version bump",
    )
    parser.parse_args()
    torch.set_num_threads(1)
    if not TINY_COD_DIR.exists():
        save_tiny_cod(TINY_COD_DIR, seed=2024)
        CodPipeline.from_pretrained(TINY_COD_DIR).to(torch.float16).save_pretrained(TINY_COD_DIR)

    expected = {}
    for case in CASES:
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
