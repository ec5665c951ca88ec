"""The training loop on `accelerate` ([`Trainer`]), and [`CodTrainer`], which trains CoD with it from scratch (or from
an earlier stage).

The same code runs on one device and under `accelerate launch` (DDP, or FSDP with an accelerate config file):
accelerate owns the processes, the device placement, mixed precision and the gradient all-reduce.

One optimiser step takes `optim.batch_size` samples (the global batch), split into
`gradient_accumulation_steps` micro-batches per process. Every random draw (image order, crops, noise levels,
noise, condition dropout) is keyed by the run's seed and the sample's global position, so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from cod_diffc.models.cod_diffusion_space import images_to_samples
from cod_diffc.optional_dependencies import require
from cod_diffc.pipelines.pipeline_cod import CodPipeline
from cod_diffc.training.checkpointing import (
    list_checkpoints,
    load_checkpoint,
    match_init_weights,
    read_checkpoint_weights,
    remove_incomplete,
    resolve_checkpoint,
    save_checkpoint,
)
from cod_diffc.training.components import CodComponents, build_components
from cod_diffc.training.config import TrainConfig, config_from_dict
from cod_diffc.training.data import (
    TrainBatchSampler,
    TrainImageDataset,
    find_images,
    load_validation_images,
    split_validation,
)
from cod_diffc.training.ema import ExponentialMovingAverage
from cod_diffc.training.export import build_pipeline, load_ema_weights, save_atomically
from cod_diffc.training.losses import draw_training_noise
from cod_diffc.training.model import CodTrainingModel
from cod_diffc.training.plots import plot_training_curves, save_image_grid
from cod_diffc.training.repa import RepaFeatureEncoder
from cod_diffc.training.validation import validate


logger = logging.getLogger(__name__)

# Settings a resumed run may change; any other difference from the checkpoint's configuration is an error. The EMA
# never feeds back into training, so how it averages may change too.
RESUMABLE_CHANGES = (
    "run.output_dir",
    "run.ema_decay",
    "run.ema_warmup",
    "run.max_steps",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.log_every",
    "data.num_workers",
    "model.init_from",
    "model.init_partial",
    "validation.every",
    "validation.batch_size",
)
METRICS_FILENAME = "metrics.jsonl"
VALIDATION_FILENAME = "validation.jsonl"
EXPORT_DIRNAME = "pipeline"


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one mapping with dotted keys."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; a last line torn by a kill mid-write is dropped with a warning."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ValueError(f"{path}: line {number} is not JSON") from None
            logger.warning("%s: dropping its torn last line", path)
    return records


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("".join(json.dumps(record) + "\n" for record in records))
    partial.replace(path)


class Trainer(ABC):
    """
    The training loop every model of the library shares: data, optimiser, EMA, logs, checkpoints, resuming,
    validation and export. A subclass builds the model and says what a micro-batch's losses are, how the EMA weights
    are validated and what is exported.

    Parameters:
        config ([`TrainConfig`]): the run.
        resume (`bool` or `str`, *optional*, defaults to `False`): `True` continues from the newest checkpoint of
            `run.output_dir` (or starts afresh when it has none); a path continues from that checkpoint or run
            directory. Without it, an output directory that already holds checkpoints is an error.
    """

    export_dirname: str
    """The folder of `run.output_dir` the export goes to."""

    def __init__(self, config: TrainConfig, resume: bool | str = False):
        config.validate()
        require("matplotlib", "training (its loss curves)")  # before hours of training, not at the first plot
        self.config = config
        self.output_dir = Path(config.run.output_dir)
        self.resume_from = self._find_resume_checkpoint(resume)

        self.accelerator = Accelerator(mixed_precision=self._mixed_precision())
        self._log_handler: logging.Handler | None = None
        self.setup_notes: list[str] = []  # what set-up did, logged once the run's log is open
        self.step = 0
        self.skipped_images = 0

        # data
        train_paths, unreadable = find_images(config.data.train_dir)
        train_paths, self.val_paths = split_validation(
            train_paths, config.validation.num_images, config.run.seed, config.data.val_dir
        )
        self.unreadable_images = len(unreadable)
        if unreadable:
            logger.warning("%d unreadable image file(s) skipped", len(unreadable))
        self.train_dataset = TrainImageDataset(
            train_paths,
            config.data.resolution,
            config.run.seed,
            max_short_side=config.data.max_short_side,
            random_flip=config.data.random_flip,
        )
        per_process = config.optim.batch_size // config.optim.gradient_accumulation_steps
        if per_process % self.accelerator.num_processes:
            raise ValueError(
                f"optim.batch_size ({config.optim.batch_size}) must be a multiple of gradient_accumulation_steps x "
                f"processes ({config.optim.gradient_accumulation_steps} x {self.accelerator.num_processes})"
            )
        self.micro_batch_size = per_process // self.accelerator.num_processes

        # model
        torch.manual_seed(config.run.seed)
        training_model = self.build_training_model()
        init_ema_state = self._initialise_from(training_model) if config.model.init_from else None
        if config.model.freeze:
            self._freeze(training_model)
        optimizer = torch.optim.AdamW(
            [parameter for parameter in training_model.parameters() if parameter.requires_grad],
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            eps=config.optim.eps,
            weight_decay=config.optim.weight_decay,
        )
        self.model, self.optimizer = self.accelerator.prepare(training_model, optimizer)
        self.training_model = self.accelerator.unwrap_model(self.model)
        self.ema = ExponentialMovingAverage(self.ema_module(), config.run.ema_decay, config.run.ema_warmup)
        if init_ema_state is not None:
            self.ema.load_state_dict(init_ema_state, strict=False)
        if config.model.freeze:  # frozen tensors take the average's values, which the export holds
            self.ema.copy_to_frozen_parameters()
        self._validation_images: torch.Tensor | None = None

    # ------------------------------------------------------------------------------------------------ the model
    @property
    @abstractmethod
    def model_description(self) -> str:
        """What is trained, for the log."""

    @abstractmethod
    def build_training_model(self) -> nn.Module:
        """The module whose forward returns the loss terms (on the CPU; `accelerate` places it)."""

    def read_init_weights(self, path: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], Path]:
        """The model and EMA tensors that `model.init_from` names (see [`read_checkpoint_weights`]); a subclass
        may accept its own exports as well."""
        return read_checkpoint_weights(path)

    def _initialise_from(self, training_model: nn.Module) -> dict[str, torch.Tensor]:
        """Loads model weights from `model.init_from`; returns the EMA tensors to start the average from."""
        model_state, ema_state, path = self.read_init_weights(self.config.model.init_from)
        own_state = training_model.state_dict()
        shared, reshaped = match_init_weights(model_state, own_state, self.config.model.init_partial, path)
        training_model.load_state_dict(shared, strict=False)
        self.setup_notes.append(
            f"initialised {len(shared)} tensors from {path} ({len(own_state) - len(shared)} fresh)"
        )
        # the EMA takes the tensors it has (its names are those of `ema_module`), less those of another shape
        return {name: value for name, value in ema_state.items() if name not in reshaped}

    def _freeze(self, training_model: nn.Module) -> None:
        """Stops training the parameters under the `model.freeze` prefixes; `ValueError` naming a prefix that no
        parameter has."""
        parameters = dict(training_model.named_parameters())
        for prefix in self.config.model.freeze:
            frozen = [name for name in parameters if name.startswith(prefix)]
            if not frozen:
                raise ValueError(
                    f"model.freeze: no parameter of the model starts with {prefix!r} (its parameters start with "
                    f"{sorted({'.'.join(name.split('.')[:2]) + '.' for name in parameters})})"
                )
            for name in frozen:
                parameters[name].requires_grad_(False)
        trainable = sum(parameter.numel() for parameter in parameters.values() if parameter.requires_grad)
        total = sum(parameter.numel() for parameter in parameters.values())
        self.setup_notes.append(f"model.freeze: training {trainable:,} of {total:,} parameters")

    @abstractmethod
    def ema_module(self) -> nn.Module:
        """The part of `self.training_model` whose average is validated and exported."""

    @abstractmethod
    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss terms of a micro-batch (`"loss"`, the weighted total, among them), computed through
        `self.model` so that gradients are synchronised."""

    @abstractmethod
    def validate_ema(
        self, ema_state: dict[str, torch.Tensor], images: torch.Tensor
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        """Metrics of the EMA weights on the validation images (`(N, 3, R, R)` uint8), named `psnr*` for the plot,
        and rows of uint8 images for the picture grid (the first being `images`)."""

    @abstractmethod
    def export_ema(self, ema_state: dict[str, torch.Tensor], path: Path) -> None:
        """Writes the EMA model to `path` (main process only)."""

    # ------------------------------------------------------------------------------------------------ set-up
    def _mixed_precision(self) -> str:
        setting = self.config.run.mixed_precision
        if setting != "auto":
            return setting
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"

    def _find_resume_checkpoint(self, resume: bool | str) -> Path | None:
        existing = list_checkpoints(self.output_dir)
        if resume is False:
            if existing:
                raise ValueError(
                    f"{self.output_dir} already holds checkpoints (newest: step {existing[-1][0]}); pass --resume to "
                    "continue that run, or choose another run.output_dir"
                )
            return None
        if resume is True:
            return existing[-1][1] if existing else None
        return resolve_checkpoint(resume)

    def _setup_logging(self) -> None:
        package_logger = logging.getLogger("cod_diffc.training")
        if not self.accelerator.is_main_process:
            package_logger.setLevel(logging.WARNING)
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        package_logger.setLevel(logging.INFO)
        self._log_handler = logging.FileHandler(self.output_dir / "train.log")
        self._log_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        package_logger.addHandler(self._log_handler)

    # ------------------------------------------------------------------------------------------------ loop
    def _learning_rate(self, step: int) -> float:
        warmup = self.config.optim.warmup_steps
        return self.config.optim.lr * min(1.0, (step + 1) / warmup) if warmup else self.config.optim.lr

    def data_iterator(self) -> Iterator[dict[str, torch.Tensor]]:
        """The endless micro-batch stream of this process, starting after the steps already done."""
        sampler = TrainBatchSampler(
            len(self.train_dataset),
            self.micro_batch_size,
            self.config.run.seed,
            process_index=self.accelerator.process_index,
            num_processes=self.accelerator.num_processes,
            start_micro_batch=self.step * self.config.optim.gradient_accumulation_steps,
        )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            num_workers=self.config.data.num_workers,
            pin_memory=self.accelerator.device.type == "cuda",
            persistent_workers=self.config.data.num_workers > 0,
        )
        return iter(loader)

    def _micro_step(self, batch: dict[str, torch.Tensor], sync: bool) -> dict[str, torch.Tensor]:
        accumulation = self.config.optim.gradient_accumulation_steps
        with contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model):
            terms = self.loss_terms(batch)
            self.accelerator.backward(terms["loss"] / accumulation)
        return {name: value.detach() / accumulation for name, value in terms.items()}

    def train_step(self, data: Iterator[dict[str, torch.Tensor]]) -> dict[str, float]:
        """One optimiser step (all micro-batches); returns the losses averaged over the global batch."""
        lr = self._learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        accumulation = self.config.optim.gradient_accumulation_steps
        totals: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.accelerator.device))
        skipped = 0
        for micro in range(accumulation):
            batch = next(data)
            skipped += int(batch["skipped"].sum())
            for name, value in self._micro_step(batch, sync=micro == accumulation - 1).items():
                totals[name] += value
        grad_norm = None
        if self.config.optim.max_grad_norm is not None:
            grad_norm = self.accelerator.clip_grad_norm_(self.model.parameters(), self.config.optim.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.ema.update(self.step)

        names = sorted(totals)
        local = torch.stack([totals[name].float() for name in names] + [totals["loss"].new_tensor(float(skipped))])
        reduced = self.accelerator.reduce(local, reduction="mean").tolist()
        self.skipped_images += round(reduced[-1] * self.accelerator.num_processes)
        record = {"step": self.step, "lr": lr}
        record.update({("loss" if name == "loss" else f"loss/{name}"): value for name, value in zip(names, reduced)})
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        return record

    def train(self) -> Path:
        """Runs (or resumes) the training to `run.max_steps`, then exports the EMA model.

        Returns:
            The exported folder, `run.output_dir/{export_dirname}`.
        """
        self._setup_logging()
        try:
            return self._train()
        finally:
            if self._log_handler is not None:
                logging.getLogger("cod_diffc.training").removeHandler(self._log_handler)
                self._log_handler.close()

    def _train(self) -> Path:
        config = self.config
        if self.accelerator.is_main_process:
            remove_incomplete(self.output_dir)
        self.accelerator.wait_for_everyone()
        if self.resume_from is not None:
            self._resume(self.resume_from)  # refuses a changed configuration before config.yaml is rewritten
        if self.accelerator.is_main_process:
            (self.output_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        logger.info(
            "training %s for %d steps: global batch %d (%d per process x %d processes x %d accumulation), %d "
            "training images, %d validation images, %d unreadable files skipped",
            self.model_description,
            config.run.max_steps,
            config.optim.batch_size,
            self.micro_batch_size,
            self.accelerator.num_processes,
            config.optim.gradient_accumulation_steps,
            len(self.train_dataset),
            len(self.val_paths),
            self.unreadable_images,
        )
        for note in self.setup_notes:
            logger.info(note)

        data = self.data_iterator()
        metrics_path = self.output_dir / METRICS_FILENAME
        progress = tqdm(
            total=config.run.max_steps,
            initial=self.step,
            desc="cod-diffc train",
            disable=not self.accelerator.is_main_process,
            dynamic_ncols=True,
        )
        # Throughput counts the training steps only, not validation and checkpoints.
        interval_seconds, interval_steps = 0.0, 0
        while self.step < config.run.max_steps:
            step_start = time.perf_counter()
            record = self.train_step(data)
            step_seconds = time.perf_counter() - step_start
            interval_seconds, interval_steps = interval_seconds + step_seconds, interval_steps + 1
            images_per_second = config.optim.batch_size / step_seconds
            progress.update(1)
            progress.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{images_per_second:.1f}")
            if not math.isfinite(record["loss"]):
                raise FloatingPointError(f"the loss is {record['loss']} at step {self.step}")
            last_step = self.step == config.run.max_steps

            if self.step % config.run.log_every == 0 or last_step:
                record["images_per_second"] = interval_steps * config.optim.batch_size / interval_seconds
                record["skipped_images"] = self.skipped_images
                if self.accelerator.is_main_process:
                    with metrics_path.open("a") as file:
                        file.write(json.dumps(record) + "\n")
                    logger.info(
                        "step %d: %s", self.step, ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k != "step")
                    )
                interval_seconds, interval_steps = 0.0, 0
            if (config.validation.every and self.step % config.validation.every == 0) or last_step:
                self.run_validation()
            if self.step % config.run.checkpoint_every == 0 or last_step:
                self.save()
        progress.close()
        return self.export()

    # ------------------------------------------------------------------------------------------------ state
    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "samples_seen": self.step * self.config.optim.batch_size,
            "skipped_images": self.skipped_images,
            "config": self.config.to_dict(),
        }

    def save(self) -> Path:
        """Saves an atomic checkpoint of the current step."""
        path = save_checkpoint(
            self.accelerator,
            self.output_dir,
            self.step,
            self.ema,
            self._trainer_state(),
            keep=self.config.run.keep_checkpoints,
        )
        logger.info("saved checkpoint %s", path)
        return path

    def _resume(self, path: Path) -> None:
        state = json.loads((path / "trainer_state.json").read_text())
        # Read back through the dataclasses: keys added since the checkpoint was written take their defaults.
        saved = _flatten(config_from_dict(state["config"]).to_dict())
        current = _flatten(self.config.to_dict())
        changed = sorted(
            key
            for key in set(saved) | set(current)
            if saved.get(key) != current.get(key) and not key.startswith(RESUMABLE_CHANGES)
        )
        if changed:
            raise ValueError(
                f"cannot resume from {path}: the configuration differs in {', '.join(changed)} (only "
                f"{', '.join(RESUMABLE_CHANGES)} may change when resuming)"
            )
        state = load_checkpoint(self.accelerator, path, self.ema)
        self.step = int(state["step"])
        self.skipped_images = int(state["skipped_images"])
        if self.accelerator.is_main_process:
            for filename in (METRICS_FILENAME, VALIDATION_FILENAME):
                records = _read_jsonl(self.output_dir / filename)
                _write_jsonl(self.output_dir / filename, [r for r in records if r["step"] <= self.step])
        logger.info("resumed from %s at step %d", path, self.step)

    def validation_images(self) -> torch.Tensor:
        """The validation subset, `(N, 3, R, R)` uint8 centre crops, loaded once."""
        if self._validation_images is None:
            data = self.config.data
            self._validation_images = load_validation_images(self.val_paths, data.resolution, data.max_short_side)
        return self._validation_images

    def run_validation(self) -> dict[str, float] | None:
        """Validates the EMA weights on the validation subset (main process); logs the metrics, plots and a grid."""
        metrics = None
        ema_state = self.ema.state_dict()  # gathers sharded tensors: every process takes part
        if self.accelerator.is_main_process:
            with self.accelerator.autocast():
                metrics, rows = self.validate_ema(ema_state, self.validation_images())
            record = {"step": self.step, **metrics}
            with (self.output_dir / VALIDATION_FILENAME).open("a") as file:
                file.write(json.dumps(record) + "\n")
            samples_dir = self.output_dir / "samples"
            samples_dir.mkdir(exist_ok=True)
            save_image_grid([row[: min(8, row.shape[0])] for row in rows], samples_dir / f"step_{self.step:08d}.png")
            plot_training_curves(
                _read_jsonl(self.output_dir / METRICS_FILENAME),
                _read_jsonl(self.output_dir / VALIDATION_FILENAME),
                self.output_dir / "loss.png",
            )
            summary = ", ".join(
                f"{name} {value:.2f} dB" if name.startswith("psnr") else f"{name} {value:.4g}"
                for name, value in metrics.items()
            )
            logger.info("validation at step %d: %s", self.step, summary)
        self.accelerator.wait_for_everyone()
        return metrics

    def export(self) -> Path:
        """Writes the EMA model to `run.output_dir/{export_dirname}` and returns its path."""
        path = self.output_dir / self.export_dirname
        ema_state = self.ema.state_dict()
        if self.accelerator.is_main_process:
            self.export_ema(ema_state, path)
            logger.info("exported the EMA model to %s", path)
        self.accelerator.wait_for_everyone()
        return path


