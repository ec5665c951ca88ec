"""Trains the tiny configuration and SIGKILLs itself in the middle of saving one checkpoint (its files written, the
commit rename not yet done): what a power cut or the OOM killer does at the worst moment.

    python kill_during_save.py TRAIN_DIR OUTPUT_DIR KILL_STEP [KEY=VALUE ...]
"""

import os
import signal
import sys

import torch

import cod_diffc.training.checkpointing as checkpointing
from cod_diffc.training import CodTrainer

from training_helpers import tiny_config


def main() -> None:
    train_dir, output_dir, kill_step, *overrides = sys.argv[1:]
    torch.set_num_threads(1)
    flush = checkpointing._fsync_tree

    def flush_or_die(directory):
        if directory.name == f".checkpoint-{int(kill_step):08d}.partial":
            os.kill(os.getpid(), signal.SIGKILL)
        flush(directory)

    checkpointing._fsync_tree = flush_or_die
    CodTrainer(tiny_config(train_dir, output_dir, *overrides)).train()


if __name__ == "__main__":
    main()
