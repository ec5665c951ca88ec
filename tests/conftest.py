import os
from pathlib import Path

import pytest
import torch


SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"


def pytest_collection_modifyitems(config, items):
    run_slow = os.environ.get("RUN_SLOW") == "1"
    has_cuda = torch.cuda.is_available()
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(pytest.mark.skip(reason="slow test: set RUN_SLOW=1 to run"))
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference` beside the checkout (CI clones the project with `shared/` next to it)."""
    if not REFERENCE_DIR.is_dir():
        raise FileNotFoundError(f"reference data not found at {REFERENCE_DIR}; clone the project beside shared/")
    return REFERENCE_DIR
