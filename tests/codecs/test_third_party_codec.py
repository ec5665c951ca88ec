"""A progressive codec installed from another package (tests/fixtures/third_party_plugins/toy_pyramid_codec.py)
goes through the command line and the evaluation with no edit of the library."""

import csv
import json

import numpy as np
import PIL.Image
import pytest

from cod_diffc.cli import main
from cod_diffc.codecs import stream_codec


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    PIL.Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(path)
    return path


GAUSSIAN = ["--backbone", "gaussian", "--no-progress"]


def test_it_is_listed_as_progressive(installed_plugin, capsys):
    assert main(["codecs"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "progressive; mean colours of ever finer grids" in rows["toy-pyramid"]


def test_bpp_list_and_stop_steps_come_from_one_encode_and_decompress(installed_plugin, photo, tmp_path, capsys):
    out = tmp_path / "rates"
    argv = ["compress", str(photo), "--codec", "toy-pyramid", "--bpp-list", "0.5", "2", "-o", f"{out}/", *GAUSSIAN]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # level k costs 3 * 4**k bytes after the container's header: at 32x48 pixels 0.5 bpp (96 bytes) holds levels
    # 0-1, 2 bpp (384 bytes) all four
    assert "codec toy-pyramid, stop_step=2" in printed and "codec toy-pyramid, stop_step=4" in printed
    streams = sorted(out.glob("*.cdc"))
    assert [path.name for path in streams] == ["photo_bpp0.5.cdc", "photo_bpp2.cdc"]
    assert all(stream_codec(path.read_bytes()) == "toy-pyramid" for path in streams)
    assert (
        main(
            [
                "compress",
                str(photo),
                "--codec",
                "toy-pyramid",
                "--stop-step",
                "1",
                "-o",
                f"{out}/photo_step1.cdc",
                *GAUSSIAN,
            ]
        )
        == 0
    )
    for path in [*streams, out / "photo_step1.cdc"]:
        png = path.with_suffix(".png")
        assert main(["decompress", str(path), "-o", str(png), "--no-progress"]) == 0
        assert PIL.Image.open(png).size == (48, 32)
    one_level = np.asarray(PIL.Image.open(out / "photo_step1.png"))
    assert (one_level == one_level[0, 0]).all()  # the first level is one mean colour


def test_evaluate_sweeps_it_by_name(installed_plugin, photo, tmp_path):
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    photo.rename(dataset / "photo.png")
    argv = ["evaluate", str(dataset), "-o", str(tmp_path / "out"), "--bpp", "0.5", "2", "--codec", "toy-pyramid"]
    assert main([*argv, *GAUSSIAN[:2], "--option", "std=0.5", "--no-progress"]) == 0
    with open(tmp_path / "out" / "per_image.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(row["method"], row["setting"]) for row in rows] == [
        ("toy-pyramid-gaussian", "stop_step=2"),
        ("toy-pyramid-gaussian", "stop_step=4"),
    ]
    result = json.loads((tmp_path / "out" / "toy-pyramid-gaussian.json").read_text())
    assert "one encode per image for all rates" in result["description"]
    times = result["results"]["encoding_time"]
    assert times[0] == times[1]  # one encode, whose time both points report
