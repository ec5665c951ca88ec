"""cod_diffc: CoD as diffusers components, and the DiffC zero-shot codec on Stable Diffusion or CoD."""

from cod_diffc.models import CodConditionCodec, CodTransformer2DModel
from cod_diffc.pipelines import NAMED_CONFIGS, CodPipeline, CodPipelineOutput
from cod_diffc.schedulers import CodFlowMatchScheduler


__version__ = "0.1.0.dev0"

__all__ = [
    "NAMED_CONFIGS",
    "CodConditionCodec",
    "CodFlowMatchScheduler",
    "CodPipeline",
    "CodPipelineOutput",
    "CodTransformer2DModel",
]
