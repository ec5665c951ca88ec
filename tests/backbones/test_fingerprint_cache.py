"""Fingerprints of models loaded from files are cached by the files' identity, and equal the full digest."""

import os

import pytest

from cod_diffc.backbones.fingerprint_cache import CACHE_ENV, cache_file, cached_fingerprint, file_identity
from cod_diffc.backbones.stable_diffusion import StableDiffusionAdapter

from tiny_models import save_tiny_sd_pipeline


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}" + bytes(64))
    return path


def counting(value: bytes):
    calls = []
    return calls, lambda: calls.append(1) or value


def test_second_load_of_the_same_files_reads_the_cache(cache_dir, weights):
    calls, compute = counting(b"12345678")
    assert cached_fingerprint([weights], {"dtype": "float32"}, compute) == b"12345678"
    assert cached_fingerprint([weights], {"dtype": "float32"}, compute) == b"12345678"
    assert len(calls) == 1 and cache_file().parent == cache_dir


def test_changed_files_or_settings_are_hashed_again(cache_dir, weights):
    calls, compute = counting(b"12345678")
    cached_fingerprint([weights], {"dtype": "float32"}, compute)
    cached_fingerprint([weights], {"dtype": "float16"}, compute)  # another dtype: other tensors
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    cached_fingerprint([weights], {"dtype": "float32"}, compute)
    assert len(calls) == 3
    assert "header" in file_identity(weights)


def test_a_corrupt_cache_is_recomputed_not_an_error(cache_dir, weights):
    cache_dir.mkdir()
    cache_file().write_text("{not json")
    calls, compute = counting(b"abcdefgh")
    assert cached_fingerprint([weights], {}, compute) == b"abcdefgh" and len(calls) == 1


def test_stable_diffusion_fingerprint_from_the_cache_equals_the_full_digest(cache_dir, tmp_path):
    model = save_tiny_sd_pipeline(tmp_path / "sd", prediction_type="epsilon")
    first = StableDiffusionAdapter.from_pretrained(model)
    assert first.model_files and first.fingerprint() == first.weights_fingerprint()
    second = StableDiffusionAdapter.from_pretrained(model)
    second.weights_fingerprint = lambda: pytest.fail("the second load must not hash the weights")
    assert second.fingerprint() == first.fingerprint()
