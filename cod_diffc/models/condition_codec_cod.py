# Copyright 2026 The cod_diffc authors. Licensed under the MIT licence.
"""The CoD condition codec: a VQGAN-style encoder, a vector quantiser and a decoder that turns a few hundred bits
into the condition map of the CoD transformer (arXiv 2511.18706)."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils.accelerate_utils import apply_forward_hook
from torch import nn


# The condition map has one vector per 16x16 patch of the image: the transformer's token grid.
CONDITION_STRIDE = 16
# The released encoder stage widths (multiples of `base_channels`) for each supported `downsampling` (4 to 16:
# CoD-Lite's codecs, whose later stages do not down-sample).
_RELEASED_CHANNEL_MULTIPLIERS = {
    4: (1, 1, 2, 2, 4),
    8: (1, 1, 2, 2, 4),
    16: (1, 1, 2, 2, 4),
    32: (1, 1, 2, 2, 4),
    128: (1, 1, 2, 2, 4, 8),
}
# Encoder stages from this index on follow every ResNet block with an attention block.
_FIRST_ATTENTION_STAGE = 4
# The decoder is three (ResNet, attention) pairs (two in CoD-Lite's light decoder) and a final ResNet, with the
# up-samplers of a `downsampling` above 32 placed after the first pairs.
_DECODER_ATTENTION_PAIRS = 3
_LIGHT_DECODER_ATTENTION_PAIRS = 2
# Slack allowed on the [0, 1] range of input images (decoded PNGs divided by 255 are exact; resampling is not).
_IMAGE_RANGE_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# Bit packing
# ----------------------------------------------------------------------------------------------------------------


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 1..16, got {bits!r}")


def pack_indices(indices: Sequence[int] | torch.Tensor, bits: int) -> bytes:
    """Packs code indices at a fixed number of bits each into bytes.

    Each index is written MSB first and the indices are concatenated into one big-endian bit stream: the first index
    takes the high bits of byte 0. The last byte is zero-padded. There is no header.

    Args:
        indices (`Sequence[int]` or `torch.Tensor`):
            The indices, each in `[0, 2**bits)`. A tensor of any shape is read in row-major order.
        bits (`int`):
            Bits per index, 1 to 16.

    Returns:
        `bytes`: `ceil(len(indices) * bits / 8)` bytes.
    """
    _check_bits(bits)
    if isinstance(indices, torch.Tensor):
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise ValueError(f"indices must be integers, got a {indices.dtype} tensor")
        values = indices.detach().reshape(-1).to(device="cpu", dtype=torch.int64)
    else:
        if any(isinstance(value, bool) or not hasattr(value, "__index__") for value in indices):
            raise ValueError("indices must be integers")
        values = torch.tensor([operator.index(value) for value in indices], dtype=torch.int64)
    if values.numel() and (values.min() < 0 or values.max() >= 2**bits):
        raise ValueError(f"indices must lie in [0, {2**bits}) for bits={bits}")

    shifts = torch.arange(bits - 1, -1, -1)
    bit_stream = ((values[:, None] >> shifts) & 1).reshape(-1)  # (N * bits,), MSB of each index first
    bit_stream = F.pad(bit_stream, (0, -bit_stream.numel() % 8))
    byte_weights = 2 ** torch.arange(7, -1, -1)
    packed = (bit_stream.reshape(-1, 8) * byte_weights).sum(dim=1)  # (num_bytes,)
    return bytes(packed.tolist())


def unpack_indices(data: bytes, bits: int, count: int) -> torch.Tensor:
    """Reads `count` indices of `bits` bits each from a stream written by [`pack_indices`].

    Args:
        data (`bytes`):
            The packed stream, exactly `ceil(count * bits / 8)` bytes.
        bits (`int`):
            Bits per index, 1 to 16.
        count (`int`):
            Number of indices to read.

    Returns:
        `torch.Tensor`: the indices, shape `(count,)`, dtype int64, on the CPU.

    Raises:
        `ValueError`: if `data` has the wrong length for `count` (a truncated or padded payload) or its padding bits
        are not zero.
    """
    _check_bits(bits)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    expected_length = math.ceil(count * bits / 8)
    if len(data) != expected_length:
        raise ValueError(
            f"a stream of {count} indices at {bits} bits takes {expected_length} bytes, got {len(data)} bytes"
        )
    if count == 0:
        return torch.zeros(0, dtype=torch.int64)

    packed = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(torch.int64)
    bit_stream = ((packed[:, None] >> torch.arange(7, -1, -1)) & 1).reshape(-1)  # (num_bytes * 8,)
    if bit_stream[count * bits :].any():
        raise ValueError("the padding bits after the last index are not zero")
    index_bits = bit_stream[: count * bits].reshape(count, bits)  # (count, bits), MSB first
    return (index_bits << torch.arange(bits - 1, -1, -1)).sum(dim=1)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------


class CodResnetBlock(nn.Module):
    """GroupNorm, SiLU, conv3x3, GroupNorm, SiLU, conv3x3, plus a skip (a 1x1 conv when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, num_groups: int, eps: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = nn.GroupNorm(num_groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nin_shortcut = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = self.nin_shortcut(hidden_states)
        hidden_states = self.conv1(F.silu(self.norm1(hidden_states)))
        hidden_states = self.conv2(F.silu(self.norm2(hidden_states)))
        return residual + hidden_states


class CodAttentionBlock(nn.Module):
    """Single-head self-attention with 1x1-conv projections and a residual: over all spatial positions, or (with
    `window`, CoD-Lite's inference) within `window x window` tiles of a map with a side above `window`, whose
    queries, keys and values are first replicate-padded at the bottom and right to multiples of it."""

    def __init__(self, channels: int, num_groups: int, eps: float, window: int | None = None):
        super().__init__()
        self.window = window
        self.norm = nn.GroupNorm(num_groups, channels, eps=eps)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        _, _, height, width = hidden_states.shape
        normed = self.norm(hidden_states)
        query, key, value = self.q(normed), self.k(normed), self.v(normed)  # (B, C, h, w) each
        window = self.window
        if window is None or (height <= window and width <= window):
            attended = _attend(query, key, value)
        else:
            padding = (0, -width % window, 0, -height % window)
            query, key, value = (F.pad(x, padding, mode="replicate") for x in (query, key, value))
            tiles = [_tiles(x, window) for x in (query, key, value)]  # (B n, C, window, window) each
            attended = _untile(_attend(*tiles), query.shape)[..., :height, :width]
        return hidden_states + self.proj_out(attended)


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(C)) v over the positions of `(B, C, h, w)` maps."""
    batch_size, channels, height, width = query.shape

    def to_sequence(projected: torch.Tensor) -> torch.Tensor:
        return projected.reshape(batch_size, 1, channels, height * width).transpose(2, 3)  # (B, 1, h*w, C)

    attended = F.scaled_dot_product_attention(to_sequence(query), to_sequence(key), to_sequence(value))
    return attended.transpose(2, 3).reshape(batch_size, channels, height, width)


def _tiles(hidden_states: torch.Tensor, window: int) -> torch.Tensor:
    """`(B, C, H, W)` (sides multiples of `window`) → `(B * H/window * W/window, C, window, window)`."""
    batch_size, channels, height, width = hidden_states.shape
    tiles = hidden_states.view(batch_size, channels, height // window, window, width // window, window)
    return tiles.permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, window, window)


def _untile(tiles: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The inverse of [`_tiles`] for a map of `shape`."""
    batch_size, channels, height, width = shape
    window = tiles.shape[-1]
    grid = tiles.view(batch_size, height // window, width // window, channels, window, window)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(batch_size, channels, height, width)


class CodDownsample(nn.Module):
    """Halves the resolution: pad right and bottom by one, then a 3x3 convolution with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(hidden_states, (0, 1, 0, 1)))


class CodUpsample(nn.Module):
    """Doubles the resolution: nearest-neighbour x2, then a learned ResNet block (its conv2 starts at zero)."""

    def __init__(self, channels: int, num_groups: int, eps: float):
        super().__init__()
        self.resnet = CodResnetBlock(channels, channels, num_groups, eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.resnet(F.interpolate(hidden_states, scale_factor=2.0, mode="nearest"))


def _run_blocks(
    owner: CodConditionEncoder | CodConditionDecoder, blocks: Sequence[nn.Module], hidden_states: torch.Tensor
) -> torch.Tensor:
    """Runs `blocks` in order, with activation checkpointing around each ResNet/attention block when `owner` asks."""
    checkpointing = torch.is_grad_enabled() and owner.gradient_checkpointing
    for block in blocks:
        if checkpointing and not isinstance(block, CodDownsample):
            hidden_states = owner._gradient_checkpointing_func(block, hidden_states)
        else:
            hidden_states = block(hidden_states)
    return hidden_states


class CodConditionEncoder(nn.Module):
    """VQGAN-style encoder from an image in [0, 1] to the (unquantised) code grid.

    conv_in (stride 2 when `up2x`) -> stages of ResNet blocks (followed by attention from stage 4 on), each ending
    with a down-sampler while the code stride is not reached -> ResNet, attention, ResNet -> GroupNorm, SiLU, conv.
    """

    def __init__(
        self,
        in_channels: int,
        base_channels: int,
        channel_multipliers: Sequence[int],
        num_res_blocks: int,
        num_downsamplers: int,
        out_channels: int,
        input_stride: int,
        num_groups: int,
        eps: float,
        attention_window: int | None = None,
    ):
        super().__init__()
        self.gradient_checkpointing = False
        self.conv_in = nn.Conv2d(in_channels, base_channels, kernel_size=3, stride=input_stride, padding=1)

        self.down_blocks = nn.ModuleList()
        stage_in_channels = base_channels
        for stage_index, multiplier in enumerate(channel_multipliers):
            stage_channels = base_channels * multiplier
            stage = nn.ModuleList()
            for block_index in range(num_res_blocks):
                block_in_channels = stage_in_channels if block_index == 0 else stage_channels
                stage.append(CodResnetBlock(block_in_channels, stage_channels, num_groups, eps))
                if stage_index >= _FIRST_ATTENTION_STAGE:
                    stage.append(CodAttentionBlock(stage_channels, num_groups, eps, attention_window))
            if stage_index < num_downsamplers:
                stage.append(CodDownsample(stage_channels))
            self.down_blocks.append(stage)
            stage_in_channels = stage_channels

        self.mid_block = nn.ModuleList(
            [
                CodResnetBlock(stage_in_channels, stage_in_channels, num_groups, eps),
                CodAttentionBlock(stage_in_channels, num_groups, eps, attention_window),
                CodResnetBlock(stage_in_channels, stage_in_channels, num_groups, eps),
            ]
        )
        self.norm_out = nn.GroupNorm(num_groups, stage_in_channels, eps=eps)
        self.conv_out = nn.Conv2d(stage_in_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden_states = self.conv_in(images)  # (B, base, H / s, W / s), s = 2 with up2x else 1
        for stage in self.down_blocks:
            hidden_states = _run_blocks(self, stage, hidden_states)
        hidden_states = _run_blocks(self, self.mid_block, hidden_states)  # (B, C_enc, h, w)
        return self.conv_out(F.silu(self.norm_out(hidden_states)))  # (B, D, h, w)


class CodConditionDecoder(nn.Module):
    """Decoder from quantised codes to the condition map on the transformer's token grid.

    conv_in -> `num_pairs` (ResNet, attention) pairs, the first `num_upsamplers` of them followed by an up-sampler,
    and a final ResNet -> GroupNorm, SiLU, conv_out -> one more up-sampler when `output_upsampler`. `output_stride`
    shrinks a code grid finer than the token grid (CoD-Lite's low downsampling): 2 makes conv_out a stride-2
    convolution, 4 a stride-2 convolution, a ResNet and another.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_upsamplers: int,
        output_upsampler: bool,
        num_groups: int,
        eps: float,
        num_pairs: int = 3,
        output_stride: int = 1,
        attention_window: int | None = None,
    ):
        super().__init__()
        self.gradient_checkpointing = False
        self.conv_in = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)

        self.blocks = nn.ModuleList()
        for pair_index in range(num_pairs):
            self.blocks.append(CodResnetBlock(channels, channels, num_groups, eps))
            self.blocks.append(CodAttentionBlock(channels, num_groups, eps, attention_window))
            if pair_index < num_upsamplers:
                self.blocks.append(CodUpsample(channels, num_groups, eps))
        self.blocks.append(CodResnetBlock(channels, channels, num_groups, eps))

        self.norm_out = nn.GroupNorm(num_groups, channels, eps=eps)
        if output_stride == 4:
            self.conv_out = nn.Sequential(
                nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1),
                CodResnetBlock(channels, channels, num_groups, eps),
                nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1),
            )
        else:
            self.conv_out = nn.Conv2d(channels, channels, kernel_size=3, stride=output_stride, padding=1)
        self.output_upsampler = CodUpsample(channels, num_groups, eps) if output_upsampler else None

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        hidden_states = self.conv_in(codes)  # (B, C, h, w)
        hidden_states = _run_blocks(self, self.blocks, hidden_states)  # (B, C, h * 2**num_upsamplers, ...)
        hidden_states = self.conv_out(F.silu(self.norm_out(hidden_states)))
        if self.output_upsampler is not None:
            hidden_states = _run_blocks(self, [self.output_upsampler], hidden_states)
        return hidden_states  # (B, C, H / 16, W / 16)


