"""`cod-diffc --help` and every subcommand's `--help` build their parsers without importing torch."""

import json
import subprocess
import sys

from cod_diffc.cli import build_parser


def test_no_help_imports_torch():
    subcommands = sorted(build_parser()._subparsers._group_actions[0].choices)
    script = f"""
import contextlib, io, json, sys
from cod_diffc.cli import main
imported = {{}}
for command in [[], *([name] for name in {subcommands!r})]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main([*command, "--help"])
    imported[" ".join(command) or "(none)"] = "torch" in sys.modules
print(json.dumps(imported))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    imported = json.loads(result.stdout)
    assert len(imported) == len(subcommands) + 1 and "compress" in imported
    assert not any(imported.values()), f"torch imported by: {[name for name, value in imported.items() if value]}"
