"""From training weights to a [`CodPipeline`]: the EMA denoiser in fresh components, saved as a diffusers folder
(atomically, as every export of a training run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from diffusers import AutoencoderKL, ModelMixin

from cod_diffc.models.condition_codec_cod import CodConditionCodec
from cod_diffc.models.transformer_cod import CodTransformer2DModel
from cod_diffc.pipelines.pipeline_cod import CodPipeline
from cod_diffc.schedulers.scheduling_cod_flow_match import CodFlowMatchScheduler


COMPONENTS = ("transformer", "condition_codec")


def build_pipeline(
    transformer: CodTransformer2DModel,
    condition_codec: CodConditionCodec,
    vae: AutoencoderKL | None,
    guidance_scale: float,
) -> CodPipeline:
    """A pipeline with fresh float32 copies of the (trained) components' architecture, on their device.

    Fill it with [`load_ema_weights`]. The VAE, frozen during training, is shared rather than copied.
    """
    pipeline = CodPipeline(
        transformer=CodTransformer2DModel.from_config(transformer.config),
        condition_codec=CodConditionCodec.from_config(condition_codec.config),
        scheduler=CodFlowMatchScheduler(),
        vae=vae,
        default_guidance_scale=guidance_scale,
    )
    pipeline.to(transformer.device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@torch.no_grad()
def load_ema_weights(pipeline: CodPipeline, ema_state: dict[str, torch.Tensor]) -> None:
    """Copies the EMA tensors (named `transformer.*` and `condition_codec.*`) into the pipeline's components."""
    for component in COMPONENTS:
        prefix = f"{component}."
        state = {name[len(prefix) :]: value for name, value in ema_state.items() if name.startswith(prefix)}
        getattr(pipeline, component).load_state_dict(state, strict=True)


def save_atomically(model: CodPipeline | ModelMixin, output_dir: str | Path) -> Path:
    """Saves a pipeline or a model (safetensors) so that its class's `from_pretrained(output_dir)` loads it.

    The folder is written beside its destination and renamed into place, so it is never seen half-written; a save
    that fails leaves neither a partial folder nor a changed destination.
    """
    output_dir = Path(output_dir)
    partial = output_dir.with_name(f".{output_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(str(partial), safe_serialization=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if output_dir.exists():
        previous = output_dir.with_name(f".{output_dir.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(output_dir, previous)
        os.replace(partial, output_dir)
        shutil.rmtree(previous)
    else:
        os.replace(partial, output_dir)
    return output_dir
