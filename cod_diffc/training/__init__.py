"""Training CoD from scratch on `accelerate`: configuration, data, objective, checkpoints and export.

Run it with `cod-diffc train --config CONFIG.yaml [section.key=value ...]`, also under `accelerate launch`; see
`docs/training.md`.
"""

from cod_diffc.training.config import TrainConfig, load_train_config
from cod_diffc.training.trainer import CodTrainer


__all__ = ["CodTrainer", "TrainConfig", "load_train_config"]
