r"""The Stable Diffusion backbone of DiffC: SD 1.x and 2.x (epsilon- or v-prediction) through diffusers components.

Time. SD is a discrete VP model: training step `i = 0..T-1` (`T = 1000`) has `alpha_i**2 = alphas_cumprod[i]`. The
adapter's continuous time `t` in [0, 1] maps to the fractional training timestep

    tau(t) = t * (T - 1),

and the log-SNR `lambda = log(alpha**2 / sigma**2)` is interpolated linearly in `tau` between the two neighbouring
integer steps, so that

    alpha(t)**2 = sigmoid(lambda(tau)),    sigma(t)**2 = sigmoid(-lambda(tau)).

This agrees with `alphas_cumprod` exactly at integer steps, is continuous and strictly decreasing in between, and
keeps `alpha**2 + sigma**2 == 1`. The UNet is fed the fractional timestep `tau` (its sinusoidal timestep embedding
is defined for any real value). `t = 1` is training step `T - 1`, where SD's `alpha` is about 0.068 (not 0), so
`x0_hat = (z_t - sigma * eps_hat) / alpha` is defined on the whole interval.

Latents. `encode_image` maps an image in [0, 1] to `2 * image - 1` and takes the *mean* of the VAE's posterior
(not a sample), times the VAE's `scaling_factor`: the clean latent must be a deterministic function of the image.
The VAE always runs in float32 (it runs once per image; the UNet and text encoder run in the adapter's dtype).

Condition. An optional text prompt conditions the UNet; it travels in the stream as side information (counted in
the rate: nothing for no prompt, else one format byte and the UTF-8 text, DEFLATE-compressed when that is shorter)
and the decoder restores it, so the decoder needs no prompt of its own. Classifier-free guidance mixes the prompt's
prediction with the empty prompt's; without a prompt the two coincide and the guidance scale changes nothing.
"""

import json
import os
import zlib
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError
from huggingface_hub.utils import validate_repo_id
from transformers import CLIPTextModel, CLIPTokenizer

from ..adapter import BackboneAdapter, _as_batch_scalar, fingerprint_state_dict
from ..errors import StreamError
from ..resources import vae_decode_bytes_per_pixel


DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
"""Hub id loaded when no model is given."""

MAX_PROMPT_BYTES = 4096
"""Largest prompt, in UTF-8 bytes, that a stream may carry."""

PIPELINE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
"""The subfolders of a diffusers Stable Diffusion pipeline that the adapter loads."""

PREDICTION_TYPES = ("epsilon", "v_prediction")

# The side information is empty for no prompt, else one format byte and the prompt: raw UTF-8, or raw DEFLATE
# (RFC 1951, no zlib header) of the UTF-8 when that is shorter.
_PROMPT_UTF8 = 0
_PROMPT_DEFLATE = 1


def _pack_prompt(prompt: str) -> bytes:
    """The side-information bytes of `prompt`: `b""` for no prompt, else the shorter of the two formats."""
    if not prompt:
        return b""
    text = prompt.encode("utf-8")
    compressor = zlib.compressobj(level=9, wbits=-15)
    deflated = compressor.compress(text) + compressor.flush()
    if len(deflated) < len(text):
        return bytes([_PROMPT_DEFLATE]) + deflated
    return bytes([_PROMPT_UTF8]) + text


def _unpack_prompt(side_info: bytes) -> str:
    """The prompt of [`_pack_prompt`]'s bytes; raises [`StreamError`] for bytes it did not write."""
    if not side_info:
        return ""
    method, payload = side_info[0], side_info[1:]
    if method == _PROMPT_UTF8:
        text = payload
    elif method == _PROMPT_DEFLATE:
        decompressor = zlib.decompressobj(wbits=-15)
        try:
            text = decompressor.decompress(payload, MAX_PROMPT_BYTES + 1)
        except zlib.error as error:
            raise StreamError(f"corrupt compressed prompt in the side information: {error}") from None
        if not decompressor.eof or decompressor.unused_data or decompressor.unconsumed_tail:
            raise StreamError(
                f"the compressed prompt in the side information is truncated, has trailing bytes or exceeds "
                f"{MAX_PROMPT_BYTES} bytes"
            )
    else:
        raise StreamError(f"unknown prompt format {method} in the side information of a Stable Diffusion stream")
    if not 0 < len(text) <= MAX_PROMPT_BYTES:
        raise StreamError(f"the prompt in the side information must be 1-{MAX_PROMPT_BYTES} bytes, got {len(text)}")
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StreamError(f"the prompt in the side information is not UTF-8: {error}") from None