class CodTrainer(Trainer):
    """
    Trains a CoD model described by a [`TrainConfig`]: rectified flow, the codec's reconstruction and VQ terms,
    optionally REPA and the one-step ("unified") loss; exports a [`CodPipeline`].

    Parameters:
        config ([`TrainConfig`]): the run.
        resume (`bool` or `str`, *optional*, defaults to `False`): see [`Trainer`].

    Examples:
        >>> from cod_diffc.training import CodTrainer, load_train_config
        >>> config = load_train_config("configs/train/tiny.yaml", ["data.train_dir=images", "run.max_steps=10"])
        >>> pipeline_dir = CodTrainer(config).train()  # doctest: +SKIP
    """

    export_dirname = EXPORT_DIRNAME
    training_model: CodTrainingModel

    def __init__(self, config: TrainConfig, resume: bool | str = False):
        self._validation_pipeline: CodPipeline | None = None
        super().__init__(config, resume)

    @property
    def model_description(self) -> str:
        return self.config.model.named_config

    def build_training_model(self) -> CodTrainingModel:
        config = self.config
        self.components: CodComponents = build_components(config.model)
        self.components.check_resolution(config.data.resolution)
        self.sample_shape = self.components.sample_shape(config.data.resolution)
        if config.run.gradient_checkpointing:
            self.components.transformer.enable_gradient_checkpointing()
            self.components.condition_codec.enable_gradient_checkpointing()
        self.repa_encoder = None
        if config.loss.repa_encoder_path is not None:
            self.repa_encoder = RepaFeatureEncoder(config.loss.repa_encoder_path).to(self.accelerator.device)
        else:
            self.setup_notes.append("REPA is off (loss.repa_encoder_path is not set)")
        training_model = CodTrainingModel(
            self.components.transformer,
            self.components.condition_codec,
            config.loss,
            repa_feature_dim=self.repa_encoder.feature_dim if self.repa_encoder is not None else None,
        )
        if self.components.vae is not None:
            self.components.vae.to(self.accelerator.device)
        return training_model

    def ema_module(self) -> nn.Module:
        return nn.ModuleDict(
            {"transformer": self.training_model.transformer, "condition_codec": self.training_model.condition_codec}
        )

    @torch.no_grad()
    def _to_diffusion_space(self, images: torch.Tensor, posterior_noise: torch.Tensor | None) -> torch.Tensor:
        """Images in [0, 1] → pixels in [-1, 1], or VAE posterior samples (with the given noise) x sf²
        ([`~cod_diffc.models.cod_diffusion_space`], as `CodPipeline` codes)."""
        return images_to_samples(self.components.vae, images, posterior_noise).float()

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = self.accelerator.device
        images = batch["image"].to(device, non_blocking=True).float() / 255.0  # (b, 3, R, R)
        noise = draw_training_noise(
            batch["position"].tolist(),
            self.config.run.seed,
            self.sample_shape,
            self.config.loss.condition_dropout,
            latent=self.components.vae is not None,
            device=device,
        )
        samples = self._to_diffusion_space(images, noise.posterior_noise)
        repa_targets = None
        if self.repa_encoder is not None:
            grid = self.components.condition_codec.condition_grid_size(*images.shape[-2:])
            repa_targets = self.repa_encoder(images, grid)
        return self.model(images, samples, noise.noise, noise.sigmas, noise.null_mask, repa_targets)

    def _pipeline_with_ema(self, ema_state: dict[str, torch.Tensor]) -> CodPipeline:
        if self._validation_pipeline is None:
            self._validation_pipeline = build_pipeline(
                self.training_model.transformer,
                self.training_model.condition_codec,
                self.components.vae,
                self.components.guidance_scale,
            )
        load_ema_weights(self._validation_pipeline, ema_state)
        return self._validation_pipeline

    def validate_ema(
        self, ema_state: dict[str, torch.Tensor], images: torch.Tensor
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        """One-step and `validation.num_inference_steps`-step reconstructions from the condition, and their PSNR."""
        validation = self.config.validation
        return validate(
            self._pipeline_with_ema(ema_state),
            images,
            validation.num_inference_steps,
            validation.seed,
            validation.batch_size,
        )

    def export_ema(self, ema_state: dict[str, torch.Tensor], path: Path) -> None:
        save_atomically(self._pipeline_with_ema(ema_state), path)
