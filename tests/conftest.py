import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch


# One thread per test process (and per subprocess a test starts): on a 2-core machine, 2-thread kernels in
# several processes oversubscribe the cores and make tiny-model tests tens of times slower. Tests that compare thread
# counts set them explicitly.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
REFERENCE_DIR = SHARED_DIR / "reference"
PLUGIN_PACKAGE = Path(__file__).resolve().parent / "fixtures" / "third_party_plugins"


@pytest.fixture(autouse=True, scope="session")
def private_fingerprint_cache(tmp_path_factory):
    """Fingerprint caches go to a temporary folder, not the user's ~/.cache (subprocesses inherit it)."""
    from cod_diffc.backbones.fingerprint_cache import CACHE_ENV

    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("fingerprint_cache"))
    yield
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


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
        pytest.skip(f"reference data not found at {REFERENCE_DIR}: clone the project beside shared/")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def cod_official_dir() -> Path:
    """The official-CoD reference folder: `$COD_DIFFC_REFERENCE_DIR` (relative to the working directory if relative),
    by default `../shared/reference/cod_official` beside the checkout. Any folder made the same way will do."""
    folder = Path(os.environ.get("COD_DIFFC_REFERENCE_DIR", REFERENCE_DIR / "cod_official"))
    if not folder.is_dir():
        pytest.skip(
            f"official-CoD reference folder not found at {folder}: clone beside shared/ or set COD_DIFFC_REFERENCE_DIR"
        )
    return folder


@pytest.fixture(scope="session")
def cod_lite_official_dir() -> Path:
    """The official-CoD-Lite reference folder: `$COD_DIFFC_LITE_REFERENCE_DIR` (relative to the working directory if
    relative), by default `../shared/reference/cod_lite_official` beside the checkout."""
    folder = Path(os.environ.get("COD_DIFFC_LITE_REFERENCE_DIR", REFERENCE_DIR / "cod_lite_official"))
    if not folder.is_dir():
        pytest.skip(
            f"official-CoD-Lite reference folder not found at {folder}: clone beside shared/ or set "
            "COD_DIFFC_LITE_REFERENCE_DIR"
        )
    return folder


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """The fixture plugin, installed for real with pip into a private target directory (no network)."""
    source = tmp_path_factory.mktemp("plugin_source") / "third_party_plugins"
    shutil.copytree(PLUGIN_PACKAGE, source)  # build in a copy: setuptools writes build files next to the sources
    target = tmp_path_factory.mktemp("plugin_site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
    )
    return target


@pytest.fixture
def installed_plugin(plugin_site, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(plugin_site))
    return plugin_site