def _locate_pipeline(
    model: str | os.PathLike, cache_dir: str | os.PathLike | None, allow_download: bool
) -> tuple[str, bool]:
    r"""
    Checks that `model` is a Stable Diffusion pipeline and returns `(location, is_local)` for `from_pretrained`.

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
        location, is_local = str(path), True
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
        location, is_local = str(model), False

    index = json.loads(Path(index_path).read_text())
    missing = [name for name in PIPELINE_COMPONENTS if not (isinstance(index.get(name), list) and index[name][0])]
    if missing:
        raise ValueError(
            f"model directory of the wrong kind: {model} holds a {index.get('_class_name', 'pipeline')}, not a Stable "
            f"Diffusion pipeline (its model_index.json lacks {', '.join(missing)})"
        )
    return location, is_local


def _not_cached_message(repo_id: str) -> str:
    components = " ".join(f"'{name}/*'" for name in PIPELINE_COMPONENTS)
    return (
        f"Stable Diffusion model {repo_id!r} is not a local directory and not (or only partly) in the Hugging Face "
        f"cache; pass allow_download=True to fetch the files it needs, or download them with "
        f"`hf download {repo_id} --include model_index.json {components}`"
    )


class StableDiffusionAdapter(BackboneAdapter):
    r"""
    A DiffC backbone on a Stable Diffusion 1.x / 2.x UNet, its VAE and its CLIP text encoder.

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
        prompt (`str`, defaults to `""`): The encoder's text prompt; see [`set_prompt`].
    """

    name = "sd"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        scheduler: SchedulerMixin,
        prompt: str = "",
    ):
        prediction_type = scheduler.config.get("prediction_type", "epsilon")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"Stable Diffusion prediction type {prediction_type!r} is not supported; expected one of "
                f"{', '.join(PREDICTION_TYPES)}"
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
        if alphas_cumprod is None or alphas_cumprod.ndim != 1 or len(alphas_cumprod) < 2:
            raise ValueError(f"{type(scheduler).__name__} has no alphas_cumprod table of a discrete VP schedule")
        alphas_cumprod = alphas_cumprod.to("cpu", torch.float64)  # (T,)
        inside_unit_interval = bool(((alphas_cumprod > 0) & (alphas_cumprod < 1)).all())
        if not (inside_unit_interval and bool((alphas_cumprod.diff() < 0).all())):
            raise ValueError(
                "alphas_cumprod must decrease strictly inside (0, 1); schedules reaching alpha = 0 (zero terminal "
                "SNR) are not supported"
            )

        self.unet = unet.eval().requires_grad_(False)
        self.text_encoder = text_encoder.to(unet.device).eval().requires_grad_(False)
        self.vae = vae.to(unet.device, torch.float32).eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.prediction_type: str = prediction_type
        self.alphas_cumprod = alphas_cumprod
        self._log_snr = alphas_cumprod.log() - (-alphas_cumprod).log1p()  # (T,), decreasing
        self._empty_prompt_embeds = self.encode_prompt("")  # (1, L, D)
        self._fingerprint: bytes | None = None
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
                Compute dtype of the UNet and text encoder; defaults to float16 on CUDA and float32 elsewhere.
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
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        location, is_local = _locate_pipeline(model, cache_dir, allow_download)
        hub_options = {"cache_dir": cache_dir, "local_files_only": not allow_download}
        try:
            unet = UNet2DConditionModel.from_pretrained(location, subfolder="unet", dtype=dtype, **hub_options)
            vae = AutoencoderKL.from_pretrained(location, subfolder="vae", dtype=torch.float32, **hub_options)
            text_encoder = CLIPTextModel.from_pretrained(
                location, subfolder="text_encoder", dtype=dtype, **hub_options
            )
            tokenizer = CLIPTokenizer.from_pretrained(location, subfolder="tokenizer", **hub_options)
            # DDPMScheduler builds alphas_cumprod from any SD scheduler config (PNDM, DDIM, Euler, ...).
            scheduler = DDPMScheduler.from_pretrained(location, subfolder="scheduler", **hub_options)
        except OSError as error:
            if is_local:
                raise
            raise FileNotFoundError(_not_cached_message(location)) from error
        return cls(unet.to(device), vae, text_encoder, tokenizer, scheduler, prompt=prompt)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def num_train_timesteps(self) -> int:
        """`T`, the number of discrete training steps."""
        return len(self.alphas_cumprod)

    @property
    def prompt(self) -> str:
        """The current text prompt (`""`: none)."""
        return self._prompt

    def encode_prompt(self, prompt: str) -> torch.Tensor:
        r"""
        The text encoder's `(1, L, D)` hidden states of `prompt`, padded to the tokenizer's `model_max_length`, in
        the UNet's dtype.

        Raises:
            `ValueError`: If the prompt is longer than the text encoder takes (the tokens are not truncated: a
                stream would carry bytes the model never sees).
        """
        max_length = self.tokenizer.model_max_length
        input_ids = self.tokenizer(
            prompt, padding="max_length", max_length=max_length, truncation=False, return_tensors="pt"
        ).input_ids  # (1, L)
        if input_ids.shape[1] > max_length:
            raise ValueError(
                f"the prompt is {input_ids.shape[1]} tokens long, more than the {max_length} the text encoder takes; "
                "shorten it"
            )
        hidden_states = self.text_encoder(input_ids.to(self.device))[0]  # (1, L, D)
        return hidden_states.to(self.dtype)

    def set_prompt(self, prompt: str) -> None:
        """Sets the text prompt that conditions the UNet (`""`: none). The encoder sends it in the stream, and
        [`load_condition`] sets it on the decoder side."""
        if not isinstance(prompt, str):
            raise ValueError(f"the prompt must be a string, got {prompt!r}")
        if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
            raise ValueError(f"the prompt must be at most {MAX_PROMPT_BYTES} bytes in UTF-8")
        self._prompt_embeds = self.encode_prompt(prompt) if prompt else self._empty_prompt_embeds
        self._prompt = prompt

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def working_memory_bytes(self, height: int, width: int) -> int:
        """The VAE decode at full resolution dominates (the UNet runs on a latent 64 times smaller)."""
        return height * width * vae_decode_bytes_per_pixel(self.vae.config.block_out_channels)

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        factor = self.size_multiple
        if height < 1 or width < 1 or height % factor or width % factor:
            raise ValueError(
                f"Stable Diffusion needs image sides that are positive multiples of {factor} (its VAE downsamples "
                f"by {factor}), got {height}x{width}"
            )
        return self.vae.config.latent_channels, height // factor, width // factor

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        image = image.to(self.device, torch.float32)
        posterior_mean = self.vae.encode(2 * image - 1).latent_dist.mean  # (1, C, h, w)
        return posterior_mean * self.vae.config.scaling_factor

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        latent = latent.to(self.device, torch.float32) / self.vae.config.scaling_factor
        image = self.vae.decode(latent).sample  # (1, 3, H, W) in [-1, 1]
        return ((image + 1) / 2).clamp(0, 1)

    def training_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The fractional training timestep `tau = t * (T - 1)` of time `t`, in float64 on the CPU."""
        t = t.detach().to("cpu", torch.float64)
        if bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"t must lie in [0, 1], got {t.tolist()}")
        return t * (self.num_train_timesteps - 1)

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        timestep = self.training_timestep(t)
        lower = timestep.floor().long().clamp(max=self.num_train_timesteps - 2)
        log_snr = torch.lerp(self._log_snr[lower], self._log_snr[lower + 1], timestep - lower)
        alpha, sigma = torch.sigmoid(log_snr).sqrt(), torch.sigmoid(-log_snr).sqrt()
        return alpha.to(t.device, t.dtype), sigma.to(t.device, t.dtype)

    def predict_epsilon(self, z_t: torch.Tensor, t: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        batch_size = z_t.shape[0]
        timestep = self.training_timestep(t).to(self.device, torch.float32).expand(batch_size)  # (B,)
        sample = z_t.to(self.dtype)  # (B, C, h, w)
        prompt_embeds = self._prompt_embeds.expand(batch_size, -1, -1)  # (B, L, D)
        # Without a prompt the conditional prediction is the unconditional one: guidance changes nothing.
        if guidance_scale == 1 or not self._prompt:
            model_output = self.unet(sample, timestep, encoder_hidden_states=prompt_embeds).sample.float()
        else:
            empty_embeds = self._empty_prompt_embeds.expand(batch_size, -1, -1)  # (B, L, D)
            output_uncond, output_cond = (
                self.unet(
                    torch.cat([sample, sample]),
                    torch.cat([timestep, timestep]),
                    encoder_hidden_states=torch.cat([empty_embeds, prompt_embeds]),
                )
                .sample.float()
                .chunk(2)
            )
            model_output = output_uncond + guidance_scale * (output_cond - output_uncond)
        if self.prediction_type == "epsilon":
            return model_output
        # v = alpha * eps - sigma * x0 and z_t = alpha * x0 + sigma * eps give eps = alpha * v + sigma * z_t.
        alpha, sigma = (_as_batch_scalar(coefficient, z_t) for coefficient in self.alpha_sigma(t))
        return alpha * model_output + sigma * z_t.float()

    def prepare_condition(self, image: torch.Tensor) -> bytes:
        return _pack_prompt(self._prompt)

    def load_condition(self, side_info: bytes, height: int, width: int) -> None:
        self.set_prompt(_unpack_prompt(side_info))

    def fingerprint(self) -> bytes:
        """A digest of the UNet, VAE and text encoder weights, `alphas_cumprod`, the prediction type and the latent
        scaling; computed on first use and cached. Weights are hashed in their loaded dtype: the same model in
        float16 and in float32 predicts differently, so a decoder must run the encoder's dtype."""
        if self._fingerprint is None:
            weights = {
                f"{prefix}.{key}": tensor
                for prefix, module in (("unet", self.unet), ("vae", self.vae), ("text_encoder", self.text_encoder))
                for key, tensor in module.state_dict().items()
            }
            weights["scheduler.alphas_cumprod"] = self.alphas_cumprod
            config = {"prediction_type": self.prediction_type, "scaling_factor": self.vae.config.scaling_factor}
            self._fingerprint = fingerprint_state_dict(weights, config)
        return self._fingerprint


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
