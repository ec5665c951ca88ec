"""`CodPipeline`: reconstruct an image from its CoD condition, and the standalone CoD codec at its VQ rate."""

from __future__ import annotations

import contextlib
import struct
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from cod_diffc.models import cod_diffusion_space
from cod_diffc.models.condition_codec_cod import CodConditionCodec
from cod_diffc.models.transformer_cod import CodTransformer2DModel
from cod_diffc.pipelines.embedded_models import EMBEDDED_MODELS, resolve_embedded_model
from cod_diffc.pipelines.named_configs import get_named_config
from cod_diffc.pipelines.portable_save import PortableSaveMixin
from cod_diffc.schedulers.scheduling_cod_flow_match import CodFlowMatchScheduler


ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | list[PIL.Image.Image] | list[np.ndarray]

OUTPUT_TYPES = ("pil", "np", "pt", "latent")

StepEndCallback = (
    Callable[[DiffusionPipeline, int, torch.Tensor, dict], dict] | PipelineCallback | MultiPipelineCallbacks
)
"""What `callback_on_step_end` takes: a function `(pipe, step_index, sigma, callback_kwargs) -> dict`, or diffusers'
callback objects."""

# The standalone `.cod` file of the release: two uint16 little-endian sizes, then the packed VQ indices. CoD writes
# height first (its code names the two fields the other way round), CoD-Lite width first: `cod_file_width_first`.
COD_FILE_HEADER = struct.Struct("<HH")


