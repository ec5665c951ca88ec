"""Validation of the EMA model: reconstructions of a fixed image subset from their condition, and their PSNR."""

from __future__ import annotations

import numpy as np
import torch

from cod_diffc.evaluation.metrics import psnr
from cod_diffc.pipelines.pipeline_cod import CodPipeline


@torch.no_grad()
def reconstruct(
    pipeline: CodPipeline, images: torch.Tensor, num_inference_steps: int, seed: int, batch_size: int
) -> torch.Tensor:
    """Reconstructs uint8 images `(N, 3, H, W)` from their condition with a fixed noise seed; uint8 out."""
    outputs = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(pipeline.device, torch.float32) / 255.0  # (B, 3, H, W)
        generator = torch.Generator(pipeline.device).manual_seed(seed + start)
        result = pipeline(batch, num_inference_steps=num_inference_steps, generator=generator, output_type="latent")
        as_uint8 = pipeline.quantize_uint8(pipeline.to_images(result.images).float())  # (B, H, W, 3)
        outputs.append(torch.from_numpy(as_uint8).permute(0, 3, 1, 2))  # (B, 3, H, W) uint8
    return torch.cat(outputs)


def validate(
    pipeline: CodPipeline, images: torch.Tensor, num_inference_steps: int, seed: int, batch_size: int
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """Mean PSNR of the one-step and the `num_inference_steps`-step reconstructions of `images` (uint8).

    Returns:
        `({"psnr_1step": ..., "psnr_<N>step": ...}, [images, one-step, N-step])`, the last for a picture grid.
    """
    metrics, rows = {}, [images.cpu()]
    for steps in dict.fromkeys([1, num_inference_steps]):
        reconstructions = reconstruct(pipeline, images, steps, seed, batch_size)
        scores = [psnr(a.numpy(), b.numpy()) for a, b in zip(images.cpu(), reconstructions)]
        metrics[f"psnr_{steps}step"] = float(np.mean(scores))
        rows.append(reconstructions)
    return metrics, rows
