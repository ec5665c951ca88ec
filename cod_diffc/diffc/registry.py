"""Backbone names -> adapter factories: the built-in table, runtime registrations and installed plugins.

A backbone name is what a stream records and what `--backbone NAME` selects. Names come from three places:

1. [`BUILTIN_BACKBONES`]: the project's adapters, as lazy `"module:attr"` strings so that looking a name up never
   imports a heavy dependency (transformers, a model file) it does not need;
2. [`register_backbone`] at runtime;
3. installed distributions declaring an entry point in the group [`ENTRY_POINT_GROUP`], e.g. in a plugin's
   `pyproject.toml`:

       [project.entry-points."cod_diffc.backbones"]
       my-backbone = "my_package.adapter:load_my_backbone"

A factory is any callable `factory(model, *, device, dtype, **options) -> BackboneAdapter`, where `model` is a
path or hub id of the weights (or `None` for the backbone's default) and `options` are backbone-specific settings.
"""

import importlib
import importlib.metadata
import inspect
import re
from collections.abc import Callable
from typing import Any

import torch

from .adapter import BackboneAdapter


BackboneFactory = Callable[..., BackboneAdapter]

ENTRY_POINT_GROUP = "cod_diffc.backbones"

BUILTIN_BACKBONES: dict[str, str] = {
    "cod": "cod_diffc.diffc.adapters.cod:load_cod_backbone",
    "gaussian": "cod_diffc.diffc.gaussian_backbone:load_gaussian_backbone",
    "sd": "cod_diffc.diffc.adapters.stable_diffusion:load_stable_diffusion_backbone",
}

_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")

_runtime_backbones: dict[str, BackboneFactory] = {}


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid backbone name {name!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', starting with a "
            "letter or digit"
        )


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed plugin backbones, read afresh on every call (so a plugin installed at runtime is seen)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry_point.name in BUILTIN_BACKBONES or entry_point.name in _runtime_backbones:
            builtin = BUILTIN_BACKBONES.get(entry_point.name, _runtime_backbones.get(entry_point.name))
            raise ValueError(
                f"entry point {entry_point.name!r} = {entry_point.value!r} (group {ENTRY_POINT_GROUP!r}) clashes with "
                f"the registered backbone {entry_point.name!r} = {builtin!r}; rename the plugin's entry point"
            )
        other = found.get(entry_point.name)
        if other is not None and other.value != entry_point.value:
            raise ValueError(
                f"two installed entry points claim backbone {entry_point.name!r}: {other.value!r} and "
                f"{entry_point.value!r} (group {ENTRY_POINT_GROUP!r})"
            )
        found[entry_point.name] = entry_point
    return found


def register_backbone(name: str, factory: BackboneFactory) -> None:
    r"""
    Registers a backbone factory under `name` for this session.

    Args:
        name (`str`): The backbone name written into streams.
        factory (`Callable`): `factory(model, *, device, dtype, **options) -> BackboneAdapter`.

    Raises:
        `ValueError`: If the name is invalid or already taken by a built-in or registered backbone.
    """
    _check_name(name)
    if not callable(factory):
        raise ValueError(f"the factory of backbone {name!r} is not callable: {factory!r}")
    if name in BUILTIN_BACKBONES or name in _runtime_backbones:
        raise ValueError(f"backbone {name!r} is already registered")
    _runtime_backbones[name] = factory


def available_backbones() -> list[str]:
    """The sorted names of every built-in, registered and installed backbone."""
    return sorted({*BUILTIN_BACKBONES, *_runtime_backbones, *_entry_points()})


def get_backbone_factory(name: str) -> BackboneFactory:
    r"""
    The factory registered for `name`, importing its module only now.

    Raises:
        `ValueError`: If no backbone has that name (the message lists the available ones), or an installed plugin
            clashes with a registered name.
    """
    if name in _runtime_backbones:
        return _runtime_backbones[name]
    if name in BUILTIN_BACKBONES:
        module_name, _, attribute = BUILTIN_BACKBONES[name].partition(":")
        return getattr(importlib.import_module(module_name), attribute)
    entry_points = _entry_points()
    if name in entry_points:
        return entry_points[name].load()
    raise ValueError(f"unknown backbone {name!r}; available backbones: {', '.join(available_backbones())}")


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
