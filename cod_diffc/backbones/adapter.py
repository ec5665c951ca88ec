"""The one interface between a diffusion codec and a diffusion backbone.

A codec (DiffC, the DDCM family, ...) never sees a model, a scheduler or an integer timestep: it talks to a
[`BackboneAdapter`], which speaks variance-preserving (VP) terms on a continuous time `t` in [0, 1]:

    z_t = alpha(t) * z_0 + sigma(t) * eps,    alpha(t)**2 + sigma(t)**2 == 1,    t = 1 is pure noise, t = 0 data.

Two mixins own the conversions from the two model families diffusers serves, so an adapter implements only its
network call: [`~backbones.flow.FlowMatchingAdapterMixin`] (CoD, diffusers flow models: `predict_velocity`) and
[`~backbones.discrete_vp.DiscreteVPAdapterMixin`] (DDPM-trained UNets from `alphas_cumprod`, epsilon- or
v-prediction: `predict_model_output`).

The condition of an image is a value, not adapter state: `prepare_condition(image)` (encoder) and
`load_condition(side_info, H, W)` (decoder) return a [`Condition`] that every prediction takes, so one adapter serves
any number of images, codecs and threads at once.
"""

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cod_diffc.errors import StreamError


FINGERPRINT_SIZE = 8
"""Bytes of model fingerprint written into every stream (see [`BackboneAdapter.fingerprint`])."""


