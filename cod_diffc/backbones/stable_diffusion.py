r"""The Stable Diffusion backbone of DiffC: SD 1.x and 2.x (epsilon- or v-prediction) through diffusers components.

Time and predictions: [`~backbones.discrete_vp.DiscreteVPAdapterMixin`] (SD's `alphas_cumprod`, `T = 1000`,
`t = 1` is training step 999 where `alpha` is about 0.068; epsilon- or v-prediction).

Latents: [`~backbones.vae_latent.VaeLatentAdapterMixin`] (the posterior mean times the VAE's `scaling_factor`).
The VAE always runs in float32 (it runs once per image; the UNet and text encoder run in the adapter's dtype).

Condition. An optional text prompt conditions the UNet; it travels in the stream as side information
([`~backbones.prompt`], counted in the rate) and the decoder restores it, so the decoder needs no prompt of its own. Classifier-free guidance mixes the prompt's
prediction with the empty prompt's; without a prompt the two coincide and the guidance scale changes nothing.
"""

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id

from cod_diffc.optional_dependencies import require

from .adapter import Condition
from .discrete_vp import DiscreteVPAdapterMixin
from .fingerprint_cache import CachedFingerprintMixin
from .prompt import check_prompt, pack_prompt, unpack_prompt
from .vae_latent import VaeLatentAdapterMixin


if TYPE_CHECKING:
    from transformers import CLIPTextModel, CLIPTokenizer


DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""Hub id loaded when no model is given."""

PIPELINE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
"""The subfolders of a diffusers Stable Diffusion pipeline that the adapter loads."""

FINGERPRINTED_COMPONENTS = ("unet", "vae", "text_encoder", "scheduler")
"""The subfolders whose files (weights and configurations) change the adapter's outputs."""


