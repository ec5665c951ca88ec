import json
import re

import pytest

from cod_diffc.cli import main


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "configs" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_configs_lists_every_named_configuration(capsys):
    from cod_diffc import NAMED_CONFIGS

    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMED_CONFIGS)


def test_demo_writes_streams_reconstructions_and_a_side_by_side_picture(tmp_path, capsys):
    import PIL.Image

    from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL

    assert (
        main(
            [
                "demo",
                "-o",
                str(tmp_path),
                "--size",
                "64",
                "--bpp",
                "0.01",
                "0.5",
                "--denoise-steps",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"{DEFAULT_EMBEDDED_MODEL} (embedded)" in out and "below the condition-only stream" in out and "PSNR" in out
    streams = sorted(tmp_path.glob("*.cdc"))
    assert [p.name for p in streams][0] == "condition_only.cdc" and len(streams) == 2
    for stream in streams:
        assert f"{stream.stat().st_size:>8}" in out
        assert PIL.Image.open(stream.with_suffix(".png")).size == (64, 64)
    assert PIL.Image.open(tmp_path / "side_by_side.png").size == (64 * 3, 64)
    page = (tmp_path / "index.html").read_text()  # the comparison page, linking the files above
    data = json.loads(re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1))
    rows = data["points"]["diffc on CoD"]["sample"]
    assert sorted(row["stream"] for row in rows) == [stream.name for stream in streams]
    assert all((tmp_path / row["png"]).is_file() for row in rows) and data["originals"]["sample"] == "original.png"
