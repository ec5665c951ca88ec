"""Packages a trained pipeline as an embedded model: float16 safetensors in `cod_diffc/weights/NAME`.

A `CodPipeline` (the embedded CoD) or a `LatentDiffusionPipeline` (`ldm-small`, the A/B's latent diffusion model):

    python scripts/package_embedded_model.py runs/ldm_small/pipeline --name ldm-small

    cod-diffc train --config configs/train/embedded_latent_small.yaml --resume run.max_steps=N  # exports the EMA
    python scripts/package_embedded_model.py runs/embedded_latent_small_continued/pipeline \
        --vae runs/embedded_vae_decoder/vae --guidance-scale 1.0 --name cod-latent-small

A latent model may take its autoencoder from another export (`--vae`: one with the same encoder, checked tensor by
tensor in float16, such as the decoder-only continuation `configs/train/embedded_vae_decoder.yaml`), and any model a
new default guidance scale (`--guidance-scale`, measured by `benchmarks/guidance_ab.py`); `--output DIR` writes the
package elsewhere, to measure it before it ships. The package data is capped (30 MB for the default model); a larger
result is reported and nothing is written. The cap counts every model shipped beside this one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL, WEIGHTS_DIR
from cod_diffc.pipelines.pipeline_cod import CodPipeline
from cod_diffc.pipelines.pipeline_latent_diffusion import LatentDiffusionPipeline
from cod_diffc.training.export import save_atomically


PIPELINE_CLASSES = {cls.__name__: cls for cls in (CodPipeline, LatentDiffusionPipeline)}
"""The pipelines an embedded model may be, by the `_class_name` of their `model_index.json`."""


def folder_megabytes(folder: Path) -> float:
    """Size of every file under `folder`, in MB (10^6 bytes)."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", type=Path, help="saved pipeline folder (a training run's `pipeline/`)")
    parser.add_argument("--name", default=DEFAULT_EMBEDDED_MODEL, help="folder name under cod_diffc/weights/")
    parser.add_argument("--vae", type=Path, help="AutoencoderKL folder to replace a latent pipeline's `vae`")
    parser.add_argument("--guidance-scale", type=float, help="new default guidance scale of the pipeline")
    parser.add_argument("--output", type=Path, help="write the package to OUTPUT/NAME instead of cod_diffc/weights")
    parser.add_argument(
        "--max-megabytes", type=float, default=30.0, help="refuse to ship more than this in all (every embedded model)"
    )
    args = parser.parse_args()

    pipeline_class = PIPELINE_CLASSES[json.loads((args.pipeline / "model_index.json").read_text())["_class_name"]]
    pipeline = pipeline_class.from_pretrained(str(args.pipeline), local_files_only=True, dtype=torch.float16)
    if pipeline_class is not CodPipeline and (args.vae is not None or args.guidance_scale is not None):
        raise SystemExit("error: --vae and --guidance-scale apply to CodPipeline folders")
    if args.vae is not None:
        if pipeline.vae is None:
            raise SystemExit(f"error: {args.pipeline} is a pixel-space pipeline; --vae applies to latent ones")
        vae = AutoencoderKL.from_pretrained(args.vae, local_files_only=True, torch_dtype=torch.float16)
        trained_on = pipeline.vae.state_dict()
        for name, value in vae.state_dict().items():
            if name.startswith(("encoder.", "quant_conv.")) and not torch.equal(value, trained_on[name]):
                raise SystemExit(
                    f"error: {args.vae} has another encoder ({name} differs) than the one the model was trained on"
                )
        pipeline.register_modules(vae=vae)
    if args.guidance_scale is not None:
        pipeline.register_to_config(default_guidance_scale=args.guidance_scale)
    weights_dir = WEIGHTS_DIR if args.output is None else args.output
    others = sum(
        folder_megabytes(folder) for folder in weights_dir.glob("*") if folder.is_dir() and folder.name != args.name
    )
    with tempfile.TemporaryDirectory() as scratch:  # measured before the shipped model is touched
        megabytes = folder_megabytes(save_atomically(pipeline, Path(scratch) / args.name))
    if others + megabytes > args.max_megabytes:
        raise SystemExit(
            f"error: {args.name} takes {megabytes:.1f} MB beside {others:.1f} MB of other models, more than "
            f"--max-megabytes {args.max_megabytes} in all; nothing was written"
        )
    destination = save_atomically(pipeline, weights_dir / args.name)
    print(f"wrote {destination} ({megabytes:.1f} MB; {others + megabytes:.1f} MB of embedded models in all)")


if __name__ == "__main__":
    main()
