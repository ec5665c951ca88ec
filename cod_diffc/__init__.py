"""cod_diffc: CoD as diffusers components, and zero-shot diffusion codecs (DiffC, Turbo-DDCM, DDCM) on any backbone.

The public classes are imported on first use, so that `import cod_diffc.cli` (and `cod-diffc --help`) does not pay
for importing diffusers.
"""

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any


__version__ = importlib.metadata.version("cod_diffc")  # one source of truth: pyproject.toml

_EXPORTS = {
    "CodConditionCodec": "cod_diffc.models",
    "CodTransformer2DModel": "cod_diffc.models",
    "CodFlowMatchScheduler": "cod_diffc.schedulers",
    "NAMED_CONFIGS": "cod_diffc.pipelines",
    "CodPipeline": "cod_diffc.pipelines",
    "CodPipelineOutput": "cod_diffc.pipelines",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from cod_diffc.models import CodConditionCodec, CodTransformer2DModel
    from cod_diffc.pipelines import NAMED_CONFIGS, CodPipeline, CodPipelineOutput
    from cod_diffc.schedulers import CodFlowMatchScheduler
