"""The embedded ldm-small through the `ldm` backbone on a 64 x 64 centre crop of the package's sample image: the
slice tests/backbones/test_ldm_small.py holds to loose bounds, measured.

    python benchmarks/ldm_small_check.py

Writes `results/ldm_small_check.json`: the clean latent's mean squared error relative to its energy after one
denoiser call from noise levels t = 0.2, 0.5 and 0.8 (and of the noisy latent rescaled, `z_t / alpha`), and DiffC
with 8 steps (chunked coder, 10-bit chunks) cut after 2, 4 and 8 steps: bytes, bpp and PSNR of the posterior-mean
decode, beside the PSNR of the image's mean colour.
"""

import json
import math
import subprocess
from importlib.resources import files
from pathlib import Path

import torch

from cod_diffc.backbones import load_backbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import DiffCCodec
from cod_diffc.image_files import centre_square, load_image


ROOT = Path(__file__).resolve().parents[1]
TIMES = (0.2, 0.5, 0.8)
STOP_STEPS = [2, 4, 8]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).square().mean()))


def main() -> None:
    adapter = load_backbone("ldm")
    image = centre_square(load_image(files("cod_diffc") / "assets" / "sample.png"), 64)  # (1, 3, 64, 64)
    clean = adapter.encode_image(image)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    energy = float(clean.square().mean())
    denoising = []
    for t in TIMES:
        time = torch.tensor(t)
        alpha, sigma = adapter.alpha_sigma(time)
        z_t = alpha * clean + sigma * noise
        x0_hat, _ = adapter.predict_x0_and_epsilon(z_t, time, None, 1.0)
        denoising.append(
            {
                "t": t,
                "relative_mse_x0_hat": float((x0_hat - clean).square().mean()) / energy,
                "relative_mse_rescaled_z_t": float((z_t / alpha - clean).square().mean()) / energy,
            }
        )
    codec = DiffCCodec(schedule=DiffCSchedule(num_steps=8), simulator=ChunkedPFRSimulator(max_chunk_bits=10))
    coded = codec.compress_many(image, adapter, stop_steps=STOP_STEPS, progress=False)
    diffc = [
        {
            "stop_step": step,
            "bytes": len(point.stream),
            "bpp": 8 * len(point.stream) / (64 * 64),
            "psnr_mean_decode": psnr(codec.decompress(point.stream, adapter, method="mean", progress=False), image),
        }
        for step, point in zip(STOP_STEPS, coded)
    ]
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    report = {
        "command": "python benchmarks/ldm_small_check.py",
        "commit": commit.stdout.strip(),
        "model_fingerprint": adapter.fingerprint().hex(),
        "denoising": denoising,
        "diffc_8_steps": diffc,
        "psnr_mean_colour": psnr(image.mean(dim=(2, 3), keepdim=True).expand_as(image), image),
    }
    output = ROOT / "results" / "ldm_small_check.json"
    output.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
