"""Backbone names -> adapter factories: the built-in table, runtime registrations and installed plugins.

A backbone name is what a stream records and what `--backbone NAME` selects. Names come from [`BUILTIN_BACKBONES`]
(lazy `"module:attr"` strings), [`register_backbone`] at runtime, and installed distributions declaring an entry
point in the group [`ENTRY_POINT_GROUP`] (see [`~plugin_registry`]), e.g. in a plugin's `pyproject.toml`:

    [project.entry-points."cod_diffc.backbones"]
    my-backbone = "my_package.adapter:load_my_backbone"

A factory is any callable `factory(model, *, device, dtype, **options) -> BackboneAdapter`, where `model` is a
path or hub id of the weights (or `None` for the backbone's default) and `options` are backbone-specific settings.
"""

import inspect
from collections.abc import Callable
from typing import Any

import torch

from cod_diffc.plugin_registry import PluginRegistry

from .adapter import BackboneAdapter


BackboneFactory = Callable[..., BackboneAdapter]

ENTRY_POINT_GROUP = "cod_diffc.backbones"

BUILTIN_BACKBONES: dict[str, str] = {
    "cod": "cod_diffc.backbones.cod:load_cod_backbone",
    "cod-lite": "cod_diffc.backbones.cod_lite:load_cod_lite_backbone",
    "gaussian": "cod_diffc.backbones.gaussian:load_gaussian_backbone",
    "gaussian-vp": "cod_diffc.backbones.gaussian:load_gaussian_vp_backbone",
    "ldm": "cod_diffc.backbones.latent_diffusion:load_latent_diffusion_backbone",
    "sd": "cod_diffc.backbones.stable_diffusion:load_stable_diffusion_backbone",
}

BUILTIN_DEFAULT_MODELS: dict[str, str] = {
    "cod": "cod-latent-small (embedded)",
    "cod-lite": "none: --model a converted CoD-Lite (cod-diffc convert --variant cod-lite-pretrain)",
    "gaussian": "none (the closed-form denoiser of Gaussian data)",
    "gaussian-vp": "none (the same, through the discrete-VP path of Stable Diffusion)",
    "ldm": "ldm-small (embedded)",
    "sd": "stable-diffusion-v1-5/stable-diffusion-v1-5 (Hugging Face hub)",
}
"""What each built-in backbone loads without `--model`, for `cod-diffc backbones`."""

BACKBONES = PluginRegistry("backbone", ENTRY_POINT_GROUP, BUILTIN_BACKBONES)
"""The backbone registry."""


def register_backbone(name: str, factory: BackboneFactory) -> None:
    r"""
    Registers a backbone factory under `name` for this session.

    Args:
        name (`str`): The backbone name written into streams.
        factory (`Callable`): `factory(model, *, device, dtype, **options) -> BackboneAdapter`.

    Raises:
        `ValueError`: If the name is invalid or already taken by a built-in or registered backbone.
    """
    if not callable(factory):
        raise ValueError(f"the factory of backbone {name!r} is not callable: {factory!r}")
    BACKBONES.register(name, factory)


def available_backbones() -> list[str]:
    """The sorted names of every built-in, registered and installed backbone."""
    return BACKBONES.names()


def get_backbone_factory(name: str) -> BackboneFactory:
    r"""
    The factory registered for `name`, importing its module only now.

    Raises:
        `ValueError`: If no backbone has that name (the message lists the available ones), or an installed plugin
            clashes with a registered name.
    """
    return BACKBONES.get(name)


def load_backbone(
    name: str,
    model: str | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    **options: Any,
) -> BackboneAdapter:
    r"""
    Builds the adapter of backbone `name`.

    Args:
        name (`str`): A name from [`available_backbones`].
        model (`str`, *optional*): Path or hub id of the weights; `None` selects the backbone's default.
        device (`torch.device` or `str`, defaults to `"cpu"`): Where the network runs.
        dtype (`torch.dtype`, *optional*): Compute dtype; `None` selects the backbone's default.
        **options: Backbone-specific settings, passed to the factory.

    Returns:
        [`BackboneAdapter`]: The adapter; its `name` is `name`.

    Raises:
        `ValueError`: If the name is unknown, an option is not one the factory takes, or the factory builds an
            adapter that is not a [`BackboneAdapter`] named `name`.
    """
    factory = get_backbone_factory(name)
    _check_options(name, factory, options)
    adapter = factory(model, device=device, dtype=dtype, **options)
    if not isinstance(adapter, BackboneAdapter):
        raise ValueError(f"the factory of backbone {name!r} returned {type(adapter).__name__}, not a BackboneAdapter")
    if adapter.name != name:
        raise ValueError(
            f"the factory of backbone {name!r} built an adapter named {adapter.name!r}; streams record the adapter "
            "name, so they must agree"
        )
    return adapter


def _check_options(name: str, factory: BackboneFactory, options: dict[str, Any]) -> None:
    """Refuses options that `factory` has no parameter for (unless it takes `**options`), naming the ones it takes."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without an inspectable signature: let the call decide
        return
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values()):
        return
    accepted = [key for key in parameters if key not in ("model", "device", "dtype")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"backbone {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(map(repr, accepted)) if accepted else 'no options'}"
        )
