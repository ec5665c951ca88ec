"""Training CoD (the autoencoder of a latent CoD, and a latent diffusion model to compare CoD with) on `accelerate`:
configuration, data, objectives, checkpoints and export.

Run it with `cod-diffc train --config CONFIG.yaml [section.key=value ...]`, also under `accelerate launch`; see
`docs/training.md`.
"""

from cod_diffc.training.autoencoder import AutoencoderTrainer
from cod_diffc.training.config import TrainConfig, load_train_config
from cod_diffc.training.latent_diffusion import LatentDiffusionTrainer
from cod_diffc.training.trainer import CodTrainer, Trainer


__all__ = ["AutoencoderTrainer", "CodTrainer", "LatentDiffusionTrainer", "TrainConfig", "Trainer", "load_train_config"]
