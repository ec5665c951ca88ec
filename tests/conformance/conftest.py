"""Fixtures of the conformance tests: each tiny official-CoD checkpoint of the reference folder, converted with
`cod-diffc convert` and loaded as a `CodPipeline`, with its config and stored inputs and outputs.

The folder is `$COD_DIFFC_REFERENCE_DIR` (see `cod_official_dir` in tests/conftest.py). Every size, seed, step count
and guidance scale comes from its files, so the tests pass on any folder produced the same way.
"""

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file

from cod_diffc import CodPipeline
from cod_diffc.cli import main
from cod_diffc.pipelines.named_configs import get_named_config

from conformance_helpers import DTYPES, VARIANTS


ConvertCommand = Callable[[Path, str, Path], tuple[int, str, str]]


@pytest.fixture(scope="session", params=VARIANTS)
def variant(request, cod_official_dir: Path) -> str:
    if not (cod_official_dir / f"tiny_{request.param}_io.safetensors").is_file():
        pytest.skip(f"{cod_official_dir} holds no tiny_{request.param}_io.safetensors")
    return request.param


@pytest.fixture(scope="session")
def tiny_config(cod_official_dir: Path, variant: str) -> dict:
    return json.loads((cod_official_dir / f"tiny_config_{variant}.json").read_text())


@pytest.fixture(scope="session")
def reference_io(cod_official_dir: Path, variant: str) -> dict[str, torch.Tensor]:
    return load_file(cod_official_dir / f"tiny_{variant}_io.safetensors")


@pytest.fixture(scope="session")
def tiny_state_dict_path(cod_official_dir: Path, variant: str) -> Path:
    return cod_official_dir / f"tiny_{variant}_state_dict.safetensors"


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A tiny random `AutoencoderKL` (4 latent channels, downsampling 8), saved to a folder for `convert --vae`.

    `CodPipeline` needs a VAE for the latent variants; the reference has none, so those are compared in latent space.
    """
    folder = tmp_path_factory.mktemp("tiny_vae")
    AutoencoderKL(**get_named_config("cod-latent-tiny").vae).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def convert(cod_official_dir: Path, tiny_vae_dir: Path) -> ConvertCommand:
    """Runs `cod-diffc convert CHECKPOINT --variant V --config tiny_config_V.json [--vae TINY] -o OUTPUT`.

    Returns a function `(checkpoint, variant, output) -> (exit status, stdout, stderr)`.
    """

    def run(checkpoint: Path, variant: str, output: Path) -> tuple[int, str, str]:
        arguments = ["convert", str(checkpoint), "--variant", variant.replace("_", "-"), "-o", str(output)]
        arguments += ["--config", str(cod_official_dir / f"tiny_config_{variant}.json")]
        if json.loads((cod_official_dir / f"tiny_config_{variant}.json").read_text())["latent"]:
            arguments += ["--vae", str(tiny_vae_dir)]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(arguments)
        return status, stdout.getvalue(), stderr.getvalue()

    return run


@pytest.fixture(scope="session")
def converted(convert: ConvertCommand, tiny_state_dict_path: Path, variant: str, tmp_path_factory) -> tuple[Path, str]:
    """The pipeline folder `cod-diffc convert` wrote for the tiny checkpoint, and what the command printed."""
    output = tmp_path_factory.mktemp(f"converted_{variant}") / "pipeline"
    status, stdout, stderr = convert(tiny_state_dict_path, variant, output)
    assert status == 0, stderr
    return output, stdout


@pytest.fixture(scope="session")
def converted_pipelines(converted: tuple[Path, str]) -> dict[str, CodPipeline]:
    """The converted pipeline loaded in float32 and in float64, keyed by the reference suffix (`"f32"`, `"f64"`)."""
    pipelines = {}
    for suffix, dtype in DTYPES.items():
        # Cast after loading: `from_pretrained(dtype=...)` keeps `_keep_in_fp32_modules` in float32.
        pipe = CodPipeline.from_pretrained(converted[0]).to(dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        pipelines[suffix] = pipe
    return pipelines
