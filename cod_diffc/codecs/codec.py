"""The interface every codec of the library implements, so the CLI, the evaluation and third parties treat them
alike."""

import inspect
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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


def check_target_bpp(target_bpp: float) -> None:
    """`ValueError` unless a target rate is positive and finite."""
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise ValueError(f"target bpp must be positive and finite, got {target_bpp}")


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


@dataclass(frozen=True)
class DecodedLatent:
    r"""
    What a diffusion codec's stream decodes to before it is rendered: the noisy latent the coded steps reach, and
    what rendering it needs. One decode serves every rendering method ([`to_image`]).

    Attributes:
        latent (`torch.Tensor`): `(1, C, h, w)` float32 noisy latent at time `t`, on the adapter's device.
        t (`float`): Its time (1.0 when no step was coded).
        condition ([`~backbones.adapter.Condition`]): The backbone's condition, loaded from the side information.
        guidance_scale (`float`): The guidance the stream asks the decoder to denoise with.
        height, width (`int`): The image size the stream records.
    """

    latent: torch.Tensor
    t: float
    condition: Condition
    guidance_scale: float
    height: int
    width: int

    def to_image(
        self, adapter: BackboneAdapter, *, method: str = "flow", num_denoise_steps: int = 25, progress: bool = True
    ) -> torch.Tensor:
        """The `(1, 3, H, W)` image in [0, 1]: [`latent_to_image`] with the stream's guidance and size."""
        return latent_to_image(
            self.latent,
            self.t,
            adapter,
            self.condition,
            guidance_scale=self.guidance_scale,
            height=self.height,
            width=self.width,
            method=method,
            num_denoise_steps=num_denoise_steps,
            progress=progress,
        )


@dataclass(frozen=True)
class CodedStream:
    r"""
    One stream of [`Codec.compress_many`].

    Attributes:
        stream (`bytes`): The whole file.
        setting (`str`): What the codec chose to meet the request, for records (`"stop_step=12"`, `"target_bpp=0.05"`).
        encoding_time (`float`): Seconds of the encode that made it (a progressive codec's one encode, shared by all
            its streams).
    """

    stream: bytes
    setting: str
    encoding_time: float


class Codec(ABC):
    r"""
    A zero-shot diffusion codec on any [`~backbones.adapter.BackboneAdapter`].

    An instance holds the encoder's settings; everything a decoder needs is in the stream (the shared container of
    [`~codecs.container`], whose codec name is the class's `name`), so `decompress` takes no settings but how to
    render the decoded latent. `compress` gives bytes and `decompress` takes them; a codec's own module offers
    `encode` / `decode` on tensors.

    A *progressive* codec makes streams at several rates from one encode: its streams are prefixes of one coded
    sequence of steps, which may also be cut after a number of steps. It sets `progressive = True` and overrides
    [`compress_many`]; every other codec inherits the loop over single-rate [`compress`] calls. The command line
    (`--bpp-list`, `--stop-step`) and the evaluation use only this interface.

    Attributes:
        name (`str`): The registry name, written into every stream.
        summary (`str`): One line for `cod-diffc codecs`.
        progressive (`bool`): Whether one encode gives several rates and cuts at a step (default `False`).
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    progressive: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, **settings: Any) -> "Codec":
        """The codec built from the command line's settings (`num_steps`, `guidance_scale`, `coder`, ... : only those
        the user gave); `ValueError` naming a setting the codec does not take. The default passes them to the
        constructor; a codec whose constructor takes richer objects overrides it."""
        unknown = sorted(set(settings) - cls.setting_names())
        if unknown:
            raise ValueError(
                f"codec {cls.name!r} takes no setting {', '.join(unknown)} (it takes "
                f"{', '.join(sorted(cls.setting_names())) or 'none'})"
            )
        return cls(**settings)

    @classmethod
    def setting_names(cls) -> set[str]:
        """The keywords [`from_settings`] takes."""
        target = cls.__init__ if cls.from_settings.__func__ is Codec.from_settings.__func__ else cls.from_settings
        return {name for name in inspect.signature(target).parameters if name not in ("self", "cls")}

    def compress_many(
        self,
        image: torch.Tensor,
        adapter: BackboneAdapter,
        *,
        target_bpps: Sequence[float] | None = None,
        stop_steps: Sequence[int] | None = None,
        seed: int = 0,
        clamp_targets: bool = False,
        progress: bool = True,
    ) -> list[CodedStream]:
        r"""
        Several streams of one image, in the order asked: one per target rate, or (progressive codecs) one per cut
        after a number of coded steps. A progressive codec makes them all from one encode; the default runs
        [`compress`] once per target.

        Args:
            target_bpps (`Sequence[float]`, *optional*): Bits per pixel of each whole file.
            stop_steps (`Sequence[int]`, *optional*): Coded steps of each cut (progressive codecs only). With neither
                argument a progressive codec sends its whole schedule.
            seed, clamp_targets, progress: As for [`compress`].

        Raises:
            `ValueError`: For stop steps given to a codec that is not progressive, or no target rate for one that
                needs it.
        """
        if stop_steps is not None:
            raise ValueError(f"codec {self.name!r} is not progressive: it takes target rates, not stop steps")
        if not target_bpps:
            raise ValueError(f"codec {self.name!r} needs a target rate")
        streams = []
        for target in target_bpps:
            start = time.perf_counter()
            stream = self.compress(
                image, adapter, target_bpp=target, seed=seed, clamp_targets=clamp_targets, progress=progress
            )
            streams.append(CodedStream(stream, f"target_bpp={target:g}", time.perf_counter() - start))
        return streams

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
        The `(1, 3, H, W)` image in [0, 1] of a stream, at the size it records: by default the rendering of
        [`decompress_latent`]'s noisy latent; a codec whose decoder does not go through one overrides this.

        Args:
            method (`str`, defaults to `"flow"`): One of [`DECODE_METHODS`], for the noisy latent left after the
                coded steps: the probability-flow ODE in `num_denoise_steps` steps with the stream's guidance, or the
                one-step posterior mean without guidance. Both read the same stream.

        Raises:
            [`~errors.StreamError`]: For a stream of another codec, backbone or model, or a malformed one.
            `NotImplementedError`: For a codec that implements neither this nor [`decompress_latent`].
        """
        decoded = self.decompress_latent(stream, adapter, progress=progress)
        if decoded is None:
            raise NotImplementedError(f"codec {self.name!r} implements neither decompress nor decompress_latent")
        return decoded.to_image(adapter, method=method, num_denoise_steps=num_denoise_steps, progress=progress)

    def decompress_latent(
        self, stream: bytes, adapter: BackboneAdapter, *, progress: bool = True
    ) -> DecodedLatent | None:
        r"""
        The stream's [`DecodedLatent`], which renders with any decode method without decoding the stream again;
        `None` (the default) for a codec whose decoder does not go through a noisy latent, for which [`decompress`]
        is the only decoder.

        Raises:
            [`~errors.StreamError`]: As [`decompress`].
        """
        return None

    def settings(self) -> dict:
        """The encoder's settings as JSON-serialisable values (what changes the streams it writes), for records and
        reports; a codec with settings overrides this."""
        return {}

    @abstractmethod
    def stream_backbone(self, stream: bytes) -> str:
        """The backbone name a stream of this codec records, after validating the whole stream (no model needed);
        [`~errors.StreamError`] for a malformed one."""
