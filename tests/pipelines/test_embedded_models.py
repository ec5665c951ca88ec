"""The model that ships inside the package: present, small, loadable by name and by default, and a working codec."""

from pathlib import Path

import pytest
import torch

import cod_diffc.pipelines.embedded_models as embedded_models
from cod_diffc import CodPipeline
from cod_diffc.backbones import load_backbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc import decode, decompress, encode
from cod_diffc.errors import StreamError
from cod_diffc.evaluation.metrics import psnr, to_uint8
from cod_diffc.pipelines.embedded_models import (
    DEFAULT_EMBEDDED_MODEL,
    EMBEDDED_MODEL_FINGERPRINTS,
    EMBEDDED_MODELS,
    resolve_embedded_model,
)

from tiny_models import save_tiny_cod


def test_the_default_model_ships_as_safetensors_within_30_mb_with_the_training_data_notice():
    folder = EMBEDDED_MODELS[DEFAULT_EMBEDDED_MODEL]
    weights = sorted(folder.rglob("*.safetensors"))
    assert [path.parent.name for path in weights] == ["condition_codec", "transformer", "vae"]
    assert sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) <= 30e6
    notice = (folder.parent / "NOTICE.md").read_text()
    assert "CC BY-SA 4.0" in notice and "Unsplash" in notice


def test_no_shipped_file_carries_a_path_of_the_machine_that_made_it():
    package = Path(embedded_models.__file__).resolve().parents[1]
    for path in [*package.rglob("*.json"), *package.rglob("*.md"), *package.rglob("*.yaml")]:
        text = path.read_text()
        for marker in ("/work/", "/home/", "/root/", "/tmp/", "C:\\"):
            assert marker not in text, f"{path} mentions {marker}"


def test_save_pretrained_writes_no_name_or_path(tmp_path):
    CodPipeline.from_pretrained(DEFAULT_EMBEDDED_MODEL).save_pretrained(tmp_path / "cod")
    index = (tmp_path / "cod" / "model_index.json").read_text()
    assert "_name_or_path" not in index and '"_class_name": "CodPipeline"' in index
    assert CodPipeline.from_pretrained(tmp_path / "cod").config.default_guidance_scale > 0

    from cod_diffc import LatentDiffusionPipeline

    from tiny_models import save_tiny_ldm_pipeline

    LatentDiffusionPipeline.from_pretrained(save_tiny_ldm_pipeline(tmp_path / "ldm")).save_pretrained(
        tmp_path / "copy"
    )
    for path in (tmp_path / "copy").rglob("*.json"):
        assert "_name_or_path" not in path.read_text(), path


def test_from_pretrained_takes_the_embedded_name_and_computes_in_float32():
    pipeline = CodPipeline.from_pretrained(DEFAULT_EMBEDDED_MODEL)
    assert pipeline.vae is not None and pipeline.transformer.config.in_channels == pipeline.vae.config.latent_channels
    for component in ("transformer", "condition_codec", "vae"):
        assert {parameter.dtype for parameter in pipeline.components[component].parameters()} == {torch.float32}
    half = CodPipeline.from_pretrained(DEFAULT_EMBEDDED_MODEL, dtype=torch.float16)
    assert half.condition_codec.dtype == torch.float16


def test_a_local_folder_with_an_embedded_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_EMBEDDED_MODEL).mkdir()
    assert resolve_embedded_model(DEFAULT_EMBEDDED_MODEL) == DEFAULT_EMBEDDED_MODEL
    assert resolve_embedded_model("some/hub-id") == "some/hub-id"


def test_missing_embedded_files_are_named(tmp_path, monkeypatch):
    monkeypatch.setitem(embedded_models.EMBEDDED_MODELS, "cod-pixel-gone", tmp_path / "cod-pixel-gone")
    with pytest.raises(FileNotFoundError, match="embedded model cod-pixel-gone is missing"):
        resolve_embedded_model("cod-pixel-gone")


@pytest.fixture(scope="module")
def sample_crop() -> torch.Tensor:
    from cod_diffc.image_files import load_image

    image = load_image(Path(embedded_models.__file__).parents[1] / "assets" / "sample.png")  # (1, 3, 512, 512)
    return torch.nn.functional.interpolate(image, size=(64, 64), mode="area")


def test_the_cod_backbone_defaults_to_the_embedded_model_and_rate_buys_quality(sample_crop):
    adapter = load_backbone("cod")
    assert adapter.fingerprint() == load_backbone("cod", DEFAULT_EMBEDDED_MODEL).fingerprint()
    result = encode(sample_crop, adapter, stop_step=[0, 8, 20], schedule=DiffCSchedule(num_steps=32), progress=False)
    original = to_uint8(sample_crop)
    qualities = []
    for point in result.points:
        assert torch.equal(decode(point.stream, load_backbone("cod"), progress=False).latent, point.latent)
        reconstruction = decompress(point.stream, adapter, num_denoise_steps=4, progress=False)
        qualities.append(psnr(original, to_uint8(reconstruction)))
    assert qualities[0] < qualities[1] < qualities[2], qualities


def test_every_embedded_model_is_named_by_its_fingerprint():
    for name in EMBEDDED_MODELS:
        fingerprint = load_backbone("cod", name).fingerprint().hex()
        assert f"embedded model {name} " in EMBEDDED_MODEL_FINGERPRINTS.get(fingerprint, ""), name


def test_a_stream_of_the_embedded_model_names_it_to_a_decoder_running_another(sample_crop, tmp_path):
    result = encode(
        sample_crop, load_backbone("cod"), stop_step=[4], schedule=DiffCSchedule(num_steps=8), progress=False
    )
    other = load_backbone("cod", save_tiny_cod(tmp_path / "tiny", seed=0))
    with pytest.raises(StreamError, match=f"another 'cod' model: the embedded model {DEFAULT_EMBEDDED_MODEL} "):
        decode(result.points[0].stream, other, progress=False)
