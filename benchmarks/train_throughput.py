"""Training throughput of `cod-diffc train` (images per second), the median over several optimiser steps.

Runs the small configurations on the device accelerate picks (the GPU when there is one, where it also times the
released 256-px stage-1 configuration, with bf16) on synthetic images, and writes `results/train_throughput.json`.
Hide the GPU (`CUDA_VISIBLE_DEVICES=`) to measure the CPU on a GPU machine.

    python benchmarks/train_throughput.py [--steps 10] [--warmup 3] [--output results/train_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch
import yaml
from accelerate.state import AcceleratorState

from cod_diffc.training import AutoencoderTrainer, CodTrainer
from cod_diffc.training.autoencoder import build_autoencoder
from cod_diffc.training.config import apply_overrides, config_from_dict


REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs" / "train"


def write_synthetic_images(folder: Path, count: int, side: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:side, 0:side]
    for index in range(count):
        pixels = rng.uniform(0, 160, 3) + rng.uniform(0, 1, 3) * (rows[..., None] + cols[..., None]) * 128 / side
        PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{index:03d}.png")


def measure(config_name: str, overrides: list[str], device: str, steps: int, warmup: int, work_dir: Path) -> dict:
    """Median step time of `configs/train/<config_name>.yaml` with `overrides`."""
    values = yaml.safe_load((CONFIG_DIR / f"{config_name}.yaml").read_text())
    resolution = int(apply_overrides(values, overrides)["data"]["resolution"])
    images = work_dir / f"images_{resolution}"
    if not images.is_dir():
        write_synthetic_images(images, 24, resolution)
    output_dir = work_dir / f"run_{config_name}_{device}_{len(list(work_dir.glob('run_*')))}"
    base = [f"data.train_dir={images}", f"run.output_dir={output_dir}", "data.num_workers=2", "validation.every=0"]
    if values["model"].get("vae_path"):  # a latent model on one of the project's autoencoders: a random one of it
        vae_dir = work_dir / "vae"
        if not vae_dir.is_dir():
            autoencoder = yaml.safe_load((CONFIG_DIR / "embedded_vae.yaml").read_text())["model"]["autoencoder"]
            build_autoencoder(autoencoder).save_pretrained(vae_dir)
        base.append(f"model.vae_path={vae_dir}")
    config = config_from_dict(apply_overrides(values, base + overrides))
    AcceleratorState._reset_state(reset_partial_state=True)  # each case sets its own mixed precision
    trainer = (AutoencoderTrainer if config.model.kind == "autoencoder" else CodTrainer)(config)
    data = trainer.data_iterator()
    seconds = []
    for index in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step(data)
        if device == "cuda":
            torch.cuda.synchronize()
        if index >= warmup:
            seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    parameters = sum(p.numel() for p in trainer.training_model.parameters())
    return {
        "config": config_name,
        "device": device,
        "overrides": overrides,
        "resolution": config.data.resolution,
        "batch_size": config.optim.batch_size,
        "mixed_precision": trainer.accelerator.mixed_precision,
        "parameters": parameters,
        "step_seconds_median": median,
        "images_per_second": config.optim.batch_size / median,
        "steps_timed": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "results" / "train_throughput.json")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    cases = [("tiny", ["optim.batch_size=8"]), ("small_pixel", ["optim.batch_size=8"])]
    if device == "cpu":  # the #16 candidates' settings: bf16 autocast for the autoencoder, 128 px for the latent CoD
        cases += [
            ("embedded_vae", ["run.mixed_precision=bf16"]),
            ("embedded_vae", ["run.mixed_precision='no'"]),
            ("embedded_latent_small", ["data.resolution=128"]),
            ("embedded_latent_small", ["data.resolution=256"]),
        ]
    if device == "cuda":
        cases += [("small_pixel", []), ("cod_pixel_stage1_256", ["optim.batch_size=16"])]
    results = []
    with tempfile.TemporaryDirectory() as work_dir:
        for config_name, overrides in cases:
            result = measure(config_name, overrides, device, args.steps, args.warmup, Path(work_dir))
            results.append(result)
            print(
                f"{config_name:<22} {device:<4} batch {result['batch_size']:>3} @ {result['resolution']} px: "
                f"{result['images_per_second']:8.2f} images/s ({result['step_seconds_median'] * 1e3:.1f} ms/step)"
            )
    report = {
        "name": "train_throughput",
        "description": "cod-diffc train: median optimiser-step time on synthetic images (data loading included)",
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
