"""Images of any size on backbones that take only multiples of a stride: mirror padding on encode, crop on decode.

A backbone declares the multiple its image sides must be ([`BackboneAdapter.size_multiple`]). The codec pads the
image at the bottom and right by mirroring it (the padded border continues the image's own content, so the model
predicts it well and it costs few bits), codes the padded image, records the true size in the stream, and crops the
decoded image back. Mirroring is periodic, so any amount of padding works, even on an image smaller than the stride.
"""

import torch


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The smallest `(height, width)` at least as large whose sides are multiples of `multiple`."""
    if height < 1 or width < 1 or multiple < 1:
        raise ValueError(f"invalid image size {height}x{width} or multiple {multiple}")
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def _mirror_indices(size: int, padded: int) -> torch.Tensor:
    """Source index of every output position 0..padded-1: 0 1 .. size-1 size-2 .. 1 0 1 .. (period 2 size - 2)."""
    positions = torch.arange(padded)
    if size == 1:
        return torch.zeros_like(positions)
    period = 2 * (size - 1)
    folded = positions % period
    return torch.where(folded < size, folded, period - folded)


def pad_image(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """`(B, C, H, W)` -> `(B, C, H', W')` mirror-padded at the bottom and right to sides that are multiples of
    `multiple`; the input itself when nothing is needed."""
    height, width = image.shape[-2:]
    target_height, target_width = padded_size(height, width, multiple)
    if (target_height, target_width) == (height, width):
        return image
    rows = _mirror_indices(height, target_height).to(image.device)
    cols = _mirror_indices(width, target_width).to(image.device)
    return image.index_select(-2, rows).index_select(-1, cols)


def crop_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The top-left `height x width` of a `(B, C, H', W')` image: [`pad_image`]'s inverse."""
    return image[..., :height, :width]
