"""Packages a trained CoD pipeline as an embedded model: float16 safetensors in `cod_diffc/weights/NAME`.

    cod-diffc train --config configs/train/embedded_pixel_small.yaml --resume run.max_steps=N   # exports the EMA
    python scripts/package_embedded_model.py runs/embedded_small_pixel/pipeline --name cod-pixel-small

The package data is capped (30 MB for the default model); a larger result is reported and nothing is written.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from cod_diffc.pipelines.embedded_models import WEIGHTS_DIR
from cod_diffc.pipelines.pipeline_cod import CodPipeline
from cod_diffc.training.export import save_atomically


def folder_megabytes(folder: Path) -> float:
    """Size of every file under `folder`, in MB (10^6 bytes)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", type=Path, help="saved CodPipeline folder (a training run's `pipeline/`)")
    parser.add_argument("--name", default="cod-pixel-small", help="folder name under cod_diffc/weights/")
    parser.add_argument("--max-megabytes", type=float, default=30.0, help="refuse a model larger than this")
    args = parser.parse_args()

    pipeline = CodPipeline.from_pretrained(str(args.pipeline), local_files_only=True, dtype=torch.float16)
    with tempfile.TemporaryDirectory() as scratch:  # measured before the shipped model is touched
        megabytes = folder_megabytes(save_atomically(pipeline, Path(scratch) / args.name))
    if megabytes > args.max_megabytes:
        raise SystemExit(
            f"error: {args.name} takes {megabytes:.1f} MB, more than --max-megabytes {args.max_megabytes}; "
            "nothing was written"
        )
    destination = save_atomically(pipeline, WEIGHTS_DIR / args.name)
    print(f"wrote {destination} ({megabytes:.1f} MB)")


if __name__ == "__main__":
    main()
