"""`CodTrainingModel`: the denoiser (transformer + condition codec) with the training-only heads, computing the loss.

The whole objective runs inside `forward`, so that one `accelerate`/DDP wrapper sees every trained parameter. The
training-only modules (the codec reconstruction head and the REPA projectors) are saved in training checkpoints and
left out of the exported pipeline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cod_diffc.models.condition_codec_cod import CodConditionCodec
from cod_diffc.models.transformer_cod import CodTransformer2DModel
from cod_diffc.training.config import LossConfig
from cod_diffc.training.losses import add_noise, alignment_loss, flow_matching_loss, masked_mse, one_step_loss
from cod_diffc.training.repa import RepaProjector


class CodReconstructionHead(nn.Module):
    """
    Decodes the condition map back to the diffusion-space sample, one token's patch at a time: 1x1 convolutions
    C -> C -> C -> Cin * p^2 with SiLU between, then the channel-major unpatchify (`pixel_shuffle`).

    Parameters:
        condition_channels (`int`): C, the channels of the condition map.
        out_channels (`int`): Cin, the channels of the diffusion space (3 for pixels, 4 for the SD-VAE latent).
        patch_size (`int`): p, the transformer's patch size (16 for pixels, 2 for latents).
    """

    def __init__(self, condition_channels: int, out_channels: int, patch_size: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(condition_channels, condition_channels, kernel_size=1),
            nn.SiLU(),
            nn.Conv2d(condition_channels, condition_channels, kernel_size=1),
            nn.SiLU(),
            nn.Conv2d(condition_channels, out_channels * patch_size * patch_size, kernel_size=1),
        )
        self.patch_size = patch_size

    def forward(self, condition: torch.Tensor) -> torch.Tensor:
        patches = self.layers(condition)  # (B, Cin p^2, H / p, W / p), channel-major
        return F.pixel_shuffle(patches, self.patch_size)  # (B, Cin, H, W)


class CodTrainingModel(nn.Module):
    """
    CoD's training objective around a transformer and a condition codec.

    Parameters:
        transformer ([`CodTransformer2DModel`]): the denoiser.
        condition_codec ([`CodConditionCodec`]): the condition codec (trained jointly, as in the release).
        loss_config ([`LossConfig`]): the loss weights and the condition dropout.
        repa_feature_dim (`int`, *optional*): feature width of the REPA encoder; `None` turns REPA off (no
            projectors are built).
    """

    def __init__(
        self,
        transformer: CodTransformer2DModel,
        condition_codec: CodConditionCodec,
        loss_config: LossConfig,
        repa_feature_dim: int | None = None,
    ):
        super().__init__()
        self.transformer = transformer
        self.condition_codec = condition_codec
        self.loss_config = loss_config
        hidden_size = transformer.config.hidden_size

        self.reconstruction_head = None
        if loss_config.codec_reconstruction > 0:
            self.reconstruction_head = CodReconstructionHead(
                hidden_size, transformer.config.in_channels, transformer.config.patch_size
            )

        self.repa_block_projector = self.repa_condition_projector = None
        self._aligned_tokens: torch.Tensor | None = None
        if repa_feature_dim is not None:
            block_index = loss_config.repa_block_index
            if block_index > transformer.config.num_layers:
                raise ValueError(
                    f"loss.repa_block_index={block_index} is beyond the {transformer.config.num_layers} backbone "
                    "blocks"
                )
            self.repa_block_projector = RepaProjector(hidden_size, hidden_size, repa_feature_dim)
            self.repa_condition_projector = RepaProjector(hidden_size, hidden_size, repa_feature_dim)
            # Backbone blocks come first in `blocks`; block k (1-based) returns its (B, L, C) tokens.
            transformer.blocks[block_index - 1].register_forward_hook(self._keep_aligned_tokens)

    def _keep_aligned_tokens(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._aligned_tokens = output

    @property
    def uses_repa(self) -> bool:
        return self.repa_block_projector is not None

    def forward(
        self,
        images: torch.Tensor,
        samples: torch.Tensor,
        noise: torch.Tensor,
        sigmas: torch.Tensor,
        null_mask: torch.Tensor,
        repa_targets: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            images: `(B, 3, H, W)` in [0, 1], the condition images.
            samples: `(B, Cin, h, w)` the clean diffusion-space samples x0 (pixels in [-1, 1] or scaled latents).
            noise: `(B, Cin, h, w)` standard normal noise.
            sigmas: `(B,)` noise levels.
            null_mask: `(B,)` bool, the samples whose condition is dropped (replaced by the null condition).
            repa_targets: `(B, L, D)` encoder features, one per token; required when REPA is on.

        Returns:
            `dict` of scalar tensors: `"loss"` (the weighted sum) and each term (`"flow"`, `"vq"`, and, when they
            are on, `"codec_reconstruction"`, `"one_step"`, `"repa_block"`, `"repa_condition"`).
        """
        weights = self.loss_config
        batch_size = samples.shape[0]
        keep = ~null_mask

        # 1. condition, with the dropped samples' images replaced by the null image inside the codec
        codec_output = self.condition_codec(images, null_mask=null_mask)
        condition = codec_output["condition"]  # (B, C, H / 16, W / 16)

        # 2. velocity at the sampled noise levels, and (unified stage) at pure noise in the same batch
        noisy = add_noise(samples, noise, sigmas)
        if weights.one_step > 0:
            noisy = torch.cat([noisy, noise])
            timesteps = torch.cat([sigmas, torch.ones_like(sigmas)])
            velocity = self.transformer(noisy, timesteps, torch.cat([condition, condition])).sample
        else:
            velocity = self.transformer(noisy, sigmas, condition).sample  # (B, Cin, h, w)

        terms = {
            "flow": flow_matching_loss(velocity[:batch_size], samples, noise),
            "vq": codec_output["vq_loss"],
        }
        if weights.one_step > 0:
            terms["one_step"] = one_step_loss(velocity[batch_size:], samples, noise)
        if self.reconstruction_head is not None:
            terms["codec_reconstruction"] = masked_mse(self.reconstruction_head(condition), samples, keep)
        if self.uses_repa:
            if repa_targets is None:
                raise ValueError("REPA is on: pass the encoder features as repa_targets")
            block_tokens = self._aligned_tokens[:batch_size]  # (B, L, C)
            terms["repa_block"] = alignment_loss(self.repa_block_projector(block_tokens), repa_targets)
            condition_tokens = condition.flatten(2).transpose(1, 2)  # (B, L, C)
            terms["repa_condition"] = alignment_loss(
                self.repa_condition_projector(condition_tokens), repa_targets, keep
            )
            self._aligned_tokens = None

        terms["loss"] = sum(getattr(weights, name) * value for name, value in terms.items())
        return terms
