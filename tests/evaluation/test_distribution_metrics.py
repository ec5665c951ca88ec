"""FID and KID over overlapping patches (the CoD / DDCM protocol), checked against the closed form with a stand-in
feature extractor built here (the Inception weights are not needed)."""

import json

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch

from cod_diffc.cli import main
from cod_diffc.evaluation import distribution_metrics
from cod_diffc.evaluation.distribution_metrics import (
    PATCH_SIZE,
    PATCH_STRIDE,
    PatchDistributionMetrics,
    image_patches,
    load_distribution_metrics,
)

from test_evaluate import FAST, make_images


FEATURE_DIM = 4


class LookupFeatures(torch.nn.Module):
    """Features read from a table by the index each patch carries in its first two pixels (red channel, base 256):
    the test chooses every patch's features exactly."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)
        self.calls = 0

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        index = patches[:, 0, 0, 0].long() * 256 + patches[:, 0, 0, 1].long()
        return self.table[index.clamp(max=len(self.table) - 1)]


def carrying(indices) -> list[np.ndarray]:
    """One 64 x 64 image (exactly one patch) per index, the index in its first two pixels."""
    images = []
    for index in indices:
        image = np.zeros((PATCH_SIZE, PATCH_SIZE, 3), dtype=np.uint8)
        image[0, 0, 0], image[0, 1, 0] = divmod(int(index), 256)
        images.append(image)
    return images


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    mean_real, mean_fake = real.mean(0), fake.mean(0)
    cov_real, cov_fake = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(cov_real @ cov_fake).real
    return float(((mean_real - mean_fake) ** 2).sum() + np.trace(cov_real + cov_fake - 2 * root))


def test_patches_overlap_by_half_and_cover_the_image():
    image = np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    patches = image_patches(image)
    assert patches.shape == (3 * 4, 3, PATCH_SIZE, PATCH_SIZE) and PATCH_STRIDE == PATCH_SIZE // 2
    assert torch.equal(patches[6], torch.from_numpy(image[32:96, 64:128]).permute(2, 0, 1))  # row 1, column 2
    assert len(image_patches(image[:40])) == 0


def test_fid_and_kid_of_two_gaussian_feature_sets_are_the_closed_form():
    rng = np.random.default_rng(0)
    num = 600
    real = rng.standard_normal((num, FEATURE_DIM))
    mixing = np.array([[1.5, 0.2, 0, 0], [0, 0.7, 0.1, 0], [0, 0, 1.0, 0.3], [0, 0, 0, 0.5]])
    fake = rng.standard_normal((num, FEATURE_DIM)) @ mixing + np.array([0.5, -0.3, 0.0, 0.2])
    table = torch.from_numpy(np.concatenate([real, fake])).float()
    feature = LookupFeatures(table)
    metrics = PatchDistributionMetrics(["fid", "kid"], feature=feature)
    calls_at_setup = feature.calls  # torchmetrics probes the extractor when built
    metrics.add_originals(carrying(range(num)))
    scores = metrics.score(carrying(range(num, 2 * num)))
    assert feature.calls - calls_at_setup == 2 * num  # one pass per patch batch (one image each), shared by both
    assert scores["fid"] == pytest.approx(frechet_distance(real, fake), rel=1e-3)
    # The population value, which the sample estimate approaches: |mu|^2 + tr(I + S - 2 S^(1/2)), S = A^T A.
    cov = mixing.T @ mixing
    population = 0.5**2 + 0.3**2 + 0.2**2 + np.trace(np.eye(4) + cov - 2 * scipy.linalg.sqrtm(cov).real)
    assert scores["fid"] == pytest.approx(population, rel=0.15)
    assert scores["kid"] > 0.05
    # The originals' statistics stay: the same set again scores ~0 (KID is an unbiased MMD estimate: near 0, either
    # sign, far below the other set's).
    again = metrics.score(carrying(range(num)))
    assert abs(again["fid"]) < 1e-3 and abs(again["kid"]) < scores["kid"] / 5


def test_without_the_inception_weights_the_metrics_say_why(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    metrics, notes = load_distribution_metrics(["fid", "kid"])
    assert metrics is None
    assert notes == [
        f"{name}: skipped, the Inception weights are not installed ({tmp_path}/checkpoints/"
        f"{distribution_metrics.INCEPTION_WEIGHTS})"
        for name in ("fid", "kid")
    ]
    assert load_distribution_metrics([]) == (None, [])


class MeanColours(torch.nn.Module):
    """A small real extractor: the mean colour of each quarter of a patch (12 features)."""

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(patches.float() / 255, 2).flatten(1)


def test_evaluate_reports_patch_fid_and_kid(tmp_path, monkeypatch, capsys):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    rng = np.random.default_rng(1)
    for index in range(2):
        smooth = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((16, 16, 1))).astype(np.uint8)  # 128 x 128
        PIL.Image.fromarray(smooth).save(dataset / f"image{index}.png")
    real_loader = distribution_metrics.load_distribution_metrics
    monkeypatch.setattr(
        distribution_metrics,
        "load_distribution_metrics",
        lambda names, **kwargs: real_loader(names, feature=MeanColours(), **kwargs),
    )
    argv = ["evaluate", str(dataset), "-o", str(tmp_path / "out"), "--bpp", "0.1", "0.3", "--baseline", "webp"]
    argv += ["--backbone", "gaussian", "--option", "std=0.5", "--option", "patch_size=4", "--metrics", "fid", "kid"]
    assert main([*argv, *FAST]) == 0
    for name in ("webp", "cod_diffc-gaussian"):
        result = json.loads((tmp_path / "out" / f"{name}.json").read_text())
        assert len(result["results"]["fid"]) == len(result["results"]["kid"]) == 2
        assert all(value >= 0 for value in result["results"]["fid"])
        assert result["distribution_metrics"] == {"patch_size": 64, "patch_stride": 32, "original_patches": 18}
    header = next(
        line for line in (tmp_path / "out" / "report.md").read_text().splitlines() if line.startswith("| bpp")
    )
    assert "| fid | kid |" in header
    assert "FID/KID: not computed" not in capsys.readouterr().out


def test_images_smaller_than_a_patch_get_a_note_and_the_rest_of_the_run(tmp_path, monkeypatch, capsys):
    real_loader = distribution_metrics.load_distribution_metrics
    monkeypatch.setattr(
        distribution_metrics,
        "load_distribution_metrics",
        lambda names, **kwargs: real_loader(names, feature=MeanColours(), **kwargs),
    )
    argv = ["evaluate", str(make_images(tmp_path / "dataset", 1)), "-o", str(tmp_path / "out"), "--bpp", "0.4"]
    argv += ["--baseline", "webp", "--metrics", "fid", "--backbone", "gaussian", "--option", "patch_size=4"]
    assert main([*argv, *FAST]) == 0  # 32 x 32 images: no 64 x 64 patch
    assert "fid/kid: skipped, FID/KID need at least 2 patches of 64 px" in capsys.readouterr().out
    assert "fid" not in json.loads((tmp_path / "out" / "webp.json").read_text())["results"]
    assert (tmp_path / "out" / "index.html").is_file()
