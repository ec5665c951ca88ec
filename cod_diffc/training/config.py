"""The training configuration: nested dataclasses read from YAML, with `section.key=value` overrides.

A configuration file holds up to six sections, each a dataclass below; every key it does not know is a `ValueError`
that names it. The model is a named configuration of `cod_diffc.pipelines.named_configs` plus overrides of the
constructor arguments of its components, so a small model is a config file, not a new code path:

```yaml
model:
  named_config: cod-pixel-tiny
  transformer: {num_layers: 4}
data:
  train_dir: /data/images
  resolution: 256
run:
  output_dir: runs/tiny
```

Overrides use the same dotted names on the command line: `optim.lr=2e-5 model.transformer.num_layers=4`; the value
is read as YAML (`true`, `[1, 2]`, `null`) and then converted to the type of its field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


@dataclass
class ModelConfig:
    """
    What to train.

    Args:
        kind: `"cod"` trains a CoD model; `"autoencoder"` trains the `AutoencoderKL` a latent CoD model works in,
            whose export `vae_path` of a latent CoD run then names; `"ldm"` trains a conventional latent diffusion
            model of the Stable Diffusion family (a `UNet2DModel` with the DDPM objective) on a frozen autoencoder.
            [`MODEL_KEYS`] says which keys each kind takes; another key set is an error.
        named_config: a name from `cod_diffc.pipelines.named_configs.NAMED_CONFIGS`.
        transformer: overrides of the [`CodTransformer2DModel`] constructor arguments of the named configuration.
        condition_codec: overrides of the [`CodConditionCodec`] constructor arguments. `condition_channels` follows
            the transformer's `hidden_size` unless given.
        vae_path: local directory of the `AutoencoderKL` of a latent model (e.g. a download of
            `stabilityai/sd-vae-ft-ema`); required for latent models, refused for pixel models.
        init_from: a training run directory or one of its `checkpoints/checkpoint-N` folders whose weights (model, EMA
            and training heads; not the optimiser) start this run: how stage 2 starts from stage 1. A saved
            `CodPipeline` folder (an export, or an embedded model's folder under `cod_diffc/weights/`) works too; it
            has no training heads, so list `reconstruction_head` in `init_partial`. An autoencoder run also starts
            from a saved `AutoencoderKL` folder (its export, in any dtype).
        init_partial: tensor-name prefixes that may be absent from `init_from` or from this model, or differ in
            shape (for instance the x2 up-sampler that `up2x` adds to the codec decoder, or the patch embedding and
            head of a latent model started from a pixel one); those tensors start fresh, any other difference is an
            error.
        freeze: tensor-name prefixes (of the training model, e.g. `vae.encoder.` of an autoencoder run) whose
            parameters are not trained: to go on training an autoencoder's decoder while its latent space, which a
            latent CoD model depends on, stays as it is.
        guidance_scale: classifier-free guidance for validation and the exported pipeline; `None` takes the named
            configuration's.
        autoencoder: constructor arguments of the diffusers `AutoencoderKL` of an autoencoder run.
        unet: constructor arguments of the diffusers `UNet2DModel` of a latent diffusion run.
        noise_schedule: `DDPMScheduler` arguments of a latent diffusion run, over Stable Diffusion's scaled-linear
            epsilon schedule.
        vae_scaling_factor: a latent diffusion run's latent scale (latents = posterior x this), replacing the
            autoencoder's own `scaling_factor`; the export's autoencoder carries it.
    """

    kind: Literal["cod", "autoencoder", "ldm"] = "cod"
    named_config: str = "cod-pixel-tiny"
    transformer: dict[str, Any] = field(default_factory=dict)
    condition_codec: dict[str, Any] = field(default_factory=dict)
    vae_path: str | None = None
    init_from: str | None = None
    init_partial: list[str] = field(default_factory=list)
    freeze: list[str] = field(default_factory=list)
    guidance_scale: float | None = None
    autoencoder: dict[str, Any] = field(default_factory=dict)
    unet: dict[str, Any] = field(default_factory=dict)
    noise_schedule: dict[str, Any] = field(default_factory=dict)
    vae_scaling_factor: float | None = None


SHARED_MODEL_KEYS = ("kind", "init_from", "init_partial", "freeze")
MODEL_KEYS = {
    "cod": (*SHARED_MODEL_KEYS, "named_config", "transformer", "condition_codec", "vae_path", "guidance_scale"),
    "autoencoder": (*SHARED_MODEL_KEYS, "autoencoder"),
    "ldm": (*SHARED_MODEL_KEYS, "unet", "noise_schedule", "vae_path", "vae_scaling_factor"),
}
"""The `model` keys each `model.kind` takes."""


@dataclass
class DataConfig:
    """
    Training images.

    Args:
        train_dir: a folder tree of PNG / JPEG / WebP images (searched recursively).
        val_dir: a folder of validation images; `None` holds out `validation.num_images` images of `train_dir`.
        resolution: side of the square random crops (a multiple of the codec's code stride).
        max_short_side: images whose shorter side is longer are first downscaled to it, so crops see more than a
            small detail of very large photos; `None` keeps the full resolution.
        random_flip: flip crops horizontally with probability 1/2.
        num_workers: data-loading processes per training process.
    """

    train_dir: str = ""
    val_dir: str | None = None
    resolution: int = 256
    max_short_side: int | None = None
    random_flip: bool = True
    num_workers: int = 4


@dataclass
class OptimConfig:
    """
    AdamW and the batch.

    Args:
        batch_size: the global batch per optimiser step, over all processes and accumulation steps.
        gradient_accumulation_steps: micro-batches per optimiser step.
        lr: peak learning rate, reached after a linear warm-up and then held.
        warmup_steps: length of the linear warm-up in optimiser steps.
        weight_decay, betas, eps: AdamW settings (the release uses no weight decay).
        max_grad_norm: clip the global gradient norm to this; `None` does not clip.
    """

    batch_size: int = 128
    gradient_accumulation_steps: int = 1
    lr: float = 1e-4
    warmup_steps: int = 0
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0


@dataclass
class LossConfig:
    """
    The training objective (weights of each term; see `cod_diffc.training.losses`).

    Args:
        flow: rectified-flow velocity MSE at logit-normal noise levels.
        condition_dropout: probability of replacing a sample's condition image by the null image.
        codec_reconstruction: MSE of the codec reconstruction head, which decodes the condition map to the sample.
        vq: weight of the codec's VQ loss (commitment + 0.25 codebook terms).
        one_step: MSE of the one-step estimate `noise - v(noise, sigma=1)` (the "unified" stage).
        repa_encoder_path: local directory of a DINOv2 model (`transformers.AutoModel`); `None` turns REPA off.
        repa_block: weight of the REPA alignment of backbone block `repa_block_index` (1-based).
        repa_condition: weight of the REPA alignment of the condition map.
        repa_block_index: the backbone block whose output is aligned (8 in the release).
        kl: autoencoder runs (whose objective is the reconstruction MSE plus this term): weight of the KL divergence
            of the latent posterior from N(0, I), per latent element.
    """

    flow: float = 1.0
    condition_dropout: float = 0.1
    codec_reconstruction: float = 1.0
    vq: float = 0.25
    one_step: float = 0.0
    repa_encoder_path: str | None = None
    repa_block: float = 0.5
    repa_condition: float = 0.5
    repa_block_index: int = 8
    kl: float = 1e-4


LOSS_KEYS = tuple(field.name for field in dataclasses.fields(LossConfig))


@dataclass
class RunConfig:
    """
    The training loop and its outputs.

    Args:
        output_dir: where checkpoints, logs, plots and the exported pipeline go.
        max_steps: optimiser steps to train for.
        seed: seeds the model initialisation, the data order, the crops and every noise draw.
        mixed_precision: `"auto"` (bf16 on a device that supports it, else fp32), `"no"`, `"bf16"` or `"fp16"`.
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        ema_decay: decay of the exponential moving average of the denoiser, which is what gets exported.
        ema_warmup: ramp the EMA decay up as `min(ema_decay, (1 + t) / (10 + t))` at step `t`, for short runs.
        checkpoint_every: save a checkpoint every this many steps (and at the end).
        keep_checkpoints: how many of the newest checkpoints to keep.
        log_every: write the losses to the log every this many steps.
    """

    output_dir: str = "runs/cod"
    max_steps: int = 1000
    seed: int = 0
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool = False
    ema_decay: float = 0.9999
    ema_warmup: bool = False
    checkpoint_every: int = 1000
    keep_checkpoints: int = 2
    log_every: int = 10


@dataclass
class ValidationConfig:
    """
    Validation of the EMA model on a fixed subset.

    Args:
        num_images: size of the validation subset (also the number of images held out when there is no `val_dir`).
        every: validate every this many steps (and at the end); 0 validates only at the end.
        num_inference_steps: the multi-step decode reported beside the one-step decode (25 is the release default).
        batch_size: images per validation batch.
        seed: seed of the validation noise, the same at every evaluation.
    """

    num_images: int = 8
    every: int = 1000
    num_inference_steps: int = 25
    batch_size: int = 8
    seed: int = 0


@dataclass
class TrainConfig:
    """A whole training run; see the section classes for the keys."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def validate(self) -> None:
        """Raises `ValueError` naming the first setting that is out of range."""
        positive = {
            "data.resolution": self.data.resolution,
            "optim.batch_size": self.optim.batch_size,
            "optim.gradient_accumulation_steps": self.optim.gradient_accumulation_steps,
            "run.max_steps": self.run.max_steps,
            "run.checkpoint_every": self.run.checkpoint_every,
            "run.keep_checkpoints": self.run.keep_checkpoints,
            "run.log_every": self.run.log_every,
            "validation.num_images": self.validation.num_images,
            "validation.num_inference_steps": self.validation.num_inference_steps,
            "validation.batch_size": self.validation.batch_size,
            "loss.repa_block_index": self.loss.repa_block_index,
        }
        non_negative = {
            "data.num_workers": self.data.num_workers,
            "optim.warmup_steps": self.optim.warmup_steps,
            "optim.weight_decay": self.optim.weight_decay,
            "validation.every": self.validation.every,
            "loss.flow": self.loss.flow,
            "loss.codec_reconstruction": self.loss.codec_reconstruction,
            "loss.vq": self.loss.vq,
            "loss.one_step": self.loss.one_step,
            "loss.repa_block": self.loss.repa_block,
            "loss.repa_condition": self.loss.repa_condition,
            "loss.kl": self.loss.kl,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ValueError(f"{key} must be positive, got {value}")
        for key, value in non_negative.items():
            if value < 0:
                raise ValueError(f"{key} must be non-negative, got {value}")
        self._check_kind_keys()
        if not self.data.train_dir:
            raise ValueError("data.train_dir is not set: give the folder of training images")
        if self.data.max_short_side is not None and self.data.max_short_side < self.data.resolution:
            raise ValueError(
                f"data.max_short_side ({self.data.max_short_side}) is below data.resolution ({self.data.resolution})"
            )
        if not 0.0 <= self.loss.condition_dropout < 1.0:
            raise ValueError(f"loss.condition_dropout must lie in [0, 1), got {self.loss.condition_dropout}")
        if not self.optim.lr > 0:
            raise ValueError(f"optim.lr must be positive, got {self.optim.lr}")
        if len(self.optim.betas) != 2 or not all(0.0 <= beta < 1.0 for beta in self.optim.betas):
            raise ValueError(f"optim.betas must be two numbers in [0, 1), got {self.optim.betas}")
        if self.optim.max_grad_norm is not None and not self.optim.max_grad_norm > 0:
            raise ValueError(f"optim.max_grad_norm must be positive or null, got {self.optim.max_grad_norm}")
        if not 0.0 <= self.run.ema_decay < 1.0:
            raise ValueError(f"run.ema_decay must lie in [0, 1), got {self.run.ema_decay}")
        if self.optim.batch_size % self.optim.gradient_accumulation_steps:
            raise ValueError(
                f"optim.batch_size ({self.optim.batch_size}) is not a multiple of optim.gradient_accumulation_steps "
                f"({self.optim.gradient_accumulation_steps})"
            )

    def _check_kind_keys(self) -> None:
        """`ValueError` naming the `model` and `loss` keys set away from their defaults that `model.kind` does not
        use, or the model arguments a kind needs and lacks."""
        kind = self.model.kind
        loss_keys = {"cod": [key for key in LOSS_KEYS if key != "kl"], "autoencoder": ["kl"], "ldm": []}[kind]
        unused = [
            f"{section}.{key}"
            for section, values, defaults, used in (
                ("model", self.model, ModelConfig(), MODEL_KEYS[kind]),
                ("loss", self.loss, LossConfig(), loss_keys),
            )
            for key, value in dataclasses.asdict(values).items()
            if key not in used and value != getattr(defaults, key)
        ]
        if unused:
            raise ValueError(
                f"{', '.join(unused)} set in a run of model.kind: {kind}, which does not use them; remove them"
            )
        required = {"autoencoder": "autoencoder", "ldm": "unet"}.get(kind)
        if required and not getattr(self.model, required):
            raise ValueError(f"model.{required} is empty: give the arguments of the model a {kind} run trains")

    def to_dict(self) -> dict[str, Any]:
        """The configuration as plain YAML-able data."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """`value` checked against (and, for numbers written as strings like `1e-4`, converted to) `annotation`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, key)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0])
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ValueError(f"{key} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{key} must be a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_convert(item, item_type, f"{key}[{index}]") for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads `1e-4` (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported configuration type {annotation!r} for {key}")


