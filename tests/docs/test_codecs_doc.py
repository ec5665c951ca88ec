"""docs/codecs.md works as written: its codec example registers a codec and round-trips through the dispatching
`decompress`, and the commands it shows exist."""

import re
import subprocess
import sys

import pytest
from markdown_blocks import DOCS, fenced_blocks

from cod_diffc.codecs.registry import ENTRY_POINT_GROUP


PAGE = DOCS / "codecs.md"


def blocks(language: str) -> list[str]:
    return fenced_blocks(PAGE, language)


def test_codec_example_runs(tmp_path):
    (example,) = blocks("python")
    (tmp_path / "example.py").write_text(example)
    completed = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert re.fullmatch(r"\d+ bytes; torch.Size\(\[1, 3, 32, 48\]\)\n", completed.stdout)


def test_entry_point_group_and_commands_are_the_real_ones(capsys):
    from cod_diffc.cli import main

    (toml,) = blocks("toml")
    assert f'[project.entry-points."{ENTRY_POINT_GROUP}"]' in toml
    commands = [line.split("#")[0].split() for line in blocks("bash")[0].splitlines()]
    assert [command[:2] for command in commands] == [
        ["cod-diffc", name] for name in ("codecs", "compress", "decompress", "evaluate")
    ]
    assert main(["codecs"]) == 0 and "turbo-ddcm" in capsys.readouterr().out
    for command in commands[1:]:
        with pytest.raises(SystemExit) as exit_info:  # the options the page uses parse (then --help exits)
            main([*command[1:], "--help"])
        assert exit_info.value.code == 0
