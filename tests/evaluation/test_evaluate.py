"""`cod-diffc evaluate` end to end on tiny images, two tiny backbones and a baseline, plus the sweep's guarantees."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest

from cod_diffc.backbones import GaussianBackbone
from cod_diffc.cli import main
from cod_diffc.codecs import stream_codec
from cod_diffc.diffc import DiffCSchedule
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import DiffCCodec
from cod_diffc.evaluation.sweep import DiffusionCodecMethod, evaluate_images, list_images, record_path

from tiny_models import save_tiny_cod


TARGET_BPPS = [0.35, 0.6, 1.2, 2.5]  # the smallest above a 32x32 condition-only stream (39 bytes, 0.305 bpp)
IMAGE_SIZE = 32
FAST = ["--steps", "6", "--coder", "plain", "--chunk-bits", "8", "--denoise-steps", "2", "--no-progress"]


def make_images(folder, count, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        rng = np.random.default_rng(index)
        y, x = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
        smooth = np.stack([x * 6, y * 7, (x + y) * 3], axis=-1) + rng.integers(0, 60, (IMAGE_SIZE, IMAGE_SIZE, 3))
        PIL.Image.fromarray(smooth.clip(0, 255).astype(np.uint8)).save(folder / f"image{index}.png")
    return folder


class CountingGaussianBackbone(GaussianBackbone):
    """The Gaussian backbone, counting how many times DiffC encodes an image with it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encodes = 0

    def encode_image(self, image):
        self.encodes += 1
        return super().encode_image(image)


def fast_diffc() -> DiffCCodec:
    return DiffCCodec(schedule=DiffCSchedule(num_steps=6), simulator=ChunkedPFRSimulator(max_chunk_bits=8))


def gaussian_method(adapter, seed=0):
    return DiffusionCodecMethod("gaussian", fast_diffc(), adapter, seed=seed, num_denoise_steps=2)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    dataset = make_images(root / "dataset", 2)
    model = save_tiny_cod(root / "cod_model", seed=0)
    output = root / "out"
    argv = ["evaluate", str(dataset), "-o", str(output), "--bpp", *map(str, TARGET_BPPS)]
    argv += ["--backbone", "gaussian", "--option", "std=0.5", "--option", "patch_size=4"]
    argv += ["--backbone", "cod", "--model", str(model), "--baseline", "webp", "webp-down", "--decode", "flow", "mean"]
    argv += ["--anchor", "cod_diffc-gaussian", *FAST]
    assert main(argv) == 0
    return output


def read_rows(output):
    with open(output / "per_image.csv", newline="") as file:
        return list(csv.DictReader(file))


METHODS = ("cod_diffc-gaussian", "cod_diffc-gaussian-mean", "cod_diffc-cod", "cod_diffc-cod-mean", "webp", "webp-down")
CLASSICAL = ("webp", "webp-down")


def test_every_method_writes_compressai_results_with_actual_bytes(sweep):
    for name in METHODS:
        result = json.loads((sweep / f"{name}.json").read_text())
        assert result["name"] == name
        assert "actual bytes" in result["description"]
        for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time"):
            assert len(result["results"][key]) == len(TARGET_BPPS)
            assert all(isinstance(value, float) and np.isfinite(value) for value in result["results"][key])
        assert all(0 < value <= 1 for value in result["results"]["ms-ssim-rgb"])


def test_compressai_plot_reads_the_results(sweep):
    from compressai.utils.plot.__main__ import parse_json_file

    curve = parse_json_file(sweep / "cod_diffc-cod.json", "psnr")
    assert curve["name"] == "cod_diffc-cod"
    assert curve["xs"] == json.loads((sweep / "cod_diffc-cod.json").read_text())["results"]["bpp"]


def test_bpp_counts_the_bytes_of_the_files_written(sweep):
    rows = read_rows(sweep)
    assert len(rows) == len(METHODS) * 2 * len(TARGET_BPPS)
    for row in rows:
        suffix = f".{row['method']}" if row["method"] in CLASSICAL else ".cdc"
        stream = sweep / "streams" / row["method"] / f"{row['image']}_bpp{float(row['target_bpp']):g}{suffix}"
        assert stream.stat().st_size == int(row["bytes"])
        assert float(row["bpp"]) == pytest.approx(8 * int(row["bytes"]) / IMAGE_SIZE**2, rel=1e-12)
    for name in METHODS:
        mean_bpp = json.loads((sweep / f"{name}.json").read_text())["results"]["bpp"]
        for index, target in enumerate(TARGET_BPPS):
            bpps = [float(row["bpp"]) for row in rows if row["method"] == name and float(row["target_bpp"]) == target]
            assert mean_bpp[index] == pytest.approx(np.mean(bpps), rel=1e-12)