def _build_section(section_class: type, values: Any, section: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"configuration section {section!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(section_class)
    names = [f.name for f in dataclasses.fields(section_class)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(
            f"unknown configuration key(s) {', '.join(f'{section}.{key}' for key in unknown)}; "
            f"{section} takes {', '.join(names)}"
        )
    return section_class(**{key: _convert(value, hints[key], f"{section}.{key}") for key, value in values.items()})


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """Builds and validates a [`TrainConfig`] from nested mappings (the content of a YAML file)."""
    if not isinstance(values, dict):
        raise ValueError(f"a training configuration must be a mapping of sections, got {type(values).__name__}")
    sections = {f.name: typing.get_type_hints(TrainConfig)[f.name] for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(sections))
    if unknown:
        raise ValueError(f"unknown configuration section(s) {', '.join(unknown)}; known: {', '.join(sections)}")
    config = TrainConfig(**{name: _build_section(cls, values.get(name), name) for name, cls in sections.items()})
    config.validate()
    return config


def apply_overrides(values: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Returns a copy of the nested mapping `values` with `section.key=value` overrides applied.

    Keys are checked when the result is turned into a [`TrainConfig`]; a key inside a mapping field
    (`model.transformer.num_layers=4`) is checked when the model is built.
    """
    values = {section: dict(content) if isinstance(content, dict) else content for section, content in values.items()}
    for override in overrides:
        key, separator, text = override.partition("=")
        parts = key.strip().split(".")
        if not separator or len(parts) < 2 or not all(parts):
            raise ValueError(f"an override must look like section.key=value, got {override!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(f"cannot read the value of override {override!r}: {error}") from None
        target = values.get(parts[0])
        target = values[parts[0]] = dict(target) if isinstance(target, dict) else {}
        for part in parts[1:-1]:
            nested = target.get(part)
            target[part] = dict(nested) if isinstance(nested, dict) else {}
            target = target[part]
        target[parts[-1]] = value
    return values


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Reads a YAML training configuration and applies `section.key=value` overrides.

    Args:
        path: the YAML file.
        overrides: dotted overrides, e.g. `["optim.lr=2e-5", "model.transformer.num_layers=4"]`.

    Returns:
        [`TrainConfig`]: the validated configuration.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training configuration {path} not found")
    with path.open() as file:
        try:
            values = yaml.safe_load(file) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of sections, got {type(values).__name__}")
    return config_from_dict(apply_overrides(values, overrides))
