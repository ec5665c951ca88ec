"""The CoD denoiser: a condition-map-driven DiT with a PixNerd (pixel) or DDT (latent) head.

Reimplemented from the description of the official CoD code (microsoft/GenCodec, folder `CoD/`, MIT) in
`shared/reference/cod_official/README.md`; no official code is used.
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin, AttentionModuleMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import TimestepEmbedding
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype for the precision-critical pieces (norms, timestep features, RoPE): at least float32, float64 if
    the input is float64."""
    return torch.promote_types(dtype, torch.float32)


class CodTimestepFeatures(nn.Module):
    r"""
    Sinusoidal features `[cos(t * f_k), sin(t * f_k)]` (cos first) with `f_k = max_period ** (-k / (dim / 2))`.

    CoD feeds the raw flow time `t` in [0, 1] (not multiplied by 1000), hence the small `max_period` of 10.

    Parameters:
        num_channels (`int`): Number of features, even.
        max_period (`float`): Period of the slowest frequency.
    """

    def __init__(self, num_channels: int, max_period: float):
        super().__init__()
        self.num_channels = num_channels
        self.max_period = max_period

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        # Computed in float32 at least (float64 when `timestep` is float64).
        dtype = _compute_dtype(timestep.dtype)
        half = self.num_channels // 2
        exponent = torch.arange(half, device=timestep.device, dtype=dtype) * (-math.log(self.max_period) / half)
        angles = timestep.to(dtype)[:, None] * torch.exp(exponent)[None, :]  # (B, F/2)
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, F)


class CodRMSNorm(nn.Module):
    r"""
    RMSNorm with a learnable weight. The normalisation runs in float32 at least (float64 for float64 inputs).

    Parameters:
        dim (`int`): Size of the normalised (last) dimension.
        eps (`float`): Added to the mean square.
    """

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(_compute_dtype(input_dtype))
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.eps)
        return hidden_states.to(input_dtype) * self.weight


class CodRotaryPosEmbed(nn.Module):
    r"""
    2-D axial rotary position embedding on the token grid, with interleaved complex pairs.

    Positions are `x = linspace(0, position_scale, grid_width)` and `y = linspace(0, position_scale, grid_height)`,
    so they depend on the grid only through its size and every resolution spans the same range. There are
    `head_dim / 4` frequencies `theta ** (-4k / head_dim)`; the pair of channels `(2j, 2j + 1)` is one complex
    number, and pair `2k` turns by `x * f_k`, pair `2k + 1` by `y * f_k` (x and y alternate).

    Parameters:
        head_dim (`int`): Attention head dimension, divisible by 4.
        theta (`float`): RoPE base.
        position_scale (`float`): Largest position on each axis.
    """

    def __init__(self, head_dim: int, theta: float, position_scale: float):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.position_scale = position_scale

    def forward(
        self, grid_height: int, grid_width: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns `(cos, sin)` of the rotation angles, each `(grid_height * grid_width, head_dim / 2)`, in
        float32 at least (float64 when `dtype` is float64)."""
        dtype = _compute_dtype(dtype)
        exponent = torch.arange(self.head_dim // 4, device=device, dtype=dtype) * (-4.0 / self.head_dim)
        frequencies = torch.pow(self.theta, exponent)  # (hd/4,)
        positions_y = torch.linspace(0, self.position_scale, grid_height, device=device, dtype=dtype)
        positions_x = torch.linspace(0, self.position_scale, grid_width, device=device, dtype=dtype)
        grid_y, grid_x = torch.meshgrid(positions_y, positions_x, indexing="ij")  # (Ht, Wt) each
        angles_x = grid_x.reshape(-1, 1) * frequencies  # (L, hd/4), tokens row-major
        angles_y = grid_y.reshape(-1, 1) * frequencies  # (L, hd/4)
        angles = torch.stack([angles_x, angles_y], dim=-1).reshape(grid_height * grid_width, -1)  # (L, hd/2)
        return torch.cos(angles), torch.sin(angles)


def apply_rotary_emb(hidden_states: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotates the interleaved channel pairs `(2j, 2j + 1)` of `hidden_states` (B, heads, L, head_dim) by the angles
    whose `(cos, sin)` (L, head_dim / 2) are given. Computed in the dtype of `cos`, returned in the input dtype."""
    cos, sin = rotary_emb
    pairs = hidden_states.to(cos.dtype).unflatten(-1, (-1, 2))  # (B, heads, L, hd/2, 2)
    real, imag = pairs.unbind(-1)  # (B, heads, L, hd/2) each
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)  # (B, heads, L, hd/2, 2)
    return rotated.flatten(-2).to(hidden_states.dtype)  # (B, heads, L, hd)


