"""Named plugins from three places: a built-in table, runtime registrations and installed entry points.

One mechanism serves every open table of the library: backbones ([`~backbones.registry`]), codecs
([`~codecs.registry`]) and DiffC's channel coders. Names come from

1. the built-in table, as lazy `"module:attr"` strings, so looking a name up never imports a heavy dependency it does
   not need;
2. [`PluginRegistry.register`] at runtime;
3. installed distributions declaring an entry point in the registry's group, e.g. in a plugin's `pyproject.toml`:

       [project.entry-points."cod_diffc.backbones"]
       my-backbone = "my_package.adapter:load_my_backbone"
"""

import importlib
import importlib.metadata
import re
from typing import Any


_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def check_plugin_name(kind: str, name: str) -> None:
    """`ValueError` unless `name` is 1-64 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-64 characters from a-z, 0-9, '.', '_', '-', starting with a "
            "letter or digit"
        )


class PluginRegistry:
    r"""
    Names to objects (factories, classes) of one kind.

    Args:
        kind (`str`): What the registry holds, for messages ("backbone", "codec", ...).
        entry_point_group (`str`): The entry-point group installed plugins declare.
        builtins (`dict[str, str]`): Built-in names to `"module:attr"` targets; held by reference.
    """

    def __init__(self, kind: str, entry_point_group: str, builtins: dict[str, str]):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtins = builtins
        self.runtime: dict[str, Any] = {}

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """The installed plugins, read afresh on every call (so a plugin installed at runtime is seen).

        Raises:
            `ValueError`: If an installed plugin clashes with a registered name, or two plugins claim one name.
        """
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            if entry_point.name in self.builtins or entry_point.name in self.runtime:
                registered = self.builtins.get(entry_point.name, self.runtime.get(entry_point.name))
                raise ValueError(
                    f"entry point {entry_point.name!r} = {entry_point.value!r} (group {self.entry_point_group!r}) "
                    f"clashes with the registered {self.kind} {entry_point.name!r} = {registered!r}; rename the "
                    "plugin's entry point"
                )
            other = found.get(entry_point.name)
            if other is not None and other.value != entry_point.value:
                raise ValueError(
                    f"two installed entry points claim {self.kind} {entry_point.name!r}: {other.value!r} and "
                    f"{entry_point.value!r} (group {self.entry_point_group!r})"
                )
            found[entry_point.name] = entry_point
        return found

    def register(self, name: str, target: Any) -> None:
        """Registers `target` under `name` for this session; `ValueError` for an invalid or taken name."""
        check_plugin_name(self.kind, name)
        if name in self.builtins or name in self.runtime:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self.runtime[name] = target

    def names(self) -> list[str]:
        """The sorted names of every built-in, registered and installed plugin."""
        return sorted({*self.builtins, *self.runtime, *self.entry_points()})

    def get(self, name: str) -> Any:
        """The object registered for `name`, importing its module only now; `ValueError` listing the available
        names for an unknown one."""
        if name in self.runtime:
            return self.runtime[name]
        if name in self.builtins:
            module_name, _, attribute = self.builtins[name].partition(":")
            return getattr(importlib.import_module(module_name), attribute)
        entry_points = self.entry_points()
        if name in entry_points:
            return entry_points[name].load()
        raise ValueError(f"unknown {self.kind} {name!r}; available {self.kind}s: {', '.join(self.names())}")
