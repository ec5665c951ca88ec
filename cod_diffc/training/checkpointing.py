"""Atomic training checkpoints.

A checkpoint is the `accelerate` state (model, optimiser and RNG states, safetensors for the model), the EMA
(`ema.safetensors`) and `trainer_state.json`, written into `checkpoints/.checkpoint-N.partial`, flushed to disk and
then renamed to `checkpoints/checkpoint-N`. The rename is the commit: a directory named `checkpoint-N` is always
complete, so a run killed at any moment (even with SIGKILL) leaves the previous checkpoints intact, and resuming
picks the newest complete one. Old checkpoints are renamed away before they are deleted for the same reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file

from cod_diffc.training.ema import ExponentialMovingAverage


CHECKPOINTS_DIRNAME = "checkpoints"
EMA_FILENAME = "ema.safetensors"
MODEL_FILENAME = "model.safetensors"  # written by `Accelerator.save_state`
STATE_FILENAME = "trainer_state.json"
# A saved `CodPipeline`: the components whose weights training continues from.
PIPELINE_INDEX_FILENAME = "model_index.json"
PIPELINE_TRAINED_COMPONENTS = ("transformer", "condition_codec")
PIPELINE_WEIGHTS_FILENAME = "diffusion_pytorch_model.safetensors"
_CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run directory, as `(step, path)` sorted by step."""
    directory = Path(output_dir) / CHECKPOINTS_DIRNAME
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _CHECKPOINT_PATTERN.fullmatch(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from either itself or a run directory (its newest checkpoint)."""
    path = Path(path)
    if (path / STATE_FILENAME).is_file():
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoint in {path} (expected {CHECKPOINTS_DIRNAME}/checkpoint-N folders)")
    return checkpoints[-1][1]


def remove_incomplete(output_dir: str | Path) -> None:
    """Deletes what an interrupted save or clean-up left behind (`.partial` and `.deleting` folders)."""
    directory = Path(output_dir) / CHECKPOINTS_DIRNAME
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.startswith(".") and path.suffix in (".partial", ".deleting"):
                shutil.rmtree(path, ignore_errors=True)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(directory: Path) -> None:
    """Flushes every file under `directory`, then the directories themselves, to disk."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            with path.open("rb") as file:
                os.fsync(file.fileno())
        elif path.is_dir():
            _fsync_directory(path)
    _fsync_directory(directory)


def _remove_checkpoint(path: Path) -> None:
    # Renamed away first, so that no half-deleted folder ever carries a checkpoint's name.
    doomed = path.with_name(f".{path.name}.deleting")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | Path,
    step: int,
    ema: ExponentialMovingAverage,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Saves a checkpoint of step `step` atomically and keeps the `keep` newest. Call on every process.

    Args:
        accelerator: the run's accelerator (its prepared model and optimiser are saved).
        output_dir: the run directory.
        step: the optimiser step reached.
        ema: the EMA of the denoiser.
        state: JSON-able trainer state (step, configuration, counters).
        keep: number of checkpoints to keep, at least 1.

    Returns:
        The committed checkpoint directory.
    """
    directory = Path(output_dir) / CHECKPOINTS_DIRNAME
    final = directory / f"checkpoint-{step:08d}"
    partial = directory / f".checkpoint-{step:08d}.partial"
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial), safe_serialization=True)
    ema_state = ema.state_dict()  # gathers sharded tensors: every process takes part
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_file({name: value.cpu().contiguous() for name, value in ema_state.items()}, str(partial / EMA_FILENAME))
        (partial / STATE_FILENAME).write_text(json.dumps(state, indent=2))
        _fsync_tree(partial)
        if final.exists():  # a step saved before, by a run resumed from an older checkpoint
            _remove_checkpoint(final)
        os.replace(partial, final)
        _fsync_directory(directory)
        for _, old in list_checkpoints(output_dir)[:-keep]:
            _remove_checkpoint(old)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: str | Path, ema: ExponentialMovingAverage) -> dict[str, Any]:
    """Restores model, optimiser, RNG states and EMA from a checkpoint and returns its trainer state."""
    path = resolve_checkpoint(path)
    accelerator.load_state(str(path))
    ema.load_state_dict(load_file(str(path / EMA_FILENAME), device=str(accelerator.device)))
    return json.loads((path / STATE_FILENAME).read_text())


def read_checkpoint_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Path]:
    """The model and EMA tensors, in float32 on the CPU, of a checkpoint, of the newest checkpoint of a run directory,
    or of a saved `CodPipeline` (a folder with `model_index.json`, such as an export or the embedded model: its
    weights serve as both, and the training-only modules are absent)."""
    path = Path(path)
    if (path / PIPELINE_INDEX_FILENAME).is_file():
        weights = {}
        for component in PIPELINE_TRAINED_COMPONENTS:
            file = path / component / PIPELINE_WEIGHTS_FILENAME
            if not file.is_file():
                raise FileNotFoundError(f"{path} is a pipeline folder without {component}/{PIPELINE_WEIGHTS_FILENAME}")
            weights.update({f"{component}.{name}": value.float() for name, value in load_file(str(file)).items()})
        return weights, dict(weights), path
    path = resolve_checkpoint(path)
    return load_file(str(path / MODEL_FILENAME)), load_file(str(path / EMA_FILENAME)), path


def match_init_weights(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], init_partial: list[str], path: str | Path
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """
    Which tensors of `source` (read from `path`, a `model.init_from`) start a model whose state is `target`.

    Returns:
        `(shared, reshaped)`: the tensors to load, and the names of the `init_partial` tensors that `target` has in
        another shape (they start fresh).

    Raises:
        `ValueError`: naming a tensor on one side only, or of another shape, whose prefix `init_partial` does not
            list.
    """
    partial = tuple(init_partial)
    mismatched = sorted(set(source) ^ set(target))
    unexplained = [name for name in mismatched if not name.startswith(partial)] if partial else mismatched
    if unexplained:
        raise ValueError(
            f"model.init_from {path} does not match this model: {len(unexplained)} tensor(s) present on one side "
            f"only, e.g. {unexplained[:4]}; list their prefixes in model.init_partial if that is intended"
        )
    shared, reshaped = {}, set()
    for name, value in source.items():
        if name not in target:
            continue
        if value.shape == target[name].shape:
            shared[name] = value
        elif partial and name.startswith(partial):
            reshaped.add(name)  # e.g. a patch embedding of another patch size
        else:
            raise ValueError(
                f"model.init_from {path}: {name} has shape {tuple(value.shape)}, this model "
                f"{tuple(target[name].shape)}; list its prefix in model.init_partial to start it fresh"
            )
    return shared, reshaped