def test_diffc_points_fit_their_targets(sweep):
    for row in read_rows(sweep):
        if row["method"] not in CLASSICAL:
            assert float(row["bpp"]) <= float(row["target_bpp"])


def test_flow_and_mean_decodes_read_the_same_streams(sweep):
    for backbone in ("gaussian", "cod"):
        flow, mean = sweep / "streams" / f"cod_diffc-{backbone}", sweep / "streams" / f"cod_diffc-{backbone}-mean"
        for stream in flow.iterdir():
            assert (mean / stream.name).read_bytes() == stream.read_bytes()
    settings = {row["method"]: row["setting"] for row in read_rows(sweep) if row["image"] == "image0"}
    assert settings["cod_diffc-cod"] == settings["cod_diffc-cod-mean"]


def test_methods_that_differ_only_in_the_decode_share_one_encode_and_replay(tmp_path, monkeypatch):
    import cod_diffc.diffc.codec as codec

    replays = []
    decode = codec.decode
    monkeypatch.setattr(codec, "decode", lambda *args, **kwargs: replays.append(1) or decode(*args, **kwargs))
    images = list_images(make_images(tmp_path / "dataset", 2))
    adapter = CountingGaussianBackbone(std=0.5, patch_size=4)
    flow = gaussian_method(adapter)
    mean = DiffusionCodecMethod("gaussian-mean", fast_diffc(), adapter, decode="mean")
    assert evaluate_images(images, [flow, mean], TARGET_BPPS, tmp_path / "out", progress=False) == 4
    assert adapter.encodes == 2
    assert len(replays) == 2 * len(TARGET_BPPS)  # one replay per image and cut, shared by both decodes


def test_report_plot_and_crops(sweep):
    for name in ("rd.png", "crops_image0_bpp1.2.png"):
        data = (sweep / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with PIL.Image.open(sweep / name) as image:
            image.verify()
    report = (sweep / "report.md").read_text()
    assert "| cod_diffc-gaussian | +0.00 % | +0.00 dB |" in report  # the anchor against itself
    assert "| cod_diffc-cod |" in report and "| webp |" in report
    assert "lpips" in report and "FID/KID: not computed" in report


def test_one_encode_per_image_serves_every_rate(tmp_path):
    images = list_images(make_images(tmp_path / "dataset", 3))
    adapter = CountingGaussianBackbone(std=0.5, patch_size=4)
    assert evaluate_images(images, [gaussian_method(adapter)], TARGET_BPPS, tmp_path / "out", progress=False) == 3
    assert adapter.encodes == 3
    record = json.loads(record_path(tmp_path / "out", "gaussian", "image0").read_text())
    assert [point["target_bpp"] for point in record["points"]] == TARGET_BPPS
    assert len({point["setting"] for point in record["points"]}) == len(TARGET_BPPS)


def test_resume_skips_finished_images_and_codes_new_ones(tmp_path):
    dataset = make_images(tmp_path / "dataset", 2)
    adapter = CountingGaussianBackbone(std=0.5, patch_size=4)
    method = gaussian_method(adapter)
    evaluate_images(list_images(dataset), [method], TARGET_BPPS, tmp_path / "out", progress=False)
    finished = record_path(tmp_path / "out", "gaussian", "image0")
    stamp = finished.stat().st_mtime_ns

    make_images(dataset, 1, start=2)
    coded = evaluate_images(list_images(dataset), [method], TARGET_BPPS, tmp_path / "out", resume=True, progress=False)
    assert (coded, adapter.encodes) == (1, 3)
    assert finished.stat().st_mtime_ns == stamp
    # Other target rates are other work: nothing is skipped.
    coded = evaluate_images(list_images(dataset), [method], [0.6, 2.5], tmp_path / "out", resume=True, progress=False)
    assert coded == 3
    # So are other settings of the method, and metrics the records lack.
    other_seed = gaussian_method(adapter, seed=1)
    coded = evaluate_images(
        list_images(dataset), [other_seed], [0.6, 2.5], tmp_path / "out", resume=True, progress=False
    )
    assert coded == 3
    coded = evaluate_images(
        list_images(dataset),
        [other_seed],
        [0.6, 2.5],
        tmp_path / "out",
        resume=True,
        perceptual_metrics={"mean-abs": lambda a, b: float((a - b).abs().mean())},
        progress=False,
    )
    assert coded == 3


def test_shards_together_code_every_image_once(tmp_path):
    images = list_images(make_images(tmp_path / "dataset", 3))
    adapters = [CountingGaussianBackbone(std=0.5, patch_size=4) for _ in range(2)]
    for rank, adapter in enumerate(adapters):
        evaluate_images(
            images,
            [gaussian_method(adapter)],
            TARGET_BPPS,
            tmp_path / "out",
            process_index=rank,
            num_processes=2,
            progress=False,
        )
    assert [adapter.encodes for adapter in adapters] == [2, 1]
    assert all(record_path(tmp_path / "out", "gaussian", path.stem).is_file() for path in images)


def test_bad_requests_fail_with_a_message(tmp_path, capsys):
    dataset = make_images(tmp_path / "dataset", 1)
    out = str(tmp_path / "out")
    assert main(["evaluate", str(dataset), "-o", out, "--bpp", "1", "--baseline", "nope"]) == 2
    assert "unknown baseline codec(s) nope" in capsys.readouterr().err
    assert main(["evaluate", str(dataset), "-o", out, "--bpp", "1"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
    assert (
        main(["evaluate", str(dataset), "-o", out, "--bpp", "1", "--backbone", "gaussian", "--backbone", "gaussian"])
        == 2
    )
    assert "--label" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), "-o", out, "--bpp", "1", "--baseline", "jpeg"]) == 2
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(dataset), "-o", out, "--bpp", "1", "--model", "m"])  # --model before any --backbone