# ----------------------------------------------------------------------------------------------------------------
# The codec
# ----------------------------------------------------------------------------------------------------------------


class CodConditionCodec(ModelMixin, ConfigMixin):
    r"""
    The condition codec of CoD, from [CoD: A Diffusion Foundation Model for Image
    Compression](https://arxiv.org/abs/2511.18706): an image is encoded to a coarse grid of codebook indices, sent at
    `codebook_bits` bits each without entropy coding, and decoded to a `condition_channels`-wide map with one vector
    per transformer token (16x16 pixels).

    .. code-block:: none

        image (B, 3, H, W) in [0, 1]
          |
        encoder          conv_in (/2 if up2x) -> ResNet stages with down-samplers -> mid -> conv_out
          |
        z (B, D, h, w)   h = H / code_stride, code_stride = downsampling (up2x) or downsampling / 2
          |
        VQ               nearest of 2**codebook_bits codebook vectors (squared L2)
          |
        indices (B, h, w) ----pack_indices----> bits: h * w * codebook_bits per image
          |                                       |
          |  <-------------unpack_indices---------'
        codebook lookup
          |
        codes (B, D, h, w)
          |
        decoder          conv_in -> ResNet/attention (+ up-samplers) -> conv_out (-> x2 up-sampler if up2x)
          |
        condition (B, condition_channels, H / 16, W / 16)

    The null condition used for classifier-free guidance is the image with every pixel at -1 through the same
    encoder, quantiser and decoder (note that -1 lies outside the [0, 1] range of real images).

    Parameters:
        in_channels (`int`, *optional*, defaults to 3):
            Channels of the input image.
        base_channels (`int`, *optional*, defaults to 128):
            Width of the first encoder stage.
        channel_multipliers (`tuple[int, ...]`, *optional*):
            Width of each encoder stage as a multiple of `base_channels`. Stages from the fifth on follow every ResNet
            block with an attention block. `downsampling=32` takes five stages and `downsampling=128` six; the
            default is the released layout, `(1, 1, 2, 2, 4)` and `(1, 1, 2, 2, 4, 8)` respectively.
        num_res_blocks (`int`, *optional*, defaults to 2):
            ResNet blocks per encoder stage.
        codebook_bits (`int`, *optional*, defaults to 4):
            Bits per code index; the codebook holds `2**codebook_bits` vectors. 1 to 16.
        codebook_dim (`int`, *optional*, defaults to 128):
            Dimension of the codebook vectors (the encoder's output channels).
        downsampling (`int`, *optional*, defaults to 32):
            The official `ds`: 32 or 128 for CoD, 4 to 32 for CoD-Lite. The code stride is `downsampling` with
            `up2x` and `downsampling // 2` without it.
        up2x (`bool`, *optional*, defaults to `True`):
            Whether the encoder's input convolution has stride 2 (the 512-pixel models); with `downsampling` 32 or
            more the decoder then ends with a learned x2 up-sampler, below 16 its output convolution strides.
        condition_channels (`int`, *optional*, defaults to 1152):
            Channels of the condition map: the hidden size of the transformer it conditions.
        norm_num_groups (`int`, *optional*, defaults to 32):
            Groups of every GroupNorm.
        norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of every GroupNorm.
        codebook_loss_weight (`float`, *optional*, defaults to 0.25):
            Weight of the codebook-update term in `vq_loss` (the commitment term has weight 1).
        light_decoder (`bool`, *optional*, defaults to `False`):
            CoD-Lite's decoder: two (ResNet, attention) pairs instead of three.
        attention_window (`int`, *optional*):
            CoD-Lite's inference attention: within tiles of this side on larger maps (`None`: global, as CoD).
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CodResnetBlock", "CodAttentionBlock", "CodUpsample"]
    # The codebook stays in full precision: nearest-neighbour decisions are sensitive to storage precision.
    _skip_layerwise_casting_patterns = ["norm", "codebook"]

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 128,
        channel_multipliers: tuple[int, ...] | None = None,
        num_res_blocks: int = 2,
        codebook_bits: int = 4,
        codebook_dim: int = 128,
        downsampling: int = 32,
        up2x: bool = True,
        condition_channels: int = 1152,
        norm_num_groups: int = 32,
        norm_eps: float = 1e-6,
        codebook_loss_weight: float = 0.25,
        light_decoder: bool = False,
        attention_window: int | None = None,
    ):
        super().__init__()
        if downsampling not in _RELEASED_CHANNEL_MULTIPLIERS:
            supported = sorted(_RELEASED_CHANNEL_MULTIPLIERS)
            raise ValueError(f"downsampling={downsampling} is not supported; choose one of {supported}")
        num_stages = len(_RELEASED_CHANNEL_MULTIPLIERS[downsampling])
        if channel_multipliers is None:
            channel_multipliers = _RELEASED_CHANNEL_MULTIPLIERS[downsampling]
        channel_multipliers = tuple(channel_multipliers)
        if len(channel_multipliers) != num_stages:
            raise ValueError(
                f"downsampling={downsampling} takes {num_stages} encoder stages, but channel_multipliers has "
                f"{len(channel_multipliers)} entries {channel_multipliers}"
            )
        if not 1 <= codebook_bits <= 16:
            raise ValueError(f"codebook_bits must be in 1..16, got {codebook_bits}")
        for name, value in [
            ("in_channels", in_channels),
            ("base_channels", base_channels),
            ("num_res_blocks", num_res_blocks),
            ("codebook_dim", codebook_dim),
            ("condition_channels", condition_channels),
            ("norm_num_groups", norm_num_groups),
        ]:
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if any(multiplier < 1 for multiplier in channel_multipliers):
            raise ValueError(f"channel_multipliers must be positive, got {channel_multipliers}")
        normed_widths = {base_channels * multiplier for multiplier in channel_multipliers} | {condition_channels}
        for width in sorted(normed_widths):
            if width % norm_num_groups:
                raise ValueError(f"norm_num_groups={norm_num_groups} does not divide the block width {width}")
        if not norm_eps > 0:
            raise ValueError(f"norm_eps must be positive, got {norm_eps}")
        if codebook_loss_weight < 0:
            raise ValueError(f"codebook_loss_weight must be non-negative, got {codebook_loss_weight}")

        self.encoder = CodConditionEncoder(
            in_channels=in_channels,
            base_channels=base_channels,
            channel_multipliers=channel_multipliers,
            num_res_blocks=num_res_blocks,
            num_downsamplers=int(math.log2(downsampling)) - 1,
            out_channels=codebook_dim,
            input_stride=2 if up2x else 1,
            num_groups=norm_num_groups,
            eps=norm_eps,
            attention_window=attention_window,
        )
        self.codebook = nn.Embedding(2**codebook_bits, codebook_dim)
        num_upsamplers = int(math.log2(max(downsampling, 32) // 32))
        stride_after_upsamplers = (downsampling if up2x else downsampling // 2) // 2**num_upsamplers  # 4 to 32
        self.decoder = CodConditionDecoder(
            in_channels=codebook_dim,
            channels=condition_channels,
            num_upsamplers=num_upsamplers,
            output_upsampler=stride_after_upsamplers > CONDITION_STRIDE,
            num_groups=norm_num_groups,
            eps=norm_eps,
            num_pairs=_LIGHT_DECODER_ATTENTION_PAIRS if light_decoder else _DECODER_ATTENTION_PAIRS,
            output_stride=max(1, CONDITION_STRIDE // stride_after_upsamplers),
            attention_window=attention_window,
        )
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        # The decoder starts as a zero map: its output conv and the last conv of every up-sampler's ResNet are zero.
        output_conv = (
            self.decoder.conv_out[-1] if isinstance(self.decoder.conv_out, nn.Sequential) else self.decoder.conv_out
        )
        nn.init.zeros_(output_conv.weight)
        nn.init.zeros_(output_conv.bias)
        for module in self.decoder.modules():
            if isinstance(module, CodUpsample):
                nn.init.zeros_(module.resnet.conv2.weight)
                nn.init.zeros_(module.resnet.conv2.bias)
        # The codebook starts as small uniform vectors, the usual VQ-VAE/VQGAN choice.
        codebook_size = self.codebook.num_embeddings
        nn.init.uniform_(self.codebook.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    # ------------------------------------------------------------------------------------------------------------
    # Geometry
    # ------------------------------------------------------------------------------------------------------------

    @property
    def codebook_size(self) -> int:
        """Number of codebook vectors, `2**codebook_bits`."""
        return 2**self.config.codebook_bits

    @property
    def code_stride(self) -> int:
        """Image pixels per code position along each axis."""
        return self.config.downsampling if self.config.up2x else self.config.downsampling // 2

    def _check_image_size(self, height: int, width: int) -> None:
        for name, size in [("height", height), ("width", width)]:
            if size < 1 or size % self.code_stride:
                raise ValueError(
                    f"image {name} {size} is not a positive multiple of the code stride {self.code_stride} "
                    f"(downsampling={self.config.downsampling}, up2x={self.config.up2x})"
                )

    def code_grid_size(self, height: int, width: int) -> tuple[int, int]:
        """The code grid `(h, w)` of an image of `height` x `width` pixels."""
        self._check_image_size(height, width)
        return height // self.code_stride, width // self.code_stride

    def condition_grid_size(self, height: int, width: int) -> tuple[int, int]:
        """The condition map's spatial size `(height / 16, width / 16)`: the transformer's token grid."""
        self._check_image_size(height, width)
        return height // CONDITION_STRIDE, width // CONDITION_STRIDE

    def bits_per_image(self, height: int, width: int) -> int:
        """Bits the packed indices of one image take: `h * w * codebook_bits`."""
        code_height, code_width = self.code_grid_size(height, width)
        return code_height * code_width * self.config.codebook_bits

    def bytes_per_image(self, height: int, width: int) -> int:
        """Bytes [`compress`] writes per image: `ceil(bits_per_image / 8)`."""
        return math.ceil(self.bits_per_image(height, width) / 8)

    # ------------------------------------------------------------------------------------------------------------
    # Encoder, quantiser, decoder
    # ------------------------------------------------------------------------------------------------------------

    def _check_images(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a 4-D tensor (B, {self.config.in_channels}, H, W), got {shape}")
        if images.shape[1] != self.config.in_channels:
            raise ValueError(f"images must have {self.config.in_channels} channels, got shape {tuple(images.shape)}")
        if not images.dtype.is_floating_point:
            raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}")
        self._check_image_size(images.shape[2], images.shape[3])
        in_range = (images >= -_IMAGE_RANGE_TOLERANCE) & (images <= 1 + _IMAGE_RANGE_TOLERANCE)
        if not bool(in_range.all()):
            raise ValueError("image values must lie in [0, 1] (a finite float image, e.g. uint8 / 255)")

    def _null_images(self, batch_size: int, height: int, width: int) -> torch.Tensor:
        return torch.full(
            (batch_size, self.config.in_channels, height, width), -1.0, device=self.device, dtype=self.dtype
        )

    @apply_forward_hook
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encodes images to the continuous code grid, before quantisation.

        Args:
            images (`torch.Tensor`): `(B, in_channels, H, W)` in [0, 1], H and W multiples of `code_stride`.

        Returns:
            `torch.Tensor`: `z`, shape `(B, codebook_dim, H / code_stride, W / code_stride)`.
        """
        self._check_images(images)
        return self.encoder(images)

    def quantize(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Replaces every code vector by its nearest codebook vector (squared L2, the first index on a tie).

        Distances are computed in at least float32, whatever the working precision.

        Args:
            latents (`torch.Tensor`): encoder output `z`, shape `(B, codebook_dim, h, w)`.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: the codebook vectors `(B, codebook_dim, h, w)` and their indices
            `(B, h, w)` (int64).
        """
        if latents.ndim != 4 or latents.shape[1] != self.config.codebook_dim:
            raise ValueError(
                f"latents must have shape (B, {self.config.codebook_dim}, h, w), got {tuple(latents.shape)}"
            )
        batch_size, _, code_height, code_width = latents.shape
        distance_dtype = torch.promote_types(latents.dtype, torch.float32)
        with torch.autocast(device_type=latents.device.type, enabled=False):
            vectors = latents.detach().permute(0, 2, 3, 1).reshape(-1, self.config.codebook_dim).to(distance_dtype)
            codebook = self.codebook.weight.detach().to(distance_dtype)  # (K, D)
            squared_distances = (
                vectors.square().sum(dim=1, keepdim=True)
                - 2 * vectors @ codebook.T
                + codebook.square().sum(dim=1)[None, :]
            )  # (B*h*w, K)
        indices = squared_distances.argmin(dim=1).reshape(batch_size, code_height, code_width)
        return self.lookup_codes(indices), indices

    def lookup_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """The codebook vectors of `indices` `(B, h, w)`, as a `(B, codebook_dim, h, w)` map."""
        return self.codebook(indices).permute(0, 3, 1, 2)

    def _check_indices(self, indices: torch.Tensor) -> None:
        if not isinstance(indices, torch.Tensor) or indices.ndim != 3:
            raise ValueError("indices must be a 3-D tensor (B, h, w)")
        if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
            raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"indices must lie in [0, {self.codebook_size})")

    @apply_forward_hook
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Decodes code indices to the condition map (the decompress path: codebook lookup, then decoder).

        Args:
            indices (`torch.Tensor`): `(B, h, w)` integer indices in `[0, 2**codebook_bits)`.

        Returns:
            `torch.Tensor`: the condition map `(B, condition_channels, h * code_stride / 16, w * code_stride / 16)`.
        """
        self._check_indices(indices)
        return self.decoder(self.lookup_codes(indices.to(device=self.device, dtype=torch.int64)))

    @apply_forward_hook
    def null_condition(self, height: int, width: int, batch_size: int = 1) -> torch.Tensor:
        """The null condition for classifier-free guidance: the all -1 image through encoder, quantiser and decoder.

        It is computed afresh on every call (so it always matches the current weights and the size asked); callers
        that sample many images of one size may keep the result.

        Args:
            height (`int`): image height in pixels, a multiple of `code_stride`.
            width (`int`): image width in pixels, a multiple of `code_stride`.
            batch_size (`int`, *optional*, defaults to 1): copies to return.

        Returns:
            `torch.Tensor`: `(batch_size, condition_channels, height / 16, width / 16)`.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._check_image_size(height, width)
        _, indices = self.quantize(self.encoder(self._null_images(1, height, width)))
        return self.decoder(self.lookup_codes(indices)).repeat(batch_size, 1, 1, 1)

    def forward(
        self, images: torch.Tensor, null_mask: torch.Tensor | None = None, return_dict: bool = True
    ) -> dict[str, Any] | tuple[torch.Tensor, ...]:
        """The training path: encoder, vector quantiser with a straight-through gradient, decoder.

        Args:
            images (`torch.Tensor`):
                `(B, in_channels, H, W)` in [0, 1], H and W multiples of `code_stride`.
            null_mask (`torch.Tensor`, *optional*):
                `(B,)` booleans; the images marked `True` are replaced by the null image (every pixel -1) before
                encoding, which is how condition dropout for classifier-free guidance is trained.
            return_dict (`bool`, *optional*, defaults to `True`):
                Whether to return a dict rather than a tuple.

        Returns:
            With `return_dict=True` a dict with
            - `"condition"`: `(B, condition_channels, H / 16, W / 16)`;
            - `"indices"`: `(B, h, w)` int64;
            - `"vq_loss"`: `commitment_loss + codebook_loss_weight * codebook_loss`, a scalar;
            - `"commitment_loss"`: `mean((sg(z_q) - z)**2)`, which trains the encoder;
            - `"codebook_loss"`: `mean((z_q - sg(z))**2)`, which trains the codebook;
            - `"likelihoods"`: `{"codes": (B, 1, h, w)}`, every entry `2**-codebook_bits` (indices are sent at a
              fixed length, so the rate is `-log2` of these).
            Otherwise the tuple `(condition, indices, vq_loss)`.
        """
        self._check_images(images)
        if null_mask is not None:
            if null_mask.shape != (images.shape[0],) or null_mask.dtype != torch.bool:
                raise ValueError(f"null_mask must be a bool tensor of shape ({images.shape[0]},)")
            images = torch.where(null_mask.to(images.device)[:, None, None, None], -1.0, images)

        latents = self.encoder(images)  # (B, D, h, w)
        codes, indices = self.quantize(latents)
        commitment_loss = F.mse_loss(latents, codes.detach())
        codebook_loss = F.mse_loss(codes, latents.detach())
        vq_loss = commitment_loss + self.config.codebook_loss_weight * codebook_loss
        codes = latents + (codes - latents).detach()  # straight-through gradient to the encoder
        condition = self.decoder(codes)  # (B, C, H / 16, W / 16)

        if not return_dict:
            return condition, indices, vq_loss
        likelihoods = torch.full(
            (indices.shape[0], 1, *indices.shape[1:]),
            2.0**-self.config.codebook_bits,
            device=condition.device,
            dtype=condition.dtype,
        )
        return {
            "condition": condition,
            "indices": indices,
            "vq_loss": vq_loss,
            "commitment_loss": commitment_loss,
            "codebook_loss": codebook_loss,
            "likelihoods": {"codes": likelihoods},
        }

    # ------------------------------------------------------------------------------------------------------------
    # Bits
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    @apply_forward_hook
    def compress(self, images: torch.Tensor) -> dict[str, Any]:
        """Encodes images to bytes: the code indices packed at `codebook_bits` each (see [`pack_indices`]).

        The result follows CompressAI's `compress` contract: `strings` holds one list per latent (here one, the
        codes), each with one byte string per image, so `sum(len(s[0]) for s in out["strings"])` is the size of the
        first image's file.

        Args:
            images (`torch.Tensor`): `(B, in_channels, H, W)` in [0, 1], H and W multiples of `code_stride`.

        Returns:
            `dict`: `{"strings": [[bytes per image]], "shape": (h, w)}`, the code grid shape to give [`decompress`].
        """
        _, indices = self.quantize(self.encode(images))  # (B, h, w)
        strings = [pack_indices(image_indices, self.config.codebook_bits) for image_indices in indices]
        return {"strings": [strings], "shape": tuple(indices.shape[1:])}

    @torch.no_grad()
    @apply_forward_hook
    def decompress(self, strings: Sequence[Sequence[bytes]], shape: Sequence[int]) -> dict[str, torch.Tensor]:
        """Decodes the output of [`compress`] to condition maps (CompressAI's `decompress(strings, shape)`).

        Args:
            strings (`Sequence[Sequence[bytes]]`): one list per latent (here one), of one packed stream per image.
            shape (`Sequence[int]`): the code grid `(h, w)`.

        Returns:
            `dict`: `{"condition": (B, condition_channels, h * code_stride / 16, w * code_stride / 16)}`.
        """
        if len(shape) != 2 or any(not isinstance(size, int) or size < 1 for size in shape):
            raise ValueError(f"shape must be the code grid (h, w) of positive integers, got {shape!r}")
        if len(strings) != 1 or isinstance(strings[0], bytes | bytearray):
            raise ValueError(
                "strings must hold one list per latent, as CompressAI's compress returns them: [[bytes per image]]"
            )
        (image_strings,) = strings
        if len(image_strings) == 0:
            raise ValueError("strings must hold at least one packed image")
        code_height, code_width = shape
        indices = torch.stack(
            [unpack_indices(data, self.config.codebook_bits, code_height * code_width) for data in image_strings]
        ).reshape(len(image_strings), code_height, code_width)
        return {"condition": self.decode_indices(indices)}
