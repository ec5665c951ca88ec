"""The interface every codec of the library implements, so the CLI, the evaluation and third parties treat them
alike."""

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from cod_diffc.backbones.adapter import BackboneAdapter, Condition
from cod_diffc.backbones.padding import crop_image
from cod_diffc.backbones.sampling import denoise

from .devices import codec_precision
from .schedule import to_float16


DECODE_METHODS = ("flow", "mean")
"""How a codec turns the noisy latent it decodes into an image: the probability-flow ODE, or the one-step posterior
mean."""


_MAX_FLOAT16 = 65504.0


def check_decode_method(method: str) -> None:
    """`ValueError` naming the choices unless `method` is one of [`DECODE_METHODS`]."""
    if method not in DECODE_METHODS:
        raise ValueError(f"unknown decode method {method!r}; choose from {', '.join(DECODE_METHODS)}")


def check_image(image: torch.Tensor) -> tuple[int, int]:
    """The `(H, W)` of one `(1, 3, H, W)` image; `ValueError` for any other shape."""
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"expected one RGB image of shape (1, 3, H, W), got {tuple(image.shape)}")
    return image.shape[2], image.shape[3]


def check_guidance(name: str, scale: float) -> float:
    """The guidance scale rounded to float16, the precision streams store it in; `ValueError` outside
    [0, 65504]."""
    if not (math.isfinite(scale) and 0 <= scale <= _MAX_FLOAT16):
        raise ValueError(f"{name} must lie in [0, {_MAX_FLOAT16}] (a float16), got {scale}")
    return to_float16(scale)


@codec_precision
def latent_to_image(
    latent: torch.Tensor,
    t: float,
    adapter: BackboneAdapter,
    condition: Condition,
    *,
    guidance_scale: float,
    height: int,
    width: int,
    method: str = "flow",
    num_denoise_steps: int = 25,
    progress: bool = True,
) -> torch.Tensor:
    r"""
    The `(1, 3, height, width)` image in [0, 1] of a decoded noisy latent at time `t`: the denoising `method` (the
    probability-flow ODE in `num_denoise_steps` steps at `guidance_scale`, or the unguided one-step posterior mean),
    the backbone's `decode_latent`, and the crop of any padding.
    """
    check_decode_method(method)
    if method == "mean":
        guidance_scale, num_denoise_steps = 1.0, 1
    clean_latent = denoise(latent, t, adapter, condition, guidance_scale, num_denoise_steps, progress=progress)
    return crop_image(adapter.decode_latent(clean_latent), height, width)


class Codec(ABC):
    r"""
    A zero-shot diffusion codec on any [`~backbones.adapter.BackboneAdapter`].

    An instance holds the encoder's settings; everything a decoder needs is in the stream (the shared container of
    [`~codecs.container`], whose codec name is the class's `name`), so `decompress` takes no settings but how to
    render the decoded latent. `compress` gives bytes and `decompress` takes them; a codec's own module offers
    `encode` / `decode` on tensors.

    Attributes:
        name (`str`): The registry name, written into every stream.
        summary (`str`): One line for `cod-diffc codecs`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]

    @abstractmethod
    def compress(
        self,
        image: torch.Tensor,
        adapter: BackboneAdapter,
        *,
        target_bpp: float,
        seed: int = 0,
        clamp_targets: bool = False,
        progress: bool = True,
    ) -> bytes:
        r"""
        The largest stream of `image` whose whole file fits in `target_bpp * H * W / 8` bytes.

        Args:
            image (`torch.Tensor`): `(1, 3, H, W)` image in [0, 1], of any size.
            adapter ([`~backbones.adapter.BackboneAdapter`]): The backbone.
            target_bpp (`float`): Bits per pixel of the whole file.
            seed (`int`, defaults to 0): Seed of the shared randomness, in [0, 2**64), written into the stream.
            clamp_targets (`bool`, defaults to `False`): Give a target below the smallest file that file instead of
                raising (for rate sweeps over many images).
            progress (`bool`, defaults to `True`): Show a progress bar.

        Raises:
            `ValueError`: For a target below the smallest file (unless `clamp_targets`), naming the achievable range.
        """

    @abstractmethod
    def decompress(
        self,
        stream: bytes,
        adapter: BackboneAdapter,
        *,
        method: str = "flow",
        num_denoise_steps: int = 25,
        progress: bool = True,
    ) -> torch.Tensor:
        r"""
        The `(1, 3, H, W)` image in [0, 1] of a stream, at the size it records.

        Args:
            method (`str`, defaults to `"flow"`): One of [`DECODE_METHODS`], for the noisy latent left after the
                coded steps: the probability-flow ODE in `num_denoise_steps` steps with the stream's guidance, or the
                one-step posterior mean without guidance. Both read the same stream.

        Raises:
            [`~errors.StreamError`]: For a stream of another codec, backbone or model, or a malformed one.
        """

    def settings(self) -> dict:
        """The encoder's settings as JSON-serialisable values (what changes the streams it writes), for records and
        reports; a codec with settings overrides this."""
        return {}

    @abstractmethod
    def stream_backbone(self, stream: bytes) -> str:
        """The backbone name a stream of this codec records, after validating the whole stream (no model needed);
        [`~errors.StreamError`] for a malformed one."""
