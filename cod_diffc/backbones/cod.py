"""The CoD pipeline (pixel or latent) behind the [`~backbones.adapter.BackboneAdapter`] interface.

The CoD condition, the vector-quantised indices of the condition codec, is the stream's side information (128 bytes
for a 512x512 image with the released codec); the decoder rebuilds the condition map from it, so a stream that sends
nothing else is the standalone CoD codec (condition only). Guidance uses CoD's null condition inside the release's
window.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cod_diffc.errors import StreamError

from .adapter import Condition, fingerprint_state_dict
from .fingerprint_cache import CachedFingerprintMixin
from .flow import FlowMatchingAdapterMixin
from .resources import vae_decode_bytes_per_pixel


if TYPE_CHECKING:
    from cod_diffc.pipelines import CodPipeline


LATER_CONFIG_DEFAULTS = {"light_decoder": False, "attention_window": None}
"""Configuration entries added to the components after streams existed, at the values that reproduce the earlier
models: left out of the fingerprint, so that a model's fingerprint (and its streams) does not change with them."""


class CodBackbone(CachedFingerprintMixin, FlowMatchingAdapterMixin):
    r"""
    A [`~cod_diffc.CodPipeline`] as a backbone. Its [`~backbones.adapter.Condition`] value is the pair
    `(condition, null_condition)` of `(1, C, H/16, W/16)` maps in the transformer's dtype.

    Args:
        pipeline ([`~cod_diffc.CodPipeline`]): the model; its transformer's device and dtype are the adapter's.
    """

    name = "cod"

    def __init__(self, pipeline: CodPipeline):
        self.pipeline = pipeline
        self.pipeline.set_progress_bar_config(disable=True)
        self.default_guidance_scale = float(pipeline.config.default_guidance_scale)

    @property
    def device(self) -> torch.device:
        return self.pipeline.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipeline.transformer.dtype

    @property
    def size_multiple(self) -> int:
        return self.pipeline.condition_codec.code_stride

    def working_memory_bytes(self, height: int, width: int) -> int:
        """Activations of one transformer pass (the per-pixel neural-field head, or the VAE decoder of a latent model,
        and attention over the 16 x 16-pixel tokens if it is materialised) and of the condition codec. Calibrated on
        the pixel model cod-pixel-small (head width 32): 0.09 / 0.29 / 0.98 GiB of peak resident memory above the
        loaded model measured once (not in results/) for one guided pass at 256 / 512 / 1024 px squared, against 0.13 /
        0.51 / 2.1 GiB estimated (on the safe side; a 4032 x 3024 photo: 40 GiB)."""
        pixels = height * width
        transformer = self.pipeline.transformer.config
        tokens = pixels // 256
        attention = 4 * transformer.num_attention_heads * tokens**2
        if self.pipeline.vae is None:
            per_pixel = 40 * transformer.head_hidden_size
        else:
            per_pixel = vae_decode_bytes_per_pixel(self.pipeline.vae.config.block_out_channels)
        codec = 24 * self.pipeline.condition_codec.config.base_channels
        return pixels * (per_pixel + codec) + attention

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        self.pipeline.condition_codec.code_grid_size(height, width)  # raises ValueError for sizes it cannot take
        return self.pipeline.sample_shape(height, width)

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        images = image.to(device=self.device, dtype=self.dtype)
        return self.pipeline.to_diffusion_space(images, sample_posterior=False).float()

    @torch.no_grad()
    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        images = self.pipeline.to_images(latent.to(self.dtype)).float()  # (1, 3, H, W) in [-1, 1]
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0)

    @torch.no_grad()
    def prepare_condition(self, image: torch.Tensor) -> Condition:
        codec = self.pipeline.condition_codec
        images = image.to(device=self.device, dtype=codec.dtype)
        ((side_info,),) = codec.compress(images)["strings"]
        return self.load_condition(side_info, image.shape[-2], image.shape[-1])

    @torch.no_grad()
    def load_condition(self, side_info: bytes, height: int, width: int) -> Condition:
        codec = self.pipeline.condition_codec
        try:
            shape = codec.code_grid_size(height, width)
            condition = codec.decompress([[side_info]], shape)["condition"]  # (1, C, H/16, W/16)
        except ValueError as error:
            raise StreamError(f"the stream's CoD condition does not fit a {height}x{width} image: {error}") from None
        null_condition = codec.null_condition(height, width)
        return Condition(side_info=side_info, value=(condition.to(self.dtype), null_condition.to(self.dtype)))

    @torch.no_grad()
    def predict_velocity(
        self, x_flow: torch.Tensor, s: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        return self.guided(self.pipeline.guided_velocity, x_flow, s, condition, guidance_scale)

    def guided(
        self,
        predict: Callable[..., torch.Tensor],
        x_flow: torch.Tensor,
        s: torch.Tensor,
        condition: Condition,
        guidance_scale: float,
    ) -> torch.Tensor:
        """`predict(sample, sigma, condition, null_condition, guidance_scale)` (a guided method of the pipeline) on
        a float32 `(1, C, h, w)` flow sample at the 0-dim noise level `s`, in the model's dtype; float32 out."""
        if condition.value is None:
            raise ValueError(
                f"the {self.name} backbone needs the image's condition: prepare_condition() or load_condition()"
            )
        cod_condition, null_condition = condition.value
        sigma = s.reshape(-1)[0] if s.ndim else s
        return predict(x_flow.to(self.dtype), sigma, cod_condition, null_condition, guidance_scale).float()

    def weights_fingerprint(self) -> bytes:
        """A digest of the transformer, condition codec and VAE weights (in their loaded dtype) and every setting
        that changes the outputs."""
        components = {"transformer": self.pipeline.transformer, "condition_codec": self.pipeline.condition_codec}
        if self.pipeline.vae is not None:
            components["vae"] = self.pipeline.vae
        weights = {
            f"{name}.{key}": value for name, module in components.items() for key, value in module.state_dict().items()
        }
        settings = {
            f"{name}.config": {
                key: value
                for key, value in module.config.items()
                if not key.startswith("_")
                and not (key in LATER_CONFIG_DEFAULTS and value == LATER_CONFIG_DEFAULTS[key])
            }
            for name, module in components.items()
        }
        settings["latent_scale"] = self.pipeline.latent_scale
        settings["guidance_interval"] = list(self.pipeline.config.guidance_interval)
        return fingerprint_state_dict(weights, settings)

    def fingerprint_settings(self) -> dict[str, str]:
        return {"adapter": self.name, "dtype": str(self.dtype)}

    def known_model(self, fingerprint: bytes) -> str | None:
        """The embedded model, shipped now or by an earlier release, that has this fingerprint (loaded in float32,
        the default), and how to load it."""
        from cod_diffc.pipelines.embedded_models import EMBEDDED_MODEL_FINGERPRINTS

        return EMBEDDED_MODEL_FINGERPRINTS.get(fingerprint.hex())


def check_pipeline_dir(model: str | Path, expected: str = "CodPipeline") -> None:
    """A one-line error for a local directory that is not a saved pipeline of the class named `expected`."""
    index = Path(model) / "model_index.json"
    if not index.is_file():
        raise ValueError(f"{model} is not a saved {expected} directory (no model_index.json)")
    class_name = json.loads(index.read_text()).get("_class_name")
    if class_name != expected:
        raise ValueError(f"{model} holds a {class_name} model, not a {expected} (use --backbone for that model kind)")


def load_cod_backbone(
    model: str | Path | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    allow_download: bool = False,
) -> CodBackbone:
    """
    Registry factory of the `cod` backbone: a saved [`~cod_diffc.CodPipeline`] directory (from `cod-diffc train` or
    `cod-diffc convert`), a hub id (only with `allow_download=True`, or when it is in the local cache), or the name
    of an embedded model; the default embedded model (`DEFAULT_EMBEDDED_MODEL`) when `model` is `None`.
    """
    from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL, resolve_embedded_model
    from cod_diffc.pipelines.pipeline_cod import CodPipeline

    model = resolve_embedded_model(DEFAULT_EMBEDDED_MODEL if model is None else model)
    return load_pipeline_backbone(
        CodBackbone, CodPipeline, model, device=device, dtype=dtype, allow_download=allow_download
    )


def load_pipeline_backbone(
    adapter_class: type[CodBackbone],
    pipeline_class: type[CodPipeline],
    model: str | Path,
    *,
    device: str | torch.device,
    dtype: torch.dtype | None,
    allow_download: bool,
) -> CodBackbone:
    """`adapter_class` on a saved `pipeline_class` (a local directory, checked to hold one, or a hub id), computing
    in `dtype` (float32 by default: weights may be stored in half precision, as the embedded models are)."""
    if Path(model).exists():
        check_pipeline_dir(model, pipeline_class.__name__)
    dtype = torch.float32 if dtype is None else dtype
    pipeline = pipeline_class.from_pretrained(str(model), local_files_only=not allow_download, dtype=dtype)
    adapter = adapter_class(pipeline.to(device))
    if Path(model).is_dir():
        adapter.model_files = sorted(path for path in Path(model).rglob("*") if path.is_file())
    return adapter
