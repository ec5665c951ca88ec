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


def run_example(source: str, folder) -> str:
    (folder / "example.py").write_text(source)
    completed = subprocess.run([sys.executable, "example.py"], cwd=folder, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_codec_example_runs(tmp_path):
    example = blocks("python")[0]
    assert re.fullmatch(r"\d+ bytes; torch.Size\(\[1, 3, 32, 48\]\)\n", run_example(example, tmp_path))


def test_progressive_codec_example_refines_with_every_step(tmp_path):
    progressive = blocks("python")[1]
    lines = run_example(progressive, tmp_path).splitlines()
    settings = [line.split()[0] for line in lines]
    sizes = [int(line.split()[1]) for line in lines]
    greys = [float(line.split()[-1]) for line in lines]
    assert settings == ["stop_step=1", "stop_step=4", "stop_step=8"]
    assert sizes[1] - sizes[0] == 3 and sizes[2] - sizes[1] == 4  # one byte a step
    errors = [abs(grey - 0.3) for grey in greys]
    assert errors == sorted(errors, reverse=True)  # closer with every cut
    assert abs(greys[-1] - 0.3) <= 2**-8


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