class CodAttnProcessor:
    r"""
    The attention computation of [`CodAttention`]: fused bias-free qkv projection, per-head QK-RMSNorm, 2-D RoPE, then
    scaled dot-product attention through diffusers' attention dispatcher (so `set_attention_backend` picks the
    kernel; the default is torch's SDPA), then the output projection.
    """

    _attention_backend = None
    _parallel_config = None

    def __call__(
        self, attn: "CodAttention", hidden_states: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        batch_size, seq_len, _ = hidden_states.shape
        qkv = attn.to_qkv(hidden_states)  # (B, L, 3C): rows [0, C) query, [C, 2C) key, [2C, 3C) value
        qkv = qkv.view(batch_size, seq_len, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, heads, L, hd)
        query, key, value = qkv.unbind(0)  # (B, heads, L, hd) each
        query = apply_rotary_emb(attn.norm_q(query), rotary_emb)
        key = apply_rotary_emb(attn.norm_k(key), rotary_emb)
        # The dispatcher takes (B, L, heads, hd).
        hidden_states = dispatch_attention_fn(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )  # (B, L, heads, hd)
        return attn.to_out(hidden_states.reshape(batch_size, seq_len, -1))  # (B, L, C)


class CodAttention(nn.Module, AttentionModuleMixin):
    r"""
    Multi-head self-attention with a fused bias-free qkv projection, QK-RMSNorm and 2-D RoPE, on diffusers' attention
    module interface: the computation is its processor ([`CodAttnProcessor`] by default).

    Parameters:
        hidden_size (`int`): Token width.
        num_heads (`int`): Number of heads.
        eps (`float`): Epsilon of the per-head query/key RMSNorm.
        processor (`CodAttnProcessor`, *optional*): The attention processor; a new [`CodAttnProcessor`] by default.
    """

    _default_processor_cls = CodAttnProcessor
    _available_processors = [CodAttnProcessor]
    _supports_qkv_fusion = False  # the projection is fused already

    def __init__(self, hidden_size: int, num_heads: int, eps: float, processor: CodAttnProcessor | None = None):
        super().__init__()
        self.num_heads = num_heads
        head_dim = hidden_size // num_heads
        self.to_qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        self.norm_q = CodRMSNorm(head_dim, eps=eps)
        self.norm_k = CodRMSNorm(head_dim, eps=eps)
        self.to_out = nn.Linear(hidden_size, hidden_size)
        self.set_processor(processor if processor is not None else self._default_processor_cls())

    def forward(self, hidden_states: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """`hidden_states` (B, L, C) -> (B, L, C)."""
        return self.processor(self, hidden_states, rotary_emb)


class CodSwiGLU(nn.Module):
    r"""
    Bias-free SwiGLU feed-forward: `down_proj(silu(gate_proj(x)) * up_proj(x))`.

    Parameters:
        hidden_size (`int`): Token width.
        inner_size (`int`): Width of the gated layer.
    """

    def __init__(self, hidden_size: int, inner_size: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, inner_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, inner_size, bias=False)
        self.down_proj = nn.Linear(inner_size, hidden_size, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(hidden_states)) * self.up_proj(hidden_states))


class CodTransformerBlock(nn.Module):
    r"""
    Pre-RMSNorm transformer block with 6-way adaLN (shift, scale, gate for attention, then for the MLP). The adaLN
    projection has no activation inside: the caller passes an already activated condition, one vector per sample
    (backbone) or per token (DDT head).

    Parameters:
        hidden_size (`int`): Token width.
        num_heads (`int`): Number of attention heads.
        mlp_inner_size (`int`): Width of the SwiGLU gated layer.
        eps (`float`): RMSNorm epsilon.
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_inner_size: int, eps: float):
        super().__init__()
        self.norm1 = CodRMSNorm(hidden_size, eps=eps)
        self.attn = CodAttention(hidden_size, num_heads, eps=eps)
        self.norm2 = CodRMSNorm(hidden_size, eps=eps)
        self.ff = CodSwiGLU(hidden_size, mlp_inner_size)
        self.adaln_modulation = nn.Linear(hidden_size, 6 * hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        modulation_condition: torch.Tensor,
        rotary_emb: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """`hidden_states` (B, L, C); `modulation_condition` (B, 1, C) or (B, L, C)."""
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaln_modulation(
            modulation_condition
        ).chunk(6, dim=-1)  # (B, 1 or L, C) each
        norm_hidden_states = self.norm1(hidden_states) * (1 + scale_msa) + shift_msa
        hidden_states = hidden_states + gate_msa * self.attn(norm_hidden_states, rotary_emb)
        norm_hidden_states = self.norm2(hidden_states) * (1 + scale_mlp) + shift_mlp
        hidden_states = hidden_states + gate_mlp * self.ff(norm_hidden_states)
        return hidden_states


class CodPixelHeadBlock(nn.Module):
    r"""
    PixNerd neural-field block: a per-patch pixel MLP whose weights a hypernetwork predicts from the token's head
    condition. `x += silu(RMSNorm(x) @ W1) @ W2`, no biases, with `W1` (pixel_size, mlp_ratio * pixel_size) and `W2`
    (mlp_ratio * pixel_size, pixel_size) L2-normalised along their input dimension.

    Parameters:
        hidden_size (`int`): Width of the head condition (the backbone token width).
        pixel_hidden_size (`int`): Width of the per-pixel features.
        mlp_ratio (`int`): Expansion of the pixel MLP.
        eps (`float`): RMSNorm epsilon.
    """

    def __init__(self, hidden_size: int, pixel_hidden_size: int, mlp_ratio: int, eps: float):
        super().__init__()
        self.pixel_hidden_size = pixel_hidden_size
        self.mlp_inner_size = mlp_ratio * pixel_hidden_size
        self.norm = CodRMSNorm(pixel_hidden_size, eps=eps)
        self.weight_generator = nn.Linear(hidden_size, 2 * pixel_hidden_size * self.mlp_inner_size)

    def forward(self, pixel_states: torch.Tensor, head_condition: torch.Tensor) -> torch.Tensor:
        """`pixel_states` (B, L, P, hx) for P pixels per token; `head_condition` (B, L, C)."""
        weight_in, weight_out = self.weight_generator(head_condition).chunk(2, dim=-1)  # (B, L, hx * r hx) each
        weight_in = weight_in.unflatten(-1, (self.pixel_hidden_size, self.mlp_inner_size))  # (B, L, hx, r hx)
        weight_out = weight_out.unflatten(-1, (self.mlp_inner_size, self.pixel_hidden_size))  # (B, L, r hx, hx)
        weight_in = F.normalize(weight_in, dim=-2)
        weight_out = F.normalize(weight_out, dim=-2)
        hidden = F.silu(torch.matmul(self.norm(pixel_states), weight_in))  # (B, L, P, r hx)
        return pixel_states + torch.matmul(hidden, weight_out)  # (B, L, P, hx)


def dct_positional_features(
    patch_size: int, num_frequencies: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """DCT-style positional features of the pixels of one patch, `(patch_size**2, num_frequencies**2)`.

    Pixel coordinates run `linspace(0, 1, patch_size)` on each axis and frequencies `linspace(0, num_frequencies,
    num_frequencies)` (not `0 .. num_frequencies - 1`). Feature `fx * num_frequencies + fy` of the pixel at
    (row, col) is `cos(pi * fx * x_col) * cos(pi * fy * y_row) / (1 + fx * fy)`; pixels are row-major.
    """
    coordinates = torch.linspace(0, 1, patch_size, device=device, dtype=dtype)  # (p,)
    frequencies = torch.linspace(0, num_frequencies, num_frequencies, device=device, dtype=dtype)  # (F,)
    cos_grid = torch.cos(math.pi * coordinates[:, None] * frequencies[None, :])  # (p, F): [coordinate, frequency]
    # basis[row, col, fx, fy] = cos(pi fx x_col) * cos(pi fy y_row)
    basis = cos_grid[None, :, :, None] * cos_grid[:, None, None, :]  # (p_row, p_col, F_x, F_y)
    basis = basis / (1 + frequencies[:, None] * frequencies[None, :])  # (p, p, F, F)
    return basis.reshape(patch_size * patch_size, num_frequencies * num_frequencies)  # (p^2, F^2)


class CodTransformer2DModel(ModelMixin, ConfigMixin, AttentionMixin):
    r"""
    The CoD denoiser from [CoD: A Diffusion Foundation Model for Image
    Compression](https://huggingface.co/papers/2511.18706): a DiT whose tokens carry the condition map of the CoD
    condition codec, followed by a PixNerd head (pixel model, patch 16 on RGB in [-1, 1]) or a DDT head (latent model,
    patch 2 on a 4-channel VAE latent).

    **Time convention.** This model follows diffusers' flow matching convention, not the official CoD one:
    `timestep` is the noise level `sigma` in [0, 1] (1 is pure noise, 0 is data, not multiplied by 1000), the noisy
    sample is `x_sigma = (1 - sigma) * x0 + sigma * eps`, and the output is the velocity `v = eps - x0`
    (`= dx/dsigma`). The official network runs on `t = 1 - sigma` (t = 0 noise, t = 1 data) and predicts `x0 - eps`;
    `forward` converts at its input (`t = 1 - sigma`) and at its output (`sample = -v_cod`) and nowhere else.

    Data flow (p = patch size, L = (H / p) * (W / p) tokens, C = hidden size, s = per-token head condition):

    ```
    sigma -> t = 1 - sigma -> sinusoid -> MLP -> temb (B, C)
    [patch, condition token] -> token_embed -> N backbone blocks, adaLN(silu(temb)) -> s = silu(temb + tokens)
    latent head: [patch, condition token] -> head_embed -> M blocks, adaLN(s) -> LayerNorm, adaLN(s), Linear
    pixel head:  per pixel [noisy value, condition features, DCT] -> pixel_embed
                 -> M pixel MLPs with weights predicted from s -> RMSNorm, Linear
    -> unpatchify -> v_cod = x0 - eps -> sample = -v_cod = eps - x0
    ```

    The official checkpoints index all blocks in one list (backbone first, then head); this model keeps that layout in
    `blocks` so that checkpoint keys convert by renaming only.

    Parameters:
        in_channels (`int`, *optional*, defaults to `3`):
            Channels of the diffused sample (3 for RGB, 4 for the SD-VAE latent).
        patch_size (`int`, *optional*, defaults to `16`):
            Side of the square patch that forms one token (16 for pixel, 2 for latent).
        hidden_size (`int`, *optional*, defaults to `1152`):
            Token width; also the number of channels of the condition map.
        num_attention_heads (`int`, *optional*, defaults to `16`):
            Number of attention heads; the head dimension must be divisible by 4 (2-D RoPE).
        num_layers (`int`, *optional*, defaults to `26`):
            Number of backbone blocks.
        num_head_layers (`int`, *optional*, defaults to `4`):
            Number of head blocks (PixNerd blocks or DDT transformer blocks).
        head_type (`str`, *optional*, defaults to `"pixel"`):
            `"pixel"` for the PixNerd head, `"latent"` for the DDT head.
        head_hidden_size (`int`, *optional*, defaults to `64`):
            Per-pixel feature width of the PixNerd head (pixel head only).
        head_mlp_ratio (`int`, *optional*, defaults to `2`):
            Expansion of the hypernetwork-predicted pixel MLP (pixel head only).
        head_dct_frequencies (`int`, *optional*, defaults to `8`):
            DCT frequencies per axis of the pixel positional features (pixel head only).
        mlp_ratio (`float`, *optional*, defaults to `4.0`):
            The SwiGLU gated layer has `int(2 / 3 * int(mlp_ratio * hidden_size))` channels.
        timestep_freq_dim (`int`, *optional*, defaults to `256`):
            Number of sinusoidal timestep features.
        timestep_max_period (`float`, *optional*, defaults to `10.0`):
            Period of the slowest timestep frequency (the time is in [0, 1]).
        rope_theta (`float`, *optional*, defaults to `10000.0`):
            RoPE base.
        rope_position_scale (`float`, *optional*, defaults to `16.0`):
            RoPE positions run from 0 to this value along each axis, whatever the grid size.
        norm_eps (`float`, *optional*, defaults to `1e-6`):
            Epsilon of every RMSNorm and of the DDT final LayerNorm.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CodTransformerBlock", "CodPixelHeadBlock"]
    _repeated_blocks = ["CodTransformerBlock"]
    _skip_layerwise_casting_patterns = ["time_embed", "norm"]
    _keep_in_fp32_modules = ["time_embed"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        patch_size: int = 16,
        hidden_size: int = 1152,
        num_attention_heads: int = 16,
        num_layers: int = 26,
        num_head_layers: int = 4,
        head_type: Literal["pixel", "latent"] = "pixel",
        head_hidden_size: int = 64,
        head_mlp_ratio: int = 2,
        head_dct_frequencies: int = 8,
        mlp_ratio: float = 4.0,
        timestep_freq_dim: int = 256,
        timestep_max_period: float = 10.0,
        rope_theta: float = 10000.0,
        rope_position_scale: float = 16.0,
        norm_eps: float = 1e-6,
    ):
        super().__init__()
        for name, value in [
            ("in_channels", in_channels),
            ("patch_size", patch_size),
            ("hidden_size", hidden_size),
            ("num_attention_heads", num_attention_heads),
            ("num_layers", num_layers),
            ("head_hidden_size", head_hidden_size),
            ("head_mlp_ratio", head_mlp_ratio),
            ("head_dct_frequencies", head_dct_frequencies),
            ("timestep_freq_dim", timestep_freq_dim),
        ]:
            if value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value}.")
        if num_head_layers < 0:
            raise ValueError(f"`num_head_layers` must be non-negative, got {num_head_layers}.")
        if head_type not in ("pixel", "latent"):
            raise ValueError(f"`head_type` must be 'pixel' or 'latent', got {head_type!r}.")
        if hidden_size % num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({hidden_size}) must be divisible by `num_attention_heads` ({num_attention_heads})."
            )
        head_dim = hidden_size // num_attention_heads
        if head_dim % 4 != 0:
            raise ValueError(f"The attention head dimension ({head_dim}) must be divisible by 4 for the 2-D RoPE.")
        if timestep_freq_dim % 2 != 0:
            raise ValueError(f"`timestep_freq_dim` must be even, got {timestep_freq_dim}.")
        mlp_inner_size = int(2 * int(hidden_size * mlp_ratio) / 3)
        if mlp_inner_size < 1:
            raise ValueError(f"`mlp_ratio` ({mlp_ratio}) leaves the SwiGLU layer without channels.")

        patch_dim = in_channels * patch_size * patch_size

        # 1. timestep embedding
        self.time_proj = CodTimestepFeatures(timestep_freq_dim, max_period=timestep_max_period)
        self.time_embed = TimestepEmbedding(timestep_freq_dim, hidden_size)

        # 2. tokens and positions
        self.token_embed = nn.Linear(patch_dim + hidden_size, hidden_size)
        self.rope = CodRotaryPosEmbed(head_dim, theta=rope_theta, position_scale=rope_position_scale)

        # 3. backbone blocks, then 4. head blocks, in one list (the official checkpoint layout)
        backbone_blocks = [
            CodTransformerBlock(hidden_size, num_attention_heads, mlp_inner_size, eps=norm_eps)
            for _ in range(num_layers)
        ]
        if head_type == "latent":
            self.head_embed = nn.Linear(patch_dim + hidden_size, hidden_size)
            head_blocks = [
                CodTransformerBlock(hidden_size, num_attention_heads, mlp_inner_size, eps=norm_eps)
                for _ in range(num_head_layers)
            ]
            self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=norm_eps)
            self.out_modulation = nn.Linear(hidden_size, 2 * hidden_size)
            self.proj_out = nn.Linear(hidden_size, patch_dim)
        else:
            self.condition_to_pixels = nn.Linear(hidden_size, head_hidden_size * patch_size * patch_size)
            self.pixel_embed = nn.Linear(in_channels + head_hidden_size + head_dct_frequencies**2, head_hidden_size)
            head_blocks = [
                CodPixelHeadBlock(hidden_size, head_hidden_size, head_mlp_ratio, eps=norm_eps)
                for _ in range(num_head_layers)
            ]
            self.norm_out = CodRMSNorm(head_hidden_size, eps=norm_eps)
            self.proj_out = nn.Linear(head_hidden_size, in_channels)
        self.blocks = nn.ModuleList(backbone_blocks + head_blocks)

        self.gradient_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT initialisation with adaLN-Zero: Xavier-uniform Linear weights and zero biases, N(0, 0.02) timestep
        MLP, and zero adaLN projections, output projection and (DDT) final adaLN, so that a fresh model outputs
        exactly 0 and every block starts as the identity. Works on the meta device."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.time_embed.linear_1.weight, std=0.02)
        nn.init.normal_(self.time_embed.linear_2.weight, std=0.02)
        zero_init = [self.proj_out]
        zero_init += [block.adaln_modulation for block in self.blocks if isinstance(block, CodTransformerBlock)]
        if self.config.head_type == "latent":
            zero_init.append(self.out_modulation)
        for module in zero_init:
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def set_default_attn_processor(self) -> None:
        """Puts a fresh [`CodAttnProcessor`] (torch SDPA unless a backend is set) into every attention layer."""
        self.set_attn_processor(CodAttnProcessor())

    def _check_inputs(
        self, hidden_states: torch.Tensor, timestep: float | torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        """Validates the inputs and returns `timestep` as a (B,) tensor on the sample's device."""
        in_channels, patch_size = self.config.in_channels, self.config.patch_size
        if hidden_states.ndim != 4 or hidden_states.shape[1] != in_channels:
            raise ValueError(
                f"`hidden_states` must have shape (B, {in_channels}, H, W), got {tuple(hidden_states.shape)}."
            )
        batch_size, _, height, width = hidden_states.shape
        if height % patch_size != 0 or width % patch_size != 0:
            raise ValueError(
                f"The height and width of `hidden_states` ({height}x{width}) must be divisible by the patch size "
                f"({patch_size})."
            )
        expected = (batch_size, self.config.hidden_size, height // patch_size, width // patch_size)
        if tuple(condition.shape) != expected:
            raise ValueError(
                f"`condition` must have shape {expected} (B, hidden_size, H / patch_size, W / patch_size), got "
                f"{tuple(condition.shape)}."
            )
        if not isinstance(timestep, torch.Tensor):
            timestep = torch.tensor(timestep, dtype=_compute_dtype(hidden_states.dtype))  # float64 stays exact
        timestep = timestep.to(hidden_states.device)
        if timestep.ndim == 0:
            timestep = timestep.expand(batch_size)
        if tuple(timestep.shape) != (batch_size,):
            raise ValueError(
                f"`timestep` must be a scalar or have shape ({batch_size},) to match the batch, got "
                f"{tuple(timestep.shape)}."
            )
        message = (
            "`timestep` must be the noise level sigma in [0, 1]: CodTransformer2DModel does not take diffusers' "
            "sigma * 1000 timesteps (use CodFlowMatchScheduler, or divide by num_train_timesteps)."
        )
        in_range = ((timestep >= 0) & (timestep <= 1)).all()
        if timestep.device.type != "cpu":
            torch._assert_async(in_range, message)  # checked on the device: no host sync in a sampling loop
        elif not in_range:
            raise ValueError(f"{message} Got values up to {float(timestep.abs().max())}.")
        return timestep

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: float | torch.Tensor,
        condition: torch.Tensor,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        r"""
        Predicts the flow-matching velocity `eps - x0` of a noisy sample.

        Args:
            hidden_states (`torch.Tensor` of shape `(B, in_channels, H, W)`):
                Noisy sample `x_sigma = (1 - sigma) * x0 + sigma * eps`; H and W divisible by `patch_size`.
            timestep (`float` or `torch.Tensor` of shape `()` or `(B,)`):
                Noise level sigma in [0, 1] (1 = pure noise), not multiplied by 1000.
            condition (`torch.Tensor` of shape `(B, hidden_size, H / patch_size, W / patch_size)`):
                Condition map of the CoD condition codec, one vector per token (the null map for the
                unconditional branch of classifier-free guidance).
            return_dict (`bool`, *optional*, defaults to `True`):
                Whether to return a [`~models.modeling_outputs.Transformer2DModelOutput`] or a tuple.

        Returns:
            [`~models.modeling_outputs.Transformer2DModelOutput`] or `tuple`: the velocity `eps - x0`, shaped like
            `hidden_states`, in `sample` (or as the first element of the tuple).
        """
        sigma = self._check_inputs(hidden_states, timestep, condition)
        batch_size, in_channels, height, width = hidden_states.shape
        patch_size = self.config.patch_size
        grid_height, grid_width = height // patch_size, width // patch_size
        num_layers = self.config.num_layers

        # 1. timestep embedding. Convention boundary (input side): the official network runs on t = 1 - sigma.
        t = 1.0 - sigma.to(_compute_dtype(hidden_states.dtype))  # (B,)
        timestep_features = self.time_proj(t)  # (B, F)
        # `time_embed` may be kept in float32 (`_keep_in_fp32_modules`) while the rest runs in lower precision.
        temb = self.time_embed(timestep_features.to(self.time_embed.linear_1.weight.dtype))  # (B, C)
        temb = temb.to(hidden_states.dtype)[:, None]  # (B, 1, C)

        # 2. tokens: each patch flattened channel-major (c * p^2 + row * p + col), joined with its condition vector
        patches = hidden_states.view(batch_size, in_channels, grid_height, patch_size, grid_width, patch_size)
        patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, Ht, Wt, Cin, p, p)
        patches = patches.reshape(batch_size, grid_height * grid_width, -1)  # (B, L, Cin p^2)
        condition_tokens = condition.flatten(2).transpose(1, 2)  # (B, L, C), row-major
        tokens = self.token_embed(torch.cat([patches, condition_tokens], dim=-1))  # (B, L, C)
        rotary_emb = self.rope(grid_height, grid_width, device=hidden_states.device, dtype=hidden_states.dtype)

        # 3. backbone, modulated per sample by silu(temb); then the per-token head condition s
        backbone_condition = F.silu(temb)  # (B, 1, C)
        for block in self.blocks[:num_layers]:
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                tokens = self._gradient_checkpointing_func(block, tokens, backbone_condition, rotary_emb)
            else:
                tokens = block(tokens, backbone_condition, rotary_emb)
        head_condition = F.silu(temb + tokens)  # (B, L, C)

        # 4. head
        if self.config.head_type == "latent":
            # DDT: a second embedding of [patch, condition token], transformer blocks modulated per token by s
            head_states = self.head_embed(torch.cat([patches, condition_tokens], dim=-1))  # (B, L, C)
            for block in self.blocks[num_layers:]:
                if torch.is_grad_enabled() and self.gradient_checkpointing:
                    head_states = self._gradient_checkpointing_func(block, head_states, head_condition, rotary_emb)
                else:
                    head_states = block(head_states, head_condition, rotary_emb)
            shift, scale = self.out_modulation(head_condition).chunk(2, dim=-1)  # (B, L, C) each
            head_states = self.norm_out(head_states) * (1 + scale) + shift
            output = self.proj_out(head_states)  # (B, L, Cin p^2), channel-major
        else:
            # PixNerd: per pixel [noisy value, condition features, DCT position], hypernetwork MLPs driven by s
            num_pixels = patch_size * patch_size
            pixel_values = patches.view(batch_size, -1, in_channels, num_pixels).transpose(2, 3)  # (B, L, P, Cin)
            pixel_condition = self.condition_to_pixels(condition_tokens)  # (B, L, hx P), channel-major
            pixel_condition = pixel_condition.view(batch_size, -1, self.config.head_hidden_size, num_pixels)
            pixel_condition = pixel_condition.transpose(2, 3)  # (B, L, P, hx)
            dct = dct_positional_features(
                patch_size,
                self.config.head_dct_frequencies,
                device=hidden_states.device,
                dtype=_compute_dtype(hidden_states.dtype),
            ).to(hidden_states.dtype)  # (P, F^2)
            dct = dct.expand(batch_size, grid_height * grid_width, -1, -1)  # (B, L, P, F^2)
            pixel_states = self.pixel_embed(torch.cat([pixel_values, pixel_condition, dct], dim=-1))  # (B, L, P, hx)
            for block in self.blocks[num_layers:]:
                if torch.is_grad_enabled() and self.gradient_checkpointing:
                    pixel_states = self._gradient_checkpointing_func(block, pixel_states, head_condition)
                else:
                    pixel_states = block(pixel_states, head_condition)
            output = self.proj_out(self.norm_out(pixel_states))  # (B, L, P, Cin)
            output = output.transpose(2, 3).reshape(batch_size, grid_height * grid_width, -1)  # (B, L, Cin p^2)

        # 5. unpatchify
        output = output.view(batch_size, grid_height, grid_width, in_channels, patch_size, patch_size)
        output = output.permute(0, 3, 1, 4, 2, 5)  # (B, Cin, Ht, p, Wt, p)
        velocity_cod = output.reshape(batch_size, in_channels, height, width)  # official velocity x0 - eps
        # Convention boundary (output side): diffusers' velocity is eps - x0.
        sample = -velocity_cod

        if not return_dict:
            return (sample,)
        return Transformer2DModelOutput(sample=sample)
