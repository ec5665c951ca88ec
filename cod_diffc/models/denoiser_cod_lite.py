r"""The CoD-Lite denoiser ("DConv", Jia et al., arXiv 2604.12525): a convolutional pixel-space network on the token
grid of the CoD condition, with a per-pixel neural-field head. No attention: its cost is linear in the pixels.

Time convention, as [`CodTransformer2DModel`]: diffusers' flow matching. `timestep` is the noise level `sigma` in
[0, 1] (1 is pure noise) and the noisy sample `x_sigma = (1 - sigma) * x0 + sigma * eps`. The official network runs
on `t = 1 - sigma` (t = 0 is noise, t = 1 data) and predicts the clean image `x0` (`prediction_type` "sample"):
`forward` converts at its input and returns that prediction unchanged.

Module names follow the official checkpoint's (`cod-diffc convert` strips its `ema_denoiser.` / `net.` prefix).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .transformer_cod import CodRMSNorm, CodTimestepFeatures, dct_positional_features


def channel_layer_norm(hidden_states: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm over the channels of a `(B, C, h, w)` map, without affine parameters."""
    return F.layer_norm(hidden_states.permute(0, 2, 3, 1), hidden_states.shape[1:2], eps=eps).permute(0, 3, 1, 2)


class CodLiteTimestepEmbedding(nn.Module):
    """Sinusoidal features of `t` (256, max period 10,000, on the raw `t` in [0, 1]) through an MLP to `C`."""

    def __init__(self, hidden_size: int, num_features: int = 256):
        super().__init__()
        self.features = CodTimestepFeatures(num_features, max_period=10000.0)
        self.mlp = nn.Sequential(nn.Linear(num_features, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """`t`: `(B,)` → `(B, C)`."""
        return self.mlp(self.features(t).to(self.mlp[0].weight.dtype))


class CodLiteTokenEmbedding(nn.Module):
    """`proj2(cat[proj1(x), condition])`: the patchified noisy image (a bias-free 16 x 16 stride-16 convolution to
    `bottleneck_dim` channels) beside the condition map, mixed by a 1 x 1 convolution to `C`."""

    def __init__(self, in_channels: int, patch_size: int, bottleneck_dim: int, hidden_size: int):
        super().__init__()
        self.proj1 = nn.Conv2d(in_channels, bottleneck_dim, patch_size, stride=patch_size, bias=False)
        self.proj2 = nn.Conv2d(bottleneck_dim + hidden_size, hidden_size, kernel_size=1)

    def forward(self, sample: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """`sample` `(B, 3, H, W)`, `condition` `(B, C, H/p, W/p)` → tokens `(B, C, H/p, W/p)`."""
        return self.proj2(torch.cat([self.proj1(sample), condition], dim=1))


class CodLiteDiCoBlock(nn.Module):
    """A DiCo block on the token grid, modulated by the timestep embedding: a depthwise-conv mixer with channel
    attention, then a 1 x 1-conv MLP, each in an adaLN residual (shift, scale, gate)."""

    def __init__(self, hidden_size: int, mlp_ratio: float):
        super().__init__()
        inner = int(hidden_size * mlp_ratio)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
        self.conv1 = nn.Conv2d(hidden_size, hidden_size, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden_size, hidden_size, kernel_size=3, padding=1, groups=hidden_size)
        self.ca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden_size, hidden_size, kernel_size=1))
        self.conv3 = nn.Conv2d(hidden_size, hidden_size, kernel_size=1)
        self.conv4 = nn.Conv2d(hidden_size, inner, kernel_size=1)
        self.conv5 = nn.Conv2d(inner, hidden_size, kernel_size=1)

    def forward(self, tokens: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """`tokens` `(B, C, h, w)`, `temb` `(B, C)` → `(B, C, h, w)`."""
        modulation = self.adaLN_modulation(temb)[:, :, None, None]  # (B, 6C, 1, 1)
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation.chunk(6, dim=1)
        hidden = channel_layer_norm(tokens) * (1 + scale1) + shift1
        hidden = F.gelu(self.conv2(self.conv1(hidden)))
        hidden = hidden * torch.sigmoid(self.ca(hidden))
        tokens = tokens + gate1 * self.conv3(hidden)
        hidden = channel_layer_norm(tokens) * (1 + scale2) + shift2
        return tokens + gate2 * self.conv5(F.gelu(self.conv4(hidden)))


class CodLitePixelEmbedding(nn.Module):
    """Per pixel `[noisy RGB, condition features, DCT position]` → the head's width."""

    def __init__(self, num_inputs: int, head_size: int):
        super().__init__()
        self.embedder = nn.Sequential(nn.Linear(num_inputs, head_size))

    def forward(self, pixel_inputs: torch.Tensor) -> torch.Tensor:
        return self.embedder(pixel_inputs)


class CodLiteHeadBlock(nn.Module):
    """A residual MLP over each pixel's features, adaLN-modulated by that pixel's own conditioning vector."""

    def __init__(self, head_size: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(head_size, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(head_size, head_size), nn.SiLU(), nn.Linear(head_size, head_size))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(head_size, 3 * head_size))

    def forward(self, pixels: torch.Tensor, pixel_condition: torch.Tensor) -> torch.Tensor:
        """`pixels`, `pixel_condition`: `(..., P, hx)`."""
        shift, scale, gate = self.adaLN_modulation(pixel_condition).chunk(3, dim=-1)
        return pixels + gate * self.mlp(self.in_ln(pixels) * (1 + scale) + shift)


class CodLiteHead(nn.Module):
    """The neural-field head: each token's output `s` gives every pixel of its patch a conditioning vector
    (`cond_embed`), which modulates residual MLPs over the pixels' features."""

    def __init__(self, hidden_size: int, head_size: int, num_pixels: int, num_blocks: int):
        super().__init__()
        self.num_pixels, self.head_size = num_pixels, head_size
        self.cond_embed = nn.Linear(hidden_size, num_pixels * head_size)
        self.input_proj = nn.Linear(head_size, head_size)
        self.res_blocks = nn.ModuleList(CodLiteHeadBlock(head_size) for _ in range(num_blocks))

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """`pixels` `(B, L, P, hx)`, `tokens` `(B, L, C)` → `(B, L, P, hx)`."""
        pixel_condition = self.cond_embed(tokens).unflatten(-1, (self.num_pixels, self.head_size))  # (B, L, P, hx)
        pixels = self.input_proj(pixels)
        for block in self.res_blocks:
            pixels = block(pixels, pixel_condition)
        return pixels


class CodLiteFinalLayer(nn.Module):
    """RMSNorm (in float32 at least) and a linear map to RGB."""

    def __init__(self, head_size: int, out_channels: int):
        super().__init__()
        self.norm = CodRMSNorm(head_size, eps=1e-6)
        self.linear = nn.Linear(head_size, out_channels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(pixels))


class CodLiteDenoiserModel(ModelMixin, ConfigMixin):
    r"""
    The CoD-Lite denoiser: timestep and token embeddings, `num_backbone_blocks` DiCo blocks on the `H/16 x W/16`
    token grid (the CoD condition map's grid), and a neural-field head of `num_head_blocks` residual MLPs per pixel.

    Parameters:
        in_channels (`int`, defaults to 3): Image channels.
        patch_size (`int`, defaults to 16): Pixels per token side.
        hidden_size (`int`, defaults to 384): Token width `C`, also the condition map's channels.
        hidden_size_x (`int`, defaults to 32): The head's per-pixel width `hx`.
        bottleneck_dim (`int`, defaults to 128): Channels of the patchified image before it meets the condition.
        num_backbone_blocks (`int`, defaults to 21): DiCo blocks (the official `num_cond_blocks`).
        num_head_blocks (`int`, defaults to 3): Residual blocks of the head (the official `num_blocks -
            num_cond_blocks`).
        mlp_ratio (`float`, defaults to 4.0): Expansion of the DiCo blocks' MLP.
        dct_frequencies (`int`, defaults to 8): DCT frequencies per axis of the pixels' positional features.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        patch_size: int = 16,
        hidden_size: int = 384,
        hidden_size_x: int = 32,
        bottleneck_dim: int = 128,
        num_backbone_blocks: int = 21,
        num_head_blocks: int = 3,
        mlp_ratio: float = 4.0,
        dct_frequencies: int = 8,
    ):
        super().__init__()
        num_pixels = patch_size * patch_size
        self.t_embedder = CodLiteTimestepEmbedding(hidden_size)
        self.s_embedder = CodLiteTokenEmbedding(in_channels, patch_size, bottleneck_dim, hidden_size)
        self.blocks = nn.ModuleList(CodLiteDiCoBlock(hidden_size, mlp_ratio) for _ in range(num_backbone_blocks))
        self.y_embedder_x = nn.Conv2d(hidden_size, hidden_size_x * num_pixels, kernel_size=1)
        self.x_embedder = CodLitePixelEmbedding(in_channels + hidden_size_x + dct_frequencies**2, hidden_size_x)
        self.dec_net = CodLiteHead(hidden_size, hidden_size_x, num_pixels, num_head_blocks)
        self.final_layer = CodLiteFinalLayer(hidden_size_x, in_channels)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        condition: torch.Tensor,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        r"""
        Predicts the clean image.

        Args:
            hidden_states (`torch.Tensor`): `(B, 3, H, W)` noisy image `x_sigma` in the [-1, 1] scale, `H` and `W`
                multiples of `patch_size`.
            timestep (`torch.Tensor`): `(B,)` or scalar noise level `sigma` in [0, 1].
            condition (`torch.Tensor`): `(B, C, H/p, W/p)` decoded condition map (the null condition's for the
                unconditional prediction).

        Returns:
            [`Transformer2DModelOutput`] whose `sample` is `x0_hat`, `(B, 3, H, W)`.
        """
        batch_size, channels, height, width = hidden_states.shape
        patch = self.config.patch_size
        grid_height, grid_width = height // patch, width // patch
        # Convention boundary (input side): the official network runs on t = 1 - sigma.
        t = (1 - timestep.to(torch.promote_types(timestep.dtype, torch.float32))).expand(batch_size)  # (B,)
        temb = self.t_embedder(t)  # (B, C)
        tokens = self.s_embedder(hidden_states, condition)  # (B, C, h, w)
        for block in self.blocks:
            tokens = block(tokens, temb)

        # per-pixel inputs, pixel q = row * p + col of each patch; channel-major unfolds (c * P + q)
        num_pixels, head_size = patch * patch, self.config.hidden_size_x
        pixel_values = F.unfold(hidden_states, patch, stride=patch)  # (B, 3P, L)
        pixel_values = pixel_values.view(batch_size, channels, num_pixels, -1).permute(0, 3, 2, 1)  # (B, L, P, 3)
        pixel_condition = self.y_embedder_x(condition).flatten(2)  # (B, hx P, L), feature f of pixel q at f P + q
        pixel_condition = pixel_condition.view(batch_size, head_size, num_pixels, -1).permute(0, 3, 2, 1)
        dct = dct_positional_features(
            patch,
            self.config.dct_frequencies,
            hidden_states.device,
            torch.promote_types(hidden_states.dtype, torch.float32),
        )
        dct = dct.to(hidden_states.dtype).expand(batch_size, grid_height * grid_width, -1, -1)  # (B, L, P, F^2)
        pixels = self.x_embedder(torch.cat([pixel_values, pixel_condition, dct], dim=-1))  # (B, L, P, hx)
        pixels = self.dec_net(pixels, tokens.flatten(2).transpose(1, 2))  # (B, L, P, hx)
        output = self.final_layer(pixels)  # (B, L, P, 3)
        output = output.permute(0, 3, 2, 1).reshape(batch_size, channels * num_pixels, -1)  # (B, 3P, L)
        sample = F.fold(output, (height, width), patch, stride=patch)  # (B, 3, H, W): x0_hat
        if not return_dict:
            return (sample,)
        return Transformer2DModelOutput(sample=sample)
