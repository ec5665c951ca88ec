from cod_diffc.pipelines.named_configs import NAMED_CONFIGS, CodNamedConfig, get_named_config
from cod_diffc.pipelines.pipeline_cod import CodPipeline, CodPipelineOutput
