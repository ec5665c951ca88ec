"""Diffusion backbones behind one interface, for every codec of the library.

A codec talks to a [`BackboneAdapter`] in VP terms; [`FlowMatchingAdapterMixin`] and [`DiscreteVPAdapterMixin`]
adapt the two model families diffusers serves; [`load_backbone`] builds one by name (built-in, registered, or an
installed plugin of the `cod_diffc.backbones` entry-point group). Nothing here imports a codec.

Names are imported on first use, so `import cod_diffc.backbones` stays light.

Example:

    >>> import torch
    >>> from cod_diffc.backbones import load_backbone
    >>> adapter = load_backbone("gaussian", std=0.3)
    >>> image = torch.rand(1, 3, 16, 16)
    >>> condition = adapter.prepare_condition(image)
    >>> x0_hat, eps_hat = adapter.predict_x0_and_epsilon(
    ...     torch.randn(1, 3, 16, 16), torch.tensor(0.5), condition, guidance_scale=1.0
    ... )
"""

from typing import TYPE_CHECKING

from cod_diffc.lazy_exports import lazy_exports


_EXPORTS = {
    "adapter": [
        "FINGERPRINT_SIZE",
        "UNCONDITIONAL",
        "BackboneAdapter",
        "Condition",
        "fingerprint_state_dict",
    ],
    "discrete_vp": ["DiscreteVPAdapterMixin"],
    "flow": ["FlowMatchingAdapterMixin"],
    "gaussian": ["GaussianBackbone"],
    "registry": [
        "ENTRY_POINT_GROUP",
        "available_backbones",
        "get_backbone_factory",
        "load_backbone",
        "register_backbone",
    ],
    "sampling": ["ReverseStep", "denoise"],
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from .adapter import FINGERPRINT_SIZE, UNCONDITIONAL, BackboneAdapter, Condition, fingerprint_state_dict
    from .discrete_vp import DiscreteVPAdapterMixin
    from .flow import FlowMatchingAdapterMixin
    from .gaussian import GaussianBackbone
    from .registry import (
        ENTRY_POINT_GROUP,
        available_backbones,
        get_backbone_factory,
        load_backbone,
        register_backbone,
    )
    from .sampling import ReverseStep, denoise
