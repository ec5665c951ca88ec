"""Package namespaces whose names are imported on first use, so importing a package stays light (no torch, no
CompressAI until a name that needs them is touched)."""

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package` (its `__name__`), exporting the names of `exports`
    (module -> names; a module is relative to the package unless it contains a dot, e.g. `"cod_diffc.models"`).

    Use it at the top of the package's `__init__.py`:

        __all__, __getattr__, __dir__ = lazy_exports(__name__, {"codec": ["Codec"], ...})
    """
    module_of = {name: module for module, names in exports.items() for name in names}
    names = sorted(module_of)

    def __getattr__(name: str) -> Any:
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = module_of[name]
        return getattr(importlib.import_module(module if "." in module else f".{module}", package), name)

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *names})

    return names, __getattr__, __dir__
