r"""The `ldm` backbone: an unconditional latent diffusion model of the Stable Diffusion family (a diffusers
`UNet2DModel` on `AutoencoderKL` latents, DDPM-trained), saved as a [`~cod_diffc.LatentDiffusionPipeline`] folder:
what `cod-diffc train` writes for `model.kind: ldm`, and the embedded `ldm-small` that the A/B against CoD uses.

Time and predictions: [`~backbones.discrete_vp.DiscreteVPAdapterMixin`], the path Stable Diffusion takes. Latents:
[`~backbones.vae_latent.VaeLatentAdapterMixin`]. No condition: the stream carries no side information, and guidance
changes nothing.
"""

import os
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

from cod_diffc.models.vae_geometry import unet_downsampling, vae_downsampling

from .adapter import Condition
from .discrete_vp import DiscreteVPAdapterMixin
from .fingerprint_cache import CachedFingerprintMixin
from .vae_latent import VaeLatentAdapterMixin


DEFAULT_MODEL = "ldm-small"
"""The model `--backbone ldm` loads when `--model` is not given (embedded in the package)."""


class LatentDiffusionAdapter(CachedFingerprintMixin, VaeLatentAdapterMixin, DiscreteVPAdapterMixin):
    r"""
    A backbone on an unconditional `UNet2DModel`, its `AutoencoderKL` and the `alphas_cumprod` of its scheduler.

    Parameters:
        unet (`UNet2DModel`): The denoiser; maps the VAE's `latent_channels` to as many.
        vae (`AutoencoderKL`): The autoencoder; moved to the UNet's device and float32.
        scheduler (`DDPMScheduler`): Any diffusers scheduler with `alphas_cumprod`; its `config.prediction_type`
            (`"epsilon"`, `"v_prediction"` or `"sample"`) says what the UNet predicts.
    """

    name = "ldm"

    def __init__(self, unet: UNet2DModel, vae: AutoencoderKL, scheduler: DDPMScheduler):
        channels = vae.config.latent_channels
        if not unet.config.in_channels == unet.config.out_channels == channels:
            raise ValueError(
                f"the UNet maps {unet.config.in_channels} to {unet.config.out_channels} channels, but the VAE latent "
                f"has {channels}"
            )
        self.set_discrete_schedule(scheduler.alphas_cumprod, scheduler.config.get("prediction_type", "epsilon"))
        self.unet = unet.eval().requires_grad_(False)
        self.vae = vae.to(unet.device, torch.float32).eval().requires_grad_(False)

    @classmethod
    def from_pretrained(
        cls, model: str | os.PathLike, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
    ) -> "LatentDiffusionAdapter":
        r"""
        Loads a [`~cod_diffc.LatentDiffusionPipeline`] folder (`unet/`, `vae/`, `scheduler/`).

        Args:
            model (`str` or `os.PathLike`): The folder, or the name of an embedded model (`"ldm-small"`).
            device (`torch.device` or `str`, defaults to `"cpu"`): Where the networks run.
            dtype (`torch.dtype`, *optional*): The UNet's compute dtype; float32 unless given (weights may be stored in
                float16, as the embedded model's are). The VAE runs in float32.

        Raises:
            `FileNotFoundError`: If the folder does not exist. `ValueError`: If it is not a latent diffusion pipeline.
        """
        from cod_diffc.pipelines.embedded_models import EMBEDDED_LATENT_DIFFUSION_MODELS, resolve_embedded_model

        folder = Path(resolve_embedded_model(model, EMBEDDED_LATENT_DIFFUSION_MODELS))
        if not folder.is_dir():
            raise FileNotFoundError(f"no latent diffusion model directory at {folder}")
        missing = [name for name in ("unet", "vae", "scheduler") if not (folder / name).is_dir()]
        if missing:
            raise ValueError(
                f"model directory of the wrong kind: {folder} lacks {', '.join(missing)}/; expected a "
                "LatentDiffusionPipeline folder (what `cod-diffc train` exports for model.kind: ldm)"
            )
        dtype = torch.float32 if dtype is None else dtype
        unet = UNet2DModel.from_pretrained(folder, subfolder="unet", dtype=dtype, local_files_only=True)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", dtype=torch.float32, local_files_only=True)
        scheduler = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
        adapter = cls(unet.to(device), vae, scheduler)
        adapter.model_files = sorted(path for path in folder.rglob("*") if path.is_file())
        return adapter

    @property
    def size_multiple(self) -> int:
        """The VAE's downsampling times the UNet's: a `UNet2DModel` needs latent sides it can halve at every level."""
        return vae_downsampling(self.vae) * unet_downsampling(self.unet)

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def predict_model_output(
        self, z_t: torch.Tensor, timestep: torch.Tensor, condition: Condition, guidance_scale: float
    ) -> torch.Tensor:
        return self.unet(z_t.to(self.dtype), timestep).sample.float()  # (B, C, h, w)

    def weights_fingerprint(self) -> bytes:
        """A digest of the UNet and VAE weights (in their loaded dtype), `alphas_cumprod`, the prediction type and
        the latent scaling."""
        modules = {"unet": self.unet, "vae": self.vae}
        return self.schedule_fingerprint(modules, {"scaling_factor": self.vae.config.scaling_factor})

    def fingerprint_settings(self) -> dict[str, str]:
        return {"adapter": "ldm", "dtype": str(self.dtype)}

    def known_model(self, fingerprint: bytes) -> str | None:
        """The embedded model with this fingerprint (loaded in float32, the default), and how to load it."""
        from cod_diffc.pipelines.embedded_models import EMBEDDED_MODEL_FINGERPRINTS

        return EMBEDDED_MODEL_FINGERPRINTS.get(fingerprint.hex())


def load_latent_diffusion_backbone(
    model: str | os.PathLike | None = None, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> LatentDiffusionAdapter:
    """Registry factory of the `"ldm"` backbone: [`LatentDiffusionAdapter.from_pretrained`]; `model=None` selects
    the embedded `ldm-small`."""
    return LatentDiffusionAdapter.from_pretrained(
        DEFAULT_MODEL if model is None else model, device=device, dtype=dtype
    )