def _locate_pipeline(
    model: str | os.PathLike, cache_dir: str | os.PathLike | None, allow_download: bool
) -> tuple[str, bool, Path]:
    r"""
    Checks that `model` is a Stable Diffusion pipeline and returns `(location, is_local, folder)`: what
    `from_pretrained` takes, and the folder its files are read from (a hub id's snapshot in the cache).

    A local directory must hold a diffusers `model_index.json` naming every component the adapter loads; anything
    else is looked up as a hub id, in the Hugging Face cache only unless `allow_download`.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        index_path = path / "model_index.json"
        if not index_path.is_file():
            raise ValueError(
                f"model directory of the wrong kind: {path} has no model_index.json; expected a Stable Diffusion "
                f"pipeline saved by diffusers (model_index.json and the subfolders {', '.join(PIPELINE_COMPONENTS)})"
            )
        location, is_local, folder = str(path), True, path
    elif path.exists():
        raise ValueError(f"model {path} is a file; expected a Stable Diffusion pipeline directory or a hub id")
    else:
        try:
            validate_repo_id(str(model))
        except HFValidationError:
            raise FileNotFoundError(f"no Stable Diffusion model directory at {path}") from None
        try:
            index_path = hf_hub_download(
                str(model), "model_index.json", cache_dir=cache_dir, local_files_only=not allow_download
            )
        except LocalEntryNotFoundError:
            raise FileNotFoundError(_not_cached_message(str(model))) from None
        location, is_local, folder = str(model), False, Path(index_path).parent

    index = json.loads(Path(index_path).read_text())
    missing = [name for name in PIPELINE_COMPONENTS if not (isinstance(index.get(name), list) and index[name][0])]
    if missing:
        raise ValueError(
            f"model directory of the wrong kind: {model} holds a {index.get('_class_name', 'pipeline')}, not a Stable "
            f"Diffusion pipeline (its model_index.json lacks {', '.join(missing)})"
        )
    return location, is_local, folder


def _not_cached_message(repo_id: str) -> str:
    components = " ".join(f"'{name}/*'" for name in PIPELINE_COMPONENTS)
    return (
        f"Stable Diffusion model {repo_id!r} is not a local directory and not (or only partly) in the Hugging Face "
        f"cache; pass allow_download=True to fetch the files it needs, or download them with "
        f"`hf download {repo_id} --include model_index.json {components}`"
    )


class StableDiffusionAdapter(CachedFingerprintMixin, VaeLatentAdapterMixin, DiscreteVPAdapterMixin):
    r"""
    A backbone on a Stable Diffusion 1.x / 2.x UNet, its VAE and its CLIP text encoder.

    See the module docstring for the time mapping, the latent and the prompt. Build it from a pipeline directory
    or hub id with [`~StableDiffusionAdapter.from_pretrained`] (what `load_backbone("sd", model)` does), or from
    loaded components, for instance those of a `StableDiffusionPipeline`:

    ```py
    adapter = StableDiffusionAdapter(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler)
    ```

    The UNet and text encoder compute in their own dtype and the VAE in float32; every method takes and returns
    float32. The adapter draws no randomness, so encoder and decoder get bit-identical predictions on the same device
    and dtype as long as the kernels are deterministic, which PyTorch's forward passes are by default (with
    `torch.backends.cudnn.benchmark` off, the cuDNN algorithm does not change between runs).

    Parameters:
        unet (`UNet2DConditionModel`): The denoiser; its `in_channels` must be the VAE's `latent_channels`.
        vae (`AutoencoderKL`): The autoencoder; moved to the UNet's device and float32.
        text_encoder (`CLIPTextModel`): Encodes the prompt for the UNet's cross-attention.
        tokenizer (`CLIPTokenizer`): The text encoder's tokenizer.
        scheduler (`SchedulerMixin`):
            Any diffusers scheduler of the model with `alphas_cumprod` (DDPM, DDIM, PNDM, Euler, ...); only its
            `alphas_cumprod` and `config.prediction_type` (`"epsilon"` or `"v_prediction"`) are used.
        prompt (`str`, defaults to `""`): The text prompt [`prepare_condition`] conditions on (encoder side); see
            [`set_prompt`].
    """

    name = "sd"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: "CLIPTextModel",
        tokenizer: "CLIPTokenizer",
        scheduler: SchedulerMixin,
        prompt: str = "",
    ):
        prediction_type = scheduler.config.get("prediction_type", "epsilon")
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"Stable Diffusion prediction type {prediction_type!r} is not supported; expected epsilon or "
                "v_prediction"
            )
        if unet.config.addition_embed_type is not None:
            raise ValueError(
                f"the UNet needs added conditions ({unet.config.addition_embed_type!r}, as in SDXL); this adapter "
                "runs Stable Diffusion 1.x / 2.x UNets"
            )
        latent_channels = vae.config.latent_channels
        if not unet.config.in_channels == unet.config.out_channels == latent_channels:
            raise ValueError(
                f"the UNet maps {unet.config.in_channels} to {unet.config.out_channels} channels, but the VAE latent "
                f"has {latent_channels}; inpainting and upscaling UNets are not supported"
            )
        alphas_cumprod = getattr(scheduler, "alphas_cumprod", None)
        if alphas_cumprod is None:
            raise ValueError(f"{type(scheduler).__name__} has no alphas_cumprod table of a discrete VP schedule")
        self.set_discrete_schedule(alphas_cumprod, prediction_type)

        self.unet = unet.eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(unet.device).eval().requires_grad_(False)
        self.vae = vae.to(unet.device, torch.float32).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self._empty_prompt_embeds = self.encode_prompt("")  # (1, L, D)
        self.set_prompt(prompt)

    @classmethod
    def from_pretrained(
        cls,
        model: str | os.PathLike = DEFAULT_MODEL,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype | None = None,
        prompt: str = "",
        cache_dir: str | os.PathLike | None = None,
        allow_download: bool = False,
    ) -> "StableDiffusionAdapter":
        r"""
        Loads the components of a diffusers Stable Diffusion pipeline.

        Args:
            model (`str` or `os.PathLike`, defaults to [`DEFAULT_MODEL`]):
                A pipeline directory in the diffusers layout (`model_index.json`, `unet/`, `vae/`, `text_encoder/`,
                `tokenizer/`, `scheduler/`), or a hub id such as `"stabilityai/stable-diffusion-2-1"`.
            device (`torch.device` or `str`, defaults to `"cpu"`): Where the networks run.
            dtype (`torch.dtype`, *optional*):
                Compute dtype of the UNet and text encoder; defaults to float32 on every device, as on the command
                line (the dtype is part of the model's fingerprint: a stream decodes only in the dtype it was made
                in, so pass `torch.float16` on both sides for speed on a GPU).
            prompt (`str`, defaults to `""`): The encoder's text prompt.
            cache_dir (`str` or `os.PathLike`, *optional*):
                The Hugging Face cache to look hub ids up in; defaults to the user's (`HF_HUB_CACHE`).
            allow_download (`bool`, defaults to `False`):
                Download a hub model missing from the local Hugging Face cache. Without it nothing is downloaded.

        Raises:
            `FileNotFoundError`: If the model is neither a local directory nor in the cache (and downloads are off).
            `ValueError`: If the directory is not a Stable Diffusion pipeline, or the model is of a kind the adapter
                does not run (SDXL, inpainting, an unsupported prediction type).
        """
        transformers = require("transformers", "the sd backbone (Stable Diffusion's text encoder)")
        device = torch.device(device)
        dtype = torch.float32 if dtype is None else dtype
        location, is_local, folder = _locate_pipeline(model, cache_dir, allow_download)
        hub_options = {"cache_dir": cache_dir, "local_files_only": not allow_download}
        try:
            unet = UNet2DConditionModel.from_pretrained(location, subfolder="unet", dtype=dtype, **hub_options)
            vae = AutoencoderKL.from_pretrained(location, subfolder="vae", dtype=torch.float32, **hub_options)
            text_encoder = transformers.CLIPTextModel.from_pretrained(
                location, subfolder="text_encoder", dtype=dtype, **hub_options
            )
            tokenizer = transformers.CLIPTokenizer.from_pretrained(location, subfolder="tokenizer", **hub_options)
            # DDPMScheduler builds alphas_cumprod from any SD scheduler config (PNDM, DDIM, Euler, ...).
            scheduler = DDPMScheduler.from_pretrained(location, subfolder="scheduler", **hub_options)
        except OSError as error:
            if is_local:
                raise
            raise FileNotFoundError(_not_cached_message(location)) from error
        adapter = cls(unet.to(device), vae, text_encoder, tokenizer, scheduler, prompt=prompt)
        adapter.model_files = sorted(
            path for name in FINGERPRINTED_COMPONENTS for path in (folder / name).rglob("*") if path.is_file()
        )
        return adapter

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def prompt(self) -> str:
        """The text prompt [`prepare_condition`] conditions on (`""`: none)."""
        return self._prompt

    def _prompt_token_ids(self, prompt: str) -> torch.Tensor:
        """The `(1, L)` token ids of `prompt`, padded to the tokenizer's `model_max_length`; `ValueError` for a prompt
        longer than the text encoder takes (the tokens are not truncated: a stream would carry bytes the model never
        sees)."""
        max_length = self.tokenizer.model_max_length
        input_ids = self.tokenizer(
            prompt, padding="max_length", max_length=max_length, truncation=False, return_tensors="pt"
        ).input_ids  # (1, L)
        if input_ids.shape[1] > max_length:
            raise ValueError(
                f"the prompt is {input_ids.shape[1]} tokens long, more than the {max_length} the text encoder takes; "
                "shorten it"
            )
        return input_ids

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        """The text encoder's `(1, L, D)` hidden states of `prompt` in the UNet's dtype (see [`_prompt_token_ids`])."""
        hidden_states = self.text_encoder(self._prompt_token_ids(prompt).to(self.device))[0]  # (1, L, D)
        return hidden_states.to(self.dtype)

    def set_prompt(self, prompt: str) -> None:
        """Sets the text prompt (`""`: none) that [`prepare_condition`] conditions the UNet on and sends in the
        stream; a decoder reads it from the stream instead."""
        check_prompt(prompt)
        self._prompt_token_ids(prompt)
        self._prompt = prompt

    def _condition_of(self, prompt: str) -> Condition:
        """The condition of `prompt`: its side information and `(1, L, D)` embeddings (`None`: no prompt)."""
        return Condition(side_info=pack_prompt(prompt), value=self.encode_prompt(prompt) if prompt else None)

    def prepare_condition(self, image: torch.Tensor) -> Condition:
        return self._condition_of(self._prompt)

    def load_condition(self, side_info: bytes, height: int, width: int) -> Condition:
        return self._condition_of(unpack_prompt(side_info))

    def predict_model_output(
        self, z_t: torch.Tensor, timestep: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        batch_size = z_t.shape[0]
        sample = z_t.to(self.dtype)  # (B, C, h, w)
        empty_embeds = self._empty_prompt_embeds.expand(batch_size, -1, -1)  # (B, L, D)
        # Without a prompt the conditional prediction is the unconditional one: guidance changes nothing.
        if condition.value is None:
            return self.unet(sample, timestep, encoder_hidden_states=empty_embeds).sample.float()
        prompt_embeds = condition.value.expand(batch_size, -1, -1)  # (B, L, D)
        if guidance_scale == 1:
            return self.unet(sample, timestep, encoder_hidden_states=prompt_embeds).sample.float()
        output_uncond, output_cond = (
            self.unet(
                torch.cat([sample, sample]),
                torch.cat([timestep, timestep]),
                encoder_hidden_states=torch.cat([empty_embeds, prompt_embeds]),
            )
            .sample.float()
            .chunk(2)
        )
        return output_uncond + guidance_scale * (output_cond - output_uncond)

    def weights_fingerprint(self) -> bytes:
        """A digest of the UNet, VAE and text encoder weights, `alphas_cumprod`, the prediction type and the latent
        scaling. Weights are hashed in their loaded dtype: the same model in float16 and in float32 predicts
        differently, so a decoder must run the encoder's dtype. For a model loaded from files it is computed once per
        version of those files ([`~backbones.fingerprint_cache`]): a billion weights are not read again on every
        load."""
        modules = {"unet": self.unet, "vae": self.vae, "text_encoder": self.text_encoder}
        return self.schedule_fingerprint(modules, {"scaling_factor": self.vae.config.scaling_factor})

    def fingerprint_settings(self) -> dict[str, str]:
        return {"adapter": "sd", "dtype": str(self.dtype), "prediction_type": self.prediction_type}


def load_stable_diffusion_backbone(
    model: str | os.PathLike | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    prompt: str = "",
    cache_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
) -> StableDiffusionAdapter:
    """Registry factory of the `"sd"` backbone: [`StableDiffusionAdapter.from_pretrained`], with `model=None`
    selecting [`DEFAULT_MODEL`]."""
    return StableDiffusionAdapter.from_pretrained(
        DEFAULT_MODEL if model is None else model,
        device=device,
        dtype=dtype,
        prompt=prompt,
        cache_dir=cache_dir,
        allow_download=allow_download,
    )
