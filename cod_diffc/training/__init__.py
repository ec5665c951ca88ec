"""Training CoD (and the autoencoder of a latent CoD) on `accelerate`: configuration, data, objectives, checkpoints
and export.

Run it with `cod-diffc train --config CONFIG.yaml [section.key=value ...]`, also under `accelerate launch`; see
`docs/training.md`.
"""

from cod_diffc.training.autoencoder import AutoencoderTrainer
from cod_diffc.training.config import TrainConfig, load_train_config
from cod_diffc.training.trainer import CodTrainer, Trainer


__all__ = ["AutoencoderTrainer", "CodTrainer", "TrainConfig", "Trainer", "load_train_config"]