def fingerprint_state_dict(
    weights: nn.Module | Mapping[str, torch.Tensor], config: Mapping[str, Any] | None = None
) -> bytes:
    r"""
    A stable [`FINGERPRINT_SIZE`]-byte BLAKE2b digest of a model's weights and configuration.

    Tensors are hashed in sorted key order as `(key, dtype, shape, raw bytes)`, so the digest does not depend on
    the device, on the order of the state dict, or on the Python session. Two models agree on the fingerprint
    exactly when they hold the same tensors bit for bit (and the same `config`).

    Args:
        weights (`nn.Module` or `Mapping[str, torch.Tensor]`):
            The model, or its state dict.
        config (`Mapping[str, Any]`, *optional*):
            JSON-serialisable settings that change the model's output without being weights (latent scaling, the
            variant name, ...). Hashed as sorted-key JSON.

    Returns:
        `bytes`: The digest, [`FINGERPRINT_SIZE`] bytes.
    """
    state_dict = weights.state_dict() if isinstance(weights, nn.Module) else weights
    digest = hashlib.blake2b(digest_size=FINGERPRINT_SIZE)
    for key in sorted(state_dict):
        tensor = state_dict[key].detach()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # A byte view works for every dtype, bfloat16 included, and matches across devices.
        digest.update(tensor.to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    if config is not None:
        digest.update(json.dumps(dict(config), sort_keys=True).encode())
    return digest.digest()


@dataclass(frozen=True)
class Condition:
    r"""
    What a backbone is conditioned on for one image: the bytes a stream carries to rebuild it, and the value its
    network takes.

    Attributes:
        side_info (`bytes`): The side information written into the stream (`b""`: none).
        value (`Any`): The backbone's own representation (CoD: the condition maps; Stable Diffusion: the prompt
            embeddings), opaque to codecs; `None` for a conditionless backbone.
    """

    side_info: bytes = b""
    value: Any = None


UNCONDITIONAL = Condition()
"""The condition of a conditionless backbone: no side information, no value."""


def as_batch_scalar(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshapes a 0-dim or `(B,)` time tensor to broadcast against a `(B, C, h, w)` latent."""
    t = t.to(device=like.device, dtype=like.dtype)
    return t.reshape(-1, *([1] * (like.ndim - 1))) if t.ndim == 1 else t


class BackboneAdapter(ABC):
    r"""
    What a diffusion codec needs from a diffusion backbone, in VP terms.

    Conventions every implementation follows:

    - Images are `(1, 3, H, W)` tensors in [0, 1]; latents are `(1, C, h, w)` with `(C, h, w) = latent_shape(H, W)`.
    - Time `t` is continuous in [0, 1] with `t = 1` pure noise and `t = 0` data; it is passed as a 0-dim (or
      `(B,)`) float tensor. `alpha_sigma(t)` gives the VP coefficients of the forward process
      `z_t = alpha * z_0 + sigma * eps` with `alpha**2 + sigma**2 == 1`.
    - The codec passes `z_t` as float32 on `self.device` and expects float32 back; an adapter whose network runs in
      another dtype casts inside. It evaluates `alpha_sigma` on float64 CPU times (the step coefficients must be
      the same on every device), so `alpha_sigma` is plain tensor arithmetic, not a network call.
    - Everything must be deterministic: encoder and decoder call the adapter with the same inputs and must get
      bit-identical outputs on the same device, or decoding drifts.
    - An adapter holds no per-image state: the condition is a [`Condition`] value passed to every prediction.

    Lifecycle: the encoder calls `prepare_condition(image)` once per image (which, for instance, runs a condition
    codec) and writes the returned condition's `side_info` into the stream; the decoder calls
    `load_condition(side_info, H, W)` with those bytes and gets an equal condition. Both then call
    `predict_x0_and_epsilon(z_t, t, condition, guidance_scale)`. A conditionless backbone keeps the default
    implementations, which return [`UNCONDITIONAL`].

    [`~backbones.gaussian.GaussianBackbone`] is a complete, minimal implementation. A flow-matching backbone is
    shorter still:

    ```py
    class MyFlowAdapter(FlowMatchingAdapterMixin):
        name = "my-flow"

        def __init__(self, transformer, device="cpu"):
            self.transformer = transformer.to(device).eval()

        @property
        def device(self):
            return self.transformer.device

        @property
        def dtype(self):
            return self.transformer.dtype

        def latent_shape(self, height, width):
            return 3, height, width

        def encode_image(self, image):
            return 2 * image.to(self.device) - 1

        def decode_latent(self, latent):
            return ((latent + 1) / 2).clamp(0, 1)

        def predict_velocity(self, x_flow, s, condition, guidance_scale):
            return self.transformer(x_flow.to(self.dtype), s.expand(x_flow.shape[0])).sample.float()

        def fingerprint(self):
            return fingerprint_state_dict(self.transformer, config=dict(self.transformer.config))
    ```

    Attributes:
        name (`str`):
            The registry name, written into every stream; [`~backbones.registry.load_backbone`] checks that the adapter
            it builds carries the name it was asked for. Usually a class attribute; an adapter class serving several
            registry names sets it per instance.
        default_guidance_scale (`float`):
            Classifier-free guidance scale used when the caller gives none (1.0: no guidance).
        size_multiple (`int`):
            The multiple that image sides must be for `latent_shape` (CoD: its code stride; Stable Diffusion: its
            VAE's downsampling). The codec mirror-pads other sizes up to it, records the true size in the stream and
            crops on decode ([`~backbones.padding`]), so users can pass images of any size. Defaults to 1.
    """

    name: str
    default_guidance_scale: float = 1.0
    size_multiple: int = 1

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """The device the network runs on; latents handed to the adapter live there."""

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype:
        """The dtype the network computes in."""

    @abstractmethod
    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """The `(C, h, w)` latent of an `H x W` image. Raises `ValueError` if the backbone cannot take that size."""

    @abstractmethod
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Maps a `(1, 3, H, W)` image in [0, 1] to its clean `(1, C, h, w)` latent `z_0`, deterministically."""

    @abstractmethod
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Maps a `(1, C, h, w)` clean latent to a `(1, 3, H, W)` image in [0, 1]."""

    @abstractmethod
    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The VP coefficients `(alpha(t), sigma(t))`, elementwise, with the shape, dtype and device of `t`."""

    @abstractmethod
    def predict_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        r"""
        The (guided) prediction `eps_hat(z_t, t)` of the noise in `z_t = alpha * z_0 + sigma * eps`.

        Args:
            z_t (`torch.Tensor`): `(1, C, h, w)` noisy latent in VP space, float32.
            t (`torch.Tensor`): 0-dim time in [0, 1].
            condition ([`Condition`]): From `prepare_condition` or `load_condition`.
            guidance_scale (`float`): Classifier-free guidance scale (1.0: conditional prediction only).

        Returns:
            `torch.Tensor`: `(1, C, h, w)` float32.
        """

    def predict_x0_and_epsilon(
        self, z_t: torch.Tensor, t: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""
        The predicted clean latent and noise, `(x0_hat, eps_hat)`, with `z_t = alpha * x0_hat + sigma * eps_hat`.

        The default derives `x0_hat = (z_t - sigma * eps_hat) / alpha` from [`predict_epsilon`], which is undefined
        where `alpha(t) == 0`. An adapter whose schedule reaches `alpha = 0` at `t = 1` (flow models) overrides
        this method; [`~backbones.flow.FlowMatchingAdapterMixin`] does.
        """
        alpha, sigma = self.alpha_sigma(t)
        if bool((alpha == 0).any()):
            raise ValueError(
                f"{type(self).__name__} has alpha(t) == 0 at t = {t.tolist()}, where x0_hat cannot be derived from "
                "eps_hat; override predict_x0_and_epsilon"
            )
        eps_hat = self.predict_epsilon(z_t, t, condition, guidance_scale)
        alpha, sigma = as_batch_scalar(alpha, z_t), as_batch_scalar(sigma, z_t)
        return (z_t - sigma * eps_hat) / alpha, eps_hat

    def prepare_condition(self, image: torch.Tensor) -> Condition:
        """Encoder side: the condition of the `(1, 3, H, W)` image, whose `side_info` the stream carries so that
        `load_condition` rebuilds an equal one. Conditionless backbones return [`UNCONDITIONAL`]."""
        return UNCONDITIONAL

    def load_condition(self, side_info: bytes, height: int, width: int) -> Condition:
        """Decoder side: the condition the side-information bytes of a stream describe, for an `H x W` (padded)
        image. Raises [`~errors.StreamError`] for bytes it cannot parse."""
        if side_info:
            raise StreamError(
                f"backbone {self.name!r} takes no side information, but the stream carries {len(side_info)} bytes"
            )
        return UNCONDITIONAL

    def working_memory_bytes(self, height: int, width: int) -> int | None:
        """An estimate of the memory one network evaluation on an `H x W` (padded) image needs beyond the weights,
        so a codec can refuse a size that will not fit before any work starts; `None` (the default) when unknown."""
        return None

    @abstractmethod
    def fingerprint(self) -> bytes:
        """A [`FINGERPRINT_SIZE`]-byte digest of everything that changes the adapter's outputs (weights and
        settings); see [`fingerprint_state_dict`]. A decoder refuses streams made with another fingerprint."""

    def known_model(self, fingerprint: bytes) -> str | None:
        """What the model with this fingerprint is, when the adapter knows it (for instance a model that ships, or
        once shipped, inside the package), so that a stream made with it names the model it needs; `None` (the
        default) when it does not."""
        return None