def test_accelerate_launch_shares_the_images_and_merges_the_results(tmp_path):
    dataset = make_images(tmp_path / "dataset", 3)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "cod_diffc"]
    argv = ["evaluate", str(dataset), "-o", str(tmp_path / "out"), "--bpp", *map(str, TARGET_BPPS)]
    argv += ["--backbone", "gaussian", "--option", "std=0.5", "--option", "patch_size=4", *FAST]
    # One thread per process, and gloo on the CPU even where a GPU exists.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    result = subprocess.run(launch + argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # The main process codes images 0 and 2, the other image 1; the main process merges all three.
    assert "3 image(s), 2 (method, image) pair(s) coded by this process" in result.stdout
    rows = read_rows(tmp_path / "out")
    assert sorted({row["image"] for row in rows}) == ["image0", "image1", "image2"]
    assert len(json.loads((tmp_path / "out" / "cod_diffc-gaussian.json").read_text())["results"]["bpp"]) == 4


def test_codec_sweep_runs_every_codec_on_every_backbone(tmp_path, capsys):
    dataset = make_images(tmp_path / "dataset", 2)
    output = tmp_path / "out"
    argv = [
        "evaluate",
        str(dataset),
        "-o",
        str(output),
        "--bpp",
        "0.7",
        "2.5",
        "--codec",
        "diffc",
        "turbo-ddcm",
        "--backbone",
        "gaussian",
        "--option",
        "std=0.5",
        "--decode",
        "flow",
        "mean",
        *FAST,
    ]
    assert main(argv) == 0
    rows = read_rows(output)
    names = {row["method"] for row in rows}
    assert names == {
        "cod_diffc-gaussian",
        "cod_diffc-gaussian-mean",
        "turbo-ddcm-gaussian",
        "turbo-ddcm-gaussian-mean",
    }
    for row in rows:
        assert float(row["bpp"]) <= float(row["target_bpp"])
        stream = output / "streams" / row["method"] / f"{row['image']}_bpp{float(row['target_bpp']):g}.cdc"
        codec = "turbo-ddcm" if row["method"].startswith("turbo") else "diffc"
        assert stream_codec(stream.read_bytes()) == codec
    turbo = {
        (row["image"], row["target_bpp"], row["method"]): row["bytes"] for row in rows if "turbo" in row["method"]
    }
    assert all(
        turbo[(image, target, "turbo-ddcm-gaussian")] == size  # flow and mean decode the same streams
        for (image, target, method), size in turbo.items()
    )
    assert (
        main(["evaluate", str(dataset), "-o", str(output), "--bpp", "1", "--codec", "jpeg", "--backbone", "gaussian"])
        == 2
    )
    assert "unknown codec 'jpeg'" in capsys.readouterr().err


def test_without_matplotlib_the_report_says_so_and_has_no_pictures(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # not installed
    dataset = make_images(tmp_path / "dataset", 1)
    argv = ["evaluate", str(dataset), "-o", str(tmp_path / "out"), "--bpp", "0.35", "1.2", "--baseline", "webp"]
    argv += ["--backbone", "gaussian", "--option", "std=0.5", "--option", "patch_size=4", *FAST]
    assert main(argv) == 0
    assert not list((tmp_path / "out").glob("*.png"))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "![" not in report and 'pip install "cod-diffc[plots]"' in report
    assert "note: no RD plot or crops: matplotlib is not installed" in capsys.readouterr().out
