"""docs/rcc.md's channel-coder example works as written: it registers a coder and round-trips a stream with it."""

import re
import subprocess
import sys

from markdown_blocks import DOCS, fenced_blocks

from cod_diffc.diffc.channel_registry import ENTRY_POINT_GROUP


PAGE = DOCS / "rcc.md"


def blocks(language: str) -> list[str]:
    return fenced_blocks(PAGE, language)


def test_channel_coder_example_runs(tmp_path):
    (example,) = blocks("python")
    (tmp_path / "example.py").write_text(example)
    completed = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert re.fullmatch(r"\d+ bytes; \(1, 3, 16, 16\)\n", completed.stdout)


def test_entry_point_group_is_the_real_one():
    (toml,) = blocks("toml")
    assert f'[project.entry-points."{ENTRY_POINT_GROUP}"]' in toml
