"""Packages only some users need: each comes with an extra of the package, and a missing one is named with it.

>>> from cod_diffc.optional_dependencies import require
>>> matplotlib = require("matplotlib", "RD plots")  # raises MissingDependencyError naming `cod-diffc[plots]`
"""

import importlib
import importlib.util
import sys
from types import ModuleType


EXTRA_OF_MODULE = {"matplotlib": "plots", "imagecodecs": "codecs", "transformers": "sd", "torchmetrics": "metrics"}
"""The extra (`pip install "cod-diffc[EXTRA]"`) that installs each optional module."""


class MissingDependencyError(ImportError):
    """An optional package a feature needs is not installed; the message names the extra that installs it."""


def is_available(module: str) -> bool:
    """Whether the optional `module` can be imported (without importing it)."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: import blocked
    return importlib.util.find_spec(module) is not None


def require(module: str, purpose: str) -> ModuleType:
    """Imports the optional `module`, or raises [`MissingDependencyError`] saying which extra `purpose` needs.

    Args:
        module (`str`): A key of [`EXTRA_OF_MODULE`].
        purpose (`str`): What needs it, for the message (e.g. `"the sd backbone"`).
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f'{purpose} needs the `{module}` package: pip install "cod-diffc[{EXTRA_OF_MODULE.get(module, "all")}]"'
        ) from error
