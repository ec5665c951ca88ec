r"""The reverse process every zero-shot codec of the library runs, written once.

Encoder and decoder of a codec both walk the backbone's reverse process from seeded noise at `t_0` down its
schedule; at step `n` the model gives the mean `p_mean` of `p(z_{t_{n+1}} | z_{t_n})` and its standard deviation,
and the latent moves to `p_mean + std * noise`. A codec supplies only how a step's `noise` is chosen (encoder: from
the offset `mu = (q_mean - p_mean) / std` towards the image, [`posterior_offset`]) and replayed (decoder: from the
stream) — DiffC by reverse channel coding, the DDCM family by codebook atoms — plus its stream layout and schedule.
This module owns the rest: the image and guidance checks, the padding, the condition, the clean target latent, the
seeded initial noise, the step loop, the decoder's checks of a stream's size and side information, and the
[`~codecs.codec.DecodedLatent`] both sides reach.

A new codec (a UQDM-style dithered quantiser, say) is the two noise functions, its payload and its `Codec` class.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from cod_diffc.backbones.adapter import BackboneAdapter, Condition
from cod_diffc.backbones.padding import pad_image, padded_size
from cod_diffc.backbones.resources import check_image_fits
from cod_diffc.backbones.sampling import ReverseStep, model_reverse_step
from cod_diffc.errors import StreamError

from .codec import check_guidance, check_image
from .container import Container
from .randomness import derive_key, seeded_normal
from .schedule import DiffCSchedule


DEFAULT_MAX_LATENT_ELEMENTS = 2**26
"""Decoders refuse streams whose image size implies a larger latent (a guard against forged sizes)."""

StepNoise = Callable[[int, ReverseStep, torch.Tensor], torch.Tensor]
"""`noise(n, step, x0_hat) -> (d,)` standard-normal-like noise of step `n`, given the model's reverse step and its
`(1, C, h, w)` `x0_hat`."""


@dataclass(frozen=True)
class EncoderSetup:
    r"""
    What every encode starts from, checked: see [`prepare_encode`].

    Attributes:
        image (`torch.Tensor`): `(1, 3, H', W')` the image mirror-padded to the backbone's size multiple.
        height, width (`int`): The true size, which the stream records.
        latent_shape (`tuple[int, int, int]`): `(C, h, w)` of the padded image.
        guidance_scale, denoise_guidance_scale (`float`): Rounded to float16, the streams' precision.
        condition ([`~backbones.adapter.Condition`]): The backbone's condition of the image.
    """

    image: torch.Tensor
    height: int
    width: int
    latent_shape: tuple[int, int, int]
    guidance_scale: float
    denoise_guidance_scale: float
    condition: Condition


def prepare_encode(
    image: torch.Tensor,
    adapter: BackboneAdapter,
    guidance_scale: float | None,
    denoise_guidance_scale: float | None,
) -> EncoderSetup:
    """Checks the image (one `(1, 3, H, W)` image that fits the device), pads it, fixes the guidance scales (the
    backbone's default; the decoder's defaults to the encoder's) and prepares the condition."""
    height, width = check_image(image)
    check_image_fits(adapter, height, width)
    image = pad_image(image, adapter.size_multiple)  # (1, 3, H', W')
    guidance_scale = check_guidance(
        "guidance_scale", adapter.default_guidance_scale if guidance_scale is None else guidance_scale
    )
    denoise_guidance_scale = check_guidance(
        "denoise_guidance_scale", guidance_scale if denoise_guidance_scale is None else denoise_guidance_scale
    )
    return EncoderSetup(
        image=image,
        height=height,
        width=width,
        latent_shape=adapter.latent_shape(*image.shape[-2:]),
        guidance_scale=guidance_scale,
        denoise_guidance_scale=denoise_guidance_scale,
        condition=adapter.prepare_condition(image),
    )


def new_container(codec: str, adapter: BackboneAdapter, setup: EncoderSetup, seed: int, payload: bytes) -> Container:
    """The container of an encode's stream: the codec's name and `payload`, the backbone and its model's
    fingerprint, the true image size, the seed and the condition's side information."""
    return Container(
        codec=codec,
        backbone=adapter.name,
        fingerprint=adapter.fingerprint(),
        height=setup.height,
        width=setup.width,
        seed=seed,
        side_info=setup.condition.side_info,
        payload=payload,
    )


def target_latent(adapter: BackboneAdapter, setup: EncoderSetup) -> torch.Tensor:
    """The `(1, C, h, w)` float32 clean latent of the padded image; `ValueError` for an adapter whose
    `encode_image` disagrees with its `latent_shape`."""
    latent = adapter.encode_image(setup.image).to(torch.float32)
    if latent.shape != (1, *setup.latent_shape):
        raise ValueError(
            f"{type(adapter).__name__}.encode_image gave a latent of shape {tuple(latent.shape)}, but its "
            f"latent_shape{tuple(setup.image.shape[-2:])} is {setup.latent_shape}"
        )
    return latent


def initial_noise(seed: int, label: str, latent_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """`z_{t_0}`: `(1, C, h, w)` standard normal noise keyed by the seed and the codec's `label`, the same bits on
    every device."""
    return seeded_normal(derive_key(seed, label), (1, *latent_shape), device)


def posterior_offset(step: ReverseStep, target: torch.Tensor, x0_hat: torch.Tensor) -> torch.Tensor:
    """`(q_mean - p_mean) / std`, `(d,)`: how far the step's noise must move the latent towards `q(z_s | z_t, x0)`
    of the clean `target` (`(1, C, h, w)`), in units of the step's standard deviation."""
    return (step.x0_coefficient / step.std) * (target - x0_hat).flatten()


def run_reverse_process(
    adapter: BackboneAdapter,
    latent: torch.Tensor,
    schedule: DiffCSchedule,
    num_steps: int,
    condition: Condition,
    guidance_scale: float,
    noise: StepNoise,
    *,
    after_step: Callable[[int, torch.Tensor, torch.Tensor], bool] | None = None,
    description: str = "",
    progress: bool = True,
) -> tuple[torch.Tensor, int]:
    r"""
    Walks the reverse process from `latent` (`(1, C, h, w)` at `t_0`) through `num_steps` steps of `schedule`, each
    step's noise given by `noise`.

    Args:
        after_step (`Callable`, *optional*): `after_step(n, previous_latent, latent) -> stop`, called after step `n`;
            `True` ends the walk there.
        description (`str`): The progress bar's label.

    Returns:
        `(latent, steps)`: the latent reached and the number of steps walked.
    """
    steps = 0
    for n in tqdm(range(num_steps), desc=description, disable=not progress):
        step, x0_hat, p_mean = model_reverse_step(
            adapter, latent, schedule.time(n), schedule.time(n + 1), condition, guidance_scale
        )
        previous, latent = latent, p_mean + step.std * noise(n, step, x0_hat).view_as(latent)
        steps = n + 1
        if after_step is not None and after_step(n, previous, latent):
            break
    return latent, steps


@dataclass(frozen=True)
class DecoderSetup:
    r"""
    What every decode starts from, checked: see [`prepare_decode`].

    Attributes:
        latent_shape (`tuple[int, int, int]`): `(C, h, w)` of the padded image.
        condition ([`~backbones.adapter.Condition`]): Loaded from the stream's side information.
    """

    latent_shape: tuple[int, int, int]
    condition: Condition


def prepare_decode(
    adapter: BackboneAdapter,
    height: int,
    width: int,
    side_info: bytes,
    max_latent_elements: int = DEFAULT_MAX_LATENT_ELEMENTS,
) -> DecoderSetup:
    """The latent shape of a stream's image size and its condition; [`~errors.StreamError`] for a size the
    backbone cannot take or larger than `max_latent_elements` allows, and for side information the backbone
    rejects. The backbone and fingerprint are the caller's to check first."""
    coded_size = padded_size(height, width, adapter.size_multiple)
    try:
        latent_shape = adapter.latent_shape(*coded_size)
    except ValueError as error:
        raise StreamError(f"image size {height}x{width} invalid for the backbone: {error}") from None
    if math.prod(latent_shape) > max_latent_elements:
        raise StreamError(
            f"image size {height}x{width} needs a latent of {math.prod(latent_shape)} elements, more than "
            f"max_latent_elements={max_latent_elements}"
        )
    check_image_fits(adapter, height, width, decoding=True)
    try:
        condition = adapter.load_condition(side_info, *coded_size)
    except StreamError:
        raise
    except ValueError as error:
        raise StreamError(f"the backbone rejected the stream's side information: {error}") from error
    return DecoderSetup(latent_shape=latent_shape, condition=condition)
