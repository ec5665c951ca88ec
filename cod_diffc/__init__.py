"""cod_diffc: CoD as diffusers components, and zero-shot diffusion codecs (DiffC, Turbo-DDCM, DDCM) on any backbone.

The public classes are imported on first use, so that `import cod_diffc.cli` (and `cod-diffc --help`) does not pay
for importing diffusers.
"""

import importlib
import importlib.metadata
import re
from pathlib import Path
from typing import TYPE_CHECKING

from cod_diffc.lazy_exports import lazy_exports


def _version() -> str:
    """The installed version; in a plain copy of the source tree (`PYTHONPATH=.`, no install), pyproject.toml's."""
    try:
        return importlib.metadata.version("cod_diffc")  # one source of truth: pyproject.toml
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        text = pyproject.read_text() if pyproject.is_file() else ""
        project = text.split("[project]", 1)[1].split("\n[", 1)[0] if "[project]" in text else ""  # its table only
        found = re.search(r'^version = "([^"+]+)"', project, re.MULTILINE)
        return f"{found.group(1)}+source" if found else "0+unknown"


__version__ = _version()

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "cod_diffc.models": ["CodConditionCodec", "CodLiteDenoiserModel", "CodTransformer2DModel"],
        "cod_diffc.schedulers": ["CodFlowMatchScheduler"],
        "cod_diffc.pipelines": [
            "NAMED_CONFIGS",
            "CodLitePipeline",
            "CodPipeline",
            "CodPipelineOutput",
            "LatentDiffusionPipeline",
        ],
    },
)


if TYPE_CHECKING:
    from cod_diffc.models import CodConditionCodec, CodLiteDenoiserModel, CodTransformer2DModel
    from cod_diffc.pipelines import (
        NAMED_CONFIGS,
        CodLitePipeline,
        CodPipeline,
        CodPipelineOutput,
        LatentDiffusionPipeline,
    )
    from cod_diffc.schedulers import CodFlowMatchScheduler
