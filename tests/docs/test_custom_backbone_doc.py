"""docs/custom_backbone.md works as written: its files make a plugin package that pip installs, and its Python
example and `cod-diffc` commands code and decode through the installed backbone."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from cod_diffc.backbones.registry import ENTRY_POINT_GROUP


PAGE = Path(__file__).resolve().parents[2] / "docs" / "custom_backbone.md"

# A fenced block: ```language [title="file name"] ... ```
FENCED_BLOCK = re.compile(r'^```(?P<language>\w+)(?: title="(?P<title>[^"]+)")?\n(?P<code>.*?)^```$', re.M | re.S)
EXAMPLE_LINE = re.compile(r"stop step (\d+): (\d+) bytes, ([\d.]+) bpp, PSNR ([\d.]+) dB")


def page_blocks() -> list[tuple[str, str | None, str]]:
    """`(language, title, code)` of every fenced block of the page, in order."""
    return [(match["language"], match["title"], match["code"]) for match in FENCED_BLOCK.finditer(PAGE.read_text())]


def run_python(arguments: list[str], plugin_site: Path, cwd: Path) -> str:
    """Runs this interpreter with the installed plugin importable; returns its stdout."""
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        # One thread: the example's tensors are tiny, and on a shared CPU more threads only contend.
        env={**os.environ, "PYTHONPATH": str(plugin_site), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The page's package (its titled blocks, as files), installed with pip into a private target directory."""
    package = tmp_path_factory.mktemp("my-backbones")
    for _, title, code in page_blocks():
        if title is not None:
            (package / title).write_text(code)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--quiet"]
        + ["--target", str(target), str(package)],
        check=True,
    )
    return target


def test_page_has_the_package_files_and_one_example():
    blocks = page_blocks()
    files = {title: code for _, title, code in blocks if title is not None}
    assert set(files) == {"mean_colour_backbone.py", "ddpm_unet_backbone.py", "pyproject.toml"}
    entry_point = f'[project.entry-points."{ENTRY_POINT_GROUP}"]\nmean-colour = "mean_colour_backbone:load_mean'
    assert entry_point in files["pyproject.toml"]
    assert 'ddpm-unet = "ddpm_unet_backbone:load_ddpm_unet_backbone"' in files["pyproject.toml"]
    assert 'name = "mean-colour"' in files["mean_colour_backbone.py"]
    # "about 40 lines": the DDPM adapter is the network call and the image maps, nothing else.
    assert len([line for line in files["ddpm_unet_backbone.py"].splitlines() if line.strip()]) <= 50
    assert sum(language == "python" and title is None for language, title, _ in blocks) == 1


def test_python_example_round_trips_through_the_installed_plugin(plugin_site, tmp_path):
    (example,) = [code for language, title, code in page_blocks() if language == "python" and title is None]
    (tmp_path / "example.py").write_text(example)
    rows = [tuple(map(float, row)) for row in EXAMPLE_LINE.findall(run_python(["example.py"], plugin_site, tmp_path))]
    assert [int(row[0]) for row in rows] == [8, 16, 24, 32]
    sizes, bpps, psnrs = ([row[column] for row in rows] for column in (1, 2, 3))
    assert sizes == sorted(sizes) and bpps == sorted(bpps)
    assert psnrs == sorted(psnrs) and psnrs[-1] > 30  # more bits, a closer reconstruction
    assert all(bpp == pytest.approx(8 * size / 64**2, abs=1e-3) for size, bpp in zip(sizes, bpps))


def test_command_lines_code_and_decode_through_the_installed_plugin(plugin_site, tmp_path):
    commands = [
        shlex.split(line, comments=True)
        for language, _, code in page_blocks()
        if language == "bash"
        for line in code.splitlines()
        if line.startswith("cod-diffc ")
    ]
    assert [command[1] for command in commands] == ["backbones", "compress", "decompress"]
    ramp = torch.linspace(0, 1, 64)
    image = torch.stack([ramp.outer(ramp), ramp.flip(0).outer(ramp), torch.full((64, 64), 0.5)])  # (3, 64, 64)
    Image.fromarray((255 * image).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")

    outputs = [run_python(["-m", "cod_diffc", *command[1:]], plugin_site, tmp_path) for command in commands]
    assert "mean-colour" in outputs[0].split()
    assert 8 * (tmp_path / "photo.cdc").stat().st_size / 64**2 <= 0.2
    with Image.open(tmp_path / "photo_decoded.png") as decoded:
        assert decoded.size == (64, 64)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddpm_unet_backbone_codes_a_tiny_random_ddpm_pipeline(plugin_site, tmp_path, prediction_type):
    """The page's DiscreteVPAdapterMixin example on a tiny random UNet2DModel + DDPMScheduler saved as a
    DDPMPipeline: DiffC and Turbo-DDCM round-trip through it, bit-exactly on the decoder's side."""
    script = f"""
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from cod_diffc.backbones import load_backbone
from cod_diffc.diffc import DiffCSchedule, decode, encode
from cod_diffc.ddcm import TurboDDCMCodec
from cod_diffc.diffc.channel import ChunkedPFRSimulator

torch.manual_seed(0)
unet = UNet2DModel(
    sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
)
DDPMPipeline(unet, DDPMScheduler(prediction_type="{prediction_type}")).save_pretrained("tiny_ddpm")
adapter = load_backbone("ddpm-unet", "tiny_ddpm")
assert (adapter.size_multiple, adapter.prediction_type) == (2, "{prediction_type}")
image = torch.rand(1, 3, 15, 17, generator=torch.Generator().manual_seed(1))  # odd sides: padded for the UNet
result = encode(image, adapter, stop_step=6, schedule=DiffCSchedule(num_steps=8),
                simulator=ChunkedPFRSimulator(max_chunk_bits=8), progress=False)
decoded = decode(result.points[0].stream, load_backbone("ddpm-unet", "tiny_ddpm"), progress=False)
assert torch.equal(decoded.latent, result.points[0].latent)
turbo = TurboDDCMCodec(num_steps=6, codebook_bits=6, block_width=256, min_block_width=64)
encoded = turbo.encode(image, adapter, target_bpp=3.0, progress=False)
assert encoded.stop_step > 0
assert torch.equal(turbo.decode(encoded.stream, load_backbone("ddpm-unet", "tiny_ddpm"), progress=False).latent,
                   encoded.latent)
print("round trip", len(result.points[0].stream), "bytes")
"""
    (tmp_path / "ddpm_example.py").write_text(script)
    assert "round trip" in run_python(["ddpm_example.py"], plugin_site, tmp_path)
