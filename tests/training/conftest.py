"""Fixtures of the training tests."""

from pathlib import Path

import pytest
import torch

from cod_diffc.training.config import TrainConfig

from training_helpers import tiny_config, write_images


@pytest.fixture(autouse=True)
def single_thread():
    """The tiny models run fastest on one thread; two threads on a shared, busy CPU can be 30x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_images(folder, 8)
    return folder


@pytest.fixture
def make_config(image_folder: Path, tmp_path: Path):
    """Builds the tiny configuration on `image_folder`, writing to `tmp_path / output`."""

    def make(*overrides: str, output: str = "run") -> TrainConfig:
        return tiny_config(image_folder, tmp_path / output, *overrides)

    return make