@dataclass
class CodPipelineOutput(BaseOutput):
    """
    Output of [`CodPipeline`].

    Args:
        images (`list[PIL.Image.Image]`, `np.ndarray` or `torch.Tensor`):
            The reconstructions: PIL images, a `(B, H, W, 3)` uint8 array, or a `(B, 3, H, W)` float tensor in
            [0, 1], depending on `output_type`.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class CodPipeline(PortableSaveMixin, DiffusionPipeline):
    r"""
    CoD ([arXiv 2511.18706](https://arxiv.org/abs/2511.18706)): a diffusion model conditioned on a few hundred bits
    per image. The condition codec turns the image into vector-quantised indices (1,024 bits for a 512x512 image
    at the released 4 bits and downsampling 32); the transformer denoises noise into an image given the decoded
    condition map.

    Parameters:
        transformer ([`CodTransformer2DModel`]): the denoiser (velocity `noise - x0`, diffusers' flow convention).
        condition_codec ([`CodConditionCodec`]): encoder, vector quantiser and decoder of the condition.
        scheduler ([`CodFlowMatchScheduler`]): the released Adams–Bashforth sampler.
        vae ([`AutoencoderKL`], *optional*): the latent variant's autoencoder (`sd-vae-ft-ema` in the release);
            `None` for pixel-space CoD. Latents are scaled by `scaling_factor ** 2`, as the release does.
        default_guidance_scale (`float`, *optional*, defaults to 3.0): the classifier-free guidance used when a
            call does not say (the release uses 3.0 for pixel and 64-bit latent CoD, 1.25 for latent CoD).
        guidance_interval (`tuple[float, float]`, *optional*, defaults to `(0.0, 0.9)`): guidance applies for noise
            levels strictly inside this interval (the release's `0.1 < t < 1` in CoD's time).
    """

    model_cpu_offload_seq = "condition_codec->transformer->vae"
    _optional_components = ["vae"]
    _callback_tensor_inputs = ["latents", "condition"]

    denoiser_class: type[torch.nn.Module] = CodTransformer2DModel
    """The class of the `transformer` component, which [`from_named_config`] builds."""
    cod_file_width_first: bool = False
    """Whether the `.cod` header stores the width before the height (CoD: height first)."""

    def __init__(
        self,
        transformer: CodTransformer2DModel,
        condition_codec: CodConditionCodec,
        scheduler: CodFlowMatchScheduler,
        vae: AutoencoderKL | None = None,
        default_guidance_scale: float = 3.0,
        guidance_interval: tuple[float, float] | list[float] = (0.0, 0.9),
    ):
        super().__init__()
        if not isinstance(transformer, self.denoiser_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.denoiser_class.__name__} as its transformer, got "
                f"{type(transformer).__name__} (is this a saved pipeline of another class?)"
            )
        if not 0.0 <= guidance_interval[0] < guidance_interval[1] <= 1.0:
            raise ValueError(f"guidance_interval must satisfy 0 <= low < high <= 1, got {guidance_interval}")
        if (vae is None) != (transformer.config.in_channels == 3):
            raise ValueError(
                f"a transformer with in_channels={transformer.config.in_channels} needs "
                + ("a vae (latent space)" if vae is None else "no vae (pixel space)")
            )
        if condition_codec.config.condition_channels != transformer.config.hidden_size:
            raise ValueError(
                f"condition_codec.condition_channels={condition_codec.config.condition_channels} differs from "
                f"transformer.hidden_size={transformer.config.hidden_size}"
            )
        self.register_modules(transformer=transformer, condition_codec=condition_codec, scheduler=scheduler, vae=vae)
        self.register_to_config(
            default_guidance_scale=default_guidance_scale, guidance_interval=tuple(guidance_interval)
        )
        self.image_processor = VaeImageProcessor(do_resize=False, do_normalize=False, do_convert_rgb=True)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> CodPipeline:
        """
        Loads a saved pipeline: a local folder, a hub id, or the name of a model that ships inside the package (see
        `cod_diffc.pipelines.embedded_models`). The embedded models are stored in float16 and load in float32 unless
        `dtype=` says otherwise. Other arguments are `DiffusionPipeline.from_pretrained`'s.
        """
        resolved = resolve_embedded_model(pretrained_model_name_or_path)
        if resolved in EMBEDDED_MODELS.values():
            kwargs.setdefault("dtype", torch.float32)
        return super().from_pretrained(resolved, **kwargs)

    @classmethod
    def from_named_config(cls, name: str, vae: AutoencoderKL | None = None) -> CodPipeline:
        """
        A randomly initialised pipeline of a named configuration (see `cod_diffc.pipelines.named_configs`).

        Released latent configurations need their autoencoder passed in, e.g.
        `vae=AutoencoderKL.from_pretrained("stabilityai/sd-vae-ft-ema")`; tiny latent ones build a tiny random one.
        Build released sizes under `accelerate.init_empty_weights()` to inspect them without allocating memory.
        """
        config = get_named_config(name)
        if config.pipeline != cls.__name__:
            raise ValueError(f"{name} is a configuration of {config.pipeline}, not of {cls.__name__}")
        if config.is_latent and vae is None:
            if config.vae is None:
                raise ValueError(f"{name} works in the latent space of {config.vae_pretrained}: pass it as `vae=`")
            vae = AutoencoderKL(**config.vae)
        elif not config.is_latent and vae is not None:
            raise ValueError(f"{name} is a pixel-space model and takes no vae")
        latent_components = {} if vae is None else {"vae": vae}
        return cls(
            transformer=cls.denoiser_class(**config.transformer),
            condition_codec=CodConditionCodec(**config.condition_codec),
            scheduler=CodFlowMatchScheduler(**config.scheduler),
            default_guidance_scale=config.default_guidance_scale,
            **latent_components,
        )

    # ------------------------------------------------------------------ the diffusion space
    @property
    def latent_scale(self) -> float:
        """Factor between the VAE's raw latents and the diffusion space (`scaling_factor ** 2`; 1 in pixel space)."""
        return cod_diffusion_space.latent_scale(self.vae)

    def sample_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Shape `(C, h, w)` of the diffusion space for an image of `height x width` pixels."""
        return cod_diffusion_space.sample_shape(self.vae, height, width)

    def to_diffusion_space(
        self, images: torch.Tensor, generator: torch.Generator | None = None, sample_posterior: bool = True
    ) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] → diffusion-space samples (pixels in [-1, 1], or scaled VAE latents;
        [`~cod_diffc.models.cod_diffusion_space`]).

        As in the release, the latent variant samples the VAE posterior (with `generator`); `sample_posterior=False`
        takes its mean instead (deterministic, what a codec wants).
        """
        self._check_vae()
        if self.vae is None:
            return cod_diffusion_space.images_to_samples(None, images)
        with self._vae_precision() as dtype:
            noise = None
            if sample_posterior:
                shape = (images.shape[0], *self.sample_shape(*images.shape[-2:]))
                noise = randn_tensor(shape, generator=generator, device=self.vae.device, dtype=dtype)
            return cod_diffusion_space.images_to_samples(self.vae, images, noise)

    def to_images(self, samples: torch.Tensor) -> torch.Tensor:
        """Diffusion-space samples → images `(B, 3, H, W)` in [-1, 1] (not clipped)."""
        self._check_vae()
        if self.vae is None:
            return samples
        with self._vae_precision():
            return cod_diffusion_space.samples_to_images(self.vae, samples)

    def _check_vae(self) -> None:
        """`ValueError` for a latent model whose `vae` has been removed (set to `None` after construction)."""
        if self.vae is None and self.transformer.config.in_channels != 3:
            raise ValueError(
                f"this CodPipeline's transformer works in a VAE's latent space (in_channels="
                f"{self.transformer.config.in_channels}) but the pipeline has no vae; load the pipeline with its vae"
            )

    @contextlib.contextmanager
    def _vae_precision(self) -> Iterator[torch.dtype]:
        """The dtype the VAE computes in: its own, or float32 for a float16 VAE whose config sets `force_upcast`
        (as diffusers' pipelines do: such VAEs overflow in float16), cast back afterwards (exactly)."""
        upcast = self.vae.dtype == torch.float16 and self.vae.config.get("force_upcast", False)
        if not upcast:
            yield self.vae.dtype
            return
        self.vae.to(torch.float32)
        try:
            yield torch.float32
        finally:
            self.vae.to(torch.float16)

    # ------------------------------------------------------------------ conditions
    def preprocess(self, image: ImageInput) -> torch.Tensor:
        """PIL image(s), `(H, W, 3)` / `(B, H, W, 3)` arrays or `(B, 3, H, W)` tensors → float `(B, 3, H, W)` in
        [0, 1]."""
        if isinstance(image, np.ndarray) and image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        elif isinstance(image, list) and image and isinstance(image[0], np.ndarray) and image[0].dtype == np.uint8:
            image = [array.astype(np.float32) / 255.0 for array in image]
        images = self.image_processor.preprocess(image)
        if images.shape[1] != 3:
            raise ValueError(f"expected RGB images (3 channels), got {images.shape[1]} channels")
        return images.to(device=self._execution_device, dtype=self.condition_codec.dtype)

    @torch.no_grad()
    def condition_indices(self, images: torch.Tensor) -> torch.Tensor:
        """Images `(B, 3, H, W)` in [0, 1] → VQ indices `(B, h, w)`."""
        _, indices = self.condition_codec.quantize(self.condition_codec.encode(images))
        return indices

    @torch.no_grad()
    def compress(self, image: ImageInput) -> list[bytes]:
        """
        The standalone CoD codec, encoder side: one `.cod` file (bytes) per image, in the release's layout: a 4-byte
        header (uint16 little-endian height, then width; the other way round with `cod_file_width_first`) and the
        VQ indices packed at `codebook_bits` each; at 512x512, 4 bits and downsampling 32 that is 4 + 128 bytes.
        """
        images = self.preprocess(image)
        height, width = images.shape[-2:]
        (payloads,) = self.condition_codec.compress(images)["strings"]
        sizes = (width, height) if self.cod_file_width_first else (height, width)
        return [COD_FILE_HEADER.pack(*sizes) + payload for payload in payloads]

    def parse_cod_file(self, data: bytes) -> tuple[int, int, bytes]:
        """Splits a `.cod` file into `(height, width, payload)`, checking its length against the codec."""
        if len(data) < COD_FILE_HEADER.size:
            raise ValueError(f"a .cod file needs at least {COD_FILE_HEADER.size} bytes, got {len(data)}")
        height, width = COD_FILE_HEADER.unpack_from(data)
        if self.cod_file_width_first:
            height, width = width, height
        expected = self.condition_codec.bytes_per_image(height, width)
        if len(data) != COD_FILE_HEADER.size + expected:
            raise ValueError(
                f"a {height}x{width} .cod file holds {COD_FILE_HEADER.size + expected} bytes, got {len(data)} "
                "(truncated, or made by a codec with another rate)"
            )
        return height, width, data[COD_FILE_HEADER.size :]

    @torch.no_grad()
    def decompress(self, data: bytes | list[bytes], **kwargs) -> CodPipelineOutput:
        """The standalone CoD codec, decoder side: `.cod` file(s) of one size → images. `kwargs` go to
        [`generate`] (`num_inference_steps`, `guidance_scale`, `generator`, ...)."""
        files = [data] if isinstance(data, bytes) else list(data)
        parsed = [self.parse_cod_file(f) for f in files]
        sizes = {(h, w) for h, w, _ in parsed}
        if len(sizes) != 1:
            raise ValueError(f"decode() takes files of one image size per call, got {sorted(sizes)}")
        (height, width), payloads = sizes.pop(), [p for _, _, p in parsed]
        shape = self.condition_codec.code_grid_size(height, width)
        condition = self.condition_codec.decompress([payloads], shape)["condition"]
        return self.generate(condition, height, width, **kwargs)

    def encode(self, image: ImageInput) -> list[bytes]:
        """Deprecated name of [`compress`] (bytes are compressed, tensors encoded); removed in cod_diffc 0.3."""
        warnings.warn("CodPipeline.encode is deprecated: use CodPipeline.compress", FutureWarning, stacklevel=2)
        return self.compress(image)

    def decode(self, data: bytes | list[bytes], **kwargs) -> CodPipelineOutput:
        """Deprecated name of [`decompress`]; removed in cod_diffc 0.3."""
        warnings.warn("CodPipeline.decode is deprecated: use CodPipeline.decompress", FutureWarning, stacklevel=2)
        return self.decompress(data, **kwargs)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        num_inference_steps: int = 25,
        guidance_scale: float | None = None,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> CodPipelineOutput | tuple:
        r"""
        Reconstructs image(s) from their CoD condition.

        Args:
            image: the image(s) to encode into a condition (PIL, `(H, W, 3)` uint8/float array or `(B, 3, H, W)`
                tensor in [0, 1]). Sizes must be multiples of the codec's code stride (32 for the released models).
            num_inference_steps (`int`, defaults to 25): sampler steps; 1 gives the highest-PSNR decode.
            guidance_scale (`float`, *optional*): classifier-free guidance weight, applied inside the pipeline's
                `guidance_interval` (the release's window); defaults to the pipeline's `default_guidance_scale`.
            num_images_per_prompt (`int`, defaults to 1): reconstructions per input image (each from its own
                noise), returned image by image: the first image's reconstructions first.
            generator (`torch.Generator`, *optional*): generator of the initial noise.
            latents (`torch.Tensor`, *optional*): the initial noise `(B * num_images_per_prompt, *sample_shape)` at
                sigma = 1, instead of a draw from `generator`.
            output_type (`str`, defaults to `"pil"`): `"pil"` (the release's uint8 rounding), `"np"` (`(B, H, W, 3)`
                float32 in [0, 1]), `"pt"` (`(B, 3, H, W)` float in [0, 1]) or `"latent"` (the diffusion-space
                samples, not decoded).
            return_dict (`bool`, defaults to `True`): return a [`CodPipelineOutput`] instead of a tuple.
            callback_on_step_end (`Callable`, `PipelineCallback` or `MultiPipelineCallbacks`, *optional*): called
                after every sampler step as `callback_on_step_end(pipe, step_index, sigma, callback_kwargs)`, as in
                diffusers; `callback_kwargs` holds the tensors named in `callback_on_step_end_tensor_inputs`, and a
                `"latents"` (or `"condition"`) entry in the dictionary it returns replaces the current sample (or
                condition map).
            callback_on_step_end_tensor_inputs (`list[str]`, defaults to `["latents"]`): the tensors passed to the
                callback, among `_callback_tensor_inputs`.

        Examples:
            >>> from cod_diffc import CodPipeline
            >>> pipe = CodPipeline.from_named_config("cod-pixel-tiny")  # random weights, for a quick look
            >>> import PIL.Image
            >>> image = PIL.Image.new("RGB", (64, 64), (200, 120, 40))
            >>> out = pipe(image, num_inference_steps=2).images[0]
            >>> out.size
            (64, 64)
        """
        if num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be >= 1, got {num_images_per_prompt}")
        images = self.preprocess(image)
        height, width = images.shape[-2:]
        indices = self.condition_indices(images)
        condition = self.condition_codec.decode_indices(indices).repeat_interleave(num_images_per_prompt, dim=0)
        output = self.generate(
            condition,
            height,
            width,
            num_inference_steps,
            guidance_scale,
            generator,
            output_type,
            latents=latents,
            callback_on_step_end=callback_on_step_end,
            callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
        )
        return output if return_dict else (output.images,)

    @torch.no_grad()
    def generate(
        self,
        condition: torch.Tensor,
        height: int,
        width: int,
        num_inference_steps: int = 25,
        guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        output_type: str = "pil",
        latents: torch.Tensor | None = None,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> CodPipelineOutput:
        """Samples images of `height x width` from a decoded condition map `(B, C, H/16, W/16)`.

        `latents` (`(B, *sample_shape)`, the initial noise at sigma = 1) replaces the generator's draw when given;
        `output_type` and the callback are [`__call__`]'s. Models offloaded with `enable_model_cpu_offload` are moved
        back when it returns.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(map(repr, OUTPUT_TYPES))}, got {output_type!r}")
        self._check_vae()
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        unknown = sorted(set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs))
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs may name {', '.join(self._callback_tensor_inputs)}, got "
                f"{', '.join(unknown)}"
            )
        guidance_scale = self.config.default_guidance_scale if guidance_scale is None else guidance_scale
        batch_size = condition.shape[0]
        null_condition = self.condition_codec.null_condition(height, width, batch_size)

        # Initial noise (sigma = 1), drawn on the generator's device like diffusers pipelines do.
        shape = (batch_size, *self.sample_shape(height, width))
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")

        samples = self.sample(
            latents,
            condition,
            null_condition,
            num_inference_steps,
            guidance_scale,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        if output_type == "latent":
            result = samples
        else:
            result = self.postprocess(self.to_images(samples).float(), output_type)
        self.maybe_free_model_hooks()
        return CodPipelineOutput(images=result)

    @torch.no_grad()
    def sample(
        self,
        noise: torch.Tensor,
        condition: torch.Tensor,
        null_condition: torch.Tensor,
        num_inference_steps: int,
        guidance_scale: float,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> torch.Tensor:
        """Integrates the flow from `noise` (sigma = 1) to a diffusion-space sample (sigma = 0).

        Args:
            noise: `(B, *sample_shape)` initial sample.
            condition, null_condition: `(B, C, H/16, W/16)` condition maps (the null one for guidance).
            num_inference_steps: sampler steps.
            guidance_scale: classifier-free guidance weight, used inside the release's window.
            callback_on_step_end, callback_on_step_end_tensor_inputs: see [`__call__`].
        """
        if not isinstance(self.scheduler, CodFlowMatchScheduler):
            raise ValueError(
                f"CodPipeline samples with CodFlowMatchScheduler (the release's sampler, timesteps = sigma in [0, 1]), "
                f"got {type(self.scheduler).__name__}; build one with CodFlowMatchScheduler.from_config(...) instead"
            )
        dtype = self.transformer.dtype
        condition, null_condition = condition.to(dtype), null_condition.to(dtype)
        sample = noise.to(device=self._execution_device, dtype=dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        for index, sigma in enumerate(self.progress_bar(self.scheduler.timesteps)):
            velocity = self.guided_velocity(sample, sigma, condition, null_condition, guidance_scale)
            sample = self.scheduler.step(velocity, sigma, sample).prev_sample
            if callback_on_step_end is not None:
                tensors = {"latents": sample, "condition": condition}
                inputs = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                outputs = callback_on_step_end(self, index, sigma, inputs)
                sample = outputs.pop("latents", sample)
                condition = outputs.pop("condition", condition)
        return sample

    def guided_velocity(
        self,
        sample: torch.Tensor,
        sigma: torch.Tensor,
        condition: torch.Tensor,
        null_condition: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Velocity `noise - x0` at noise level `sigma`, with classifier-free guidance inside `guidance_interval`
        (exclusive): the transformer's own output ([`guided_prediction`])."""
        return self.guided_prediction(sample, sigma, condition, null_condition, guidance_scale)

    def guided_prediction(
        self,
        sample: torch.Tensor,
        sigma: torch.Tensor,
        condition: torch.Tensor,
        null_condition: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """The transformer's output at noise level `sigma`, with classifier-free guidance inside
        `guidance_interval` (exclusive).

        Outside the window the release computes `u + 1 * (c - u)`; we return `c`, which equals it up to rounding.
        """
        # The noise level stays in float32 (or float64) whatever the network's dtype: bfloat16 would round it to
        # steps of 2**-8, while the codecs' x0_hat uses the exact value.
        timestep = sigma.to(torch.promote_types(sample.dtype, torch.float32)).expand(sample.shape[0])
        conditional = self.transformer(sample, timestep, condition).sample
        low, high = self.config.guidance_interval
        if guidance_scale == 1.0 or not (low < float(sigma) < high):  # the read of sigma waits for the device
            return conditional
        unconditional = self.transformer(sample, timestep, null_condition).sample
        return unconditional + guidance_scale * (conditional - unconditional)

    @staticmethod
    def postprocess(images: torch.Tensor, output_type: str) -> list[PIL.Image.Image] | np.ndarray | torch.Tensor:
        """Images `(B, 3, H, W)` in [-1, 1] → `"pt"`: `(B, 3, H, W)` float in [0, 1]; `"np"`: `(B, H, W, 3)`
        float32 in [0, 1] (both as in every diffusers pipeline); `"pil"`: images by the release's uint8 mapping
        ([`quantize_uint8`])."""
        if output_type == "pt":
            return ((images + 1.0) / 2.0).clamp(0.0, 1.0).cpu()
        if output_type == "np":
            return ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu().numpy()
        return [PIL.Image.fromarray(array) for array in CodPipeline.quantize_uint8(images)]

    @staticmethod
    def quantize_uint8(images: torch.Tensor) -> np.ndarray:
        """Images `(B, 3, H, W)` in [-1, 1] → `(B, H, W, 3)` uint8 by the release's mapping
        `clip((x + 1) * 127.5 + 0.5, 0, 255)` (round half up), computed in the dtype of `images` (the release runs it
        in bfloat16)."""
        as_uint8 = ((images + 1.0) * 127.5 + 0.5).clamp(0, 255).to(torch.uint8)  # (B, 3, H, W)
        return as_uint8.permute(0, 2, 3, 1).cpu().numpy()
