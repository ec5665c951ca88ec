"""The `cod-diffc` command line: one parser, one module per subcommand.

Every public module of this package is a subcommand: it exposes `add_parser(subparsers)`, which adds its parser and
sets `func` on it, and imports anything heavy inside `func` so that `cod-diffc --help` stays fast. Private modules
(`_name.py`) hold what subcommands share. Errors the user can fix (bad input, wrong model, corrupt stream) are one
line on stderr and a non-zero exit; `--verbose` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import traceback
from collections.abc import Sequence


EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cod-diffc",
        description="CoD, the compression-oriented diffusion model, and the DiffC zero-shot codec.",
    )
    parser.add_argument("--verbose", action="store_true", help="show tracebacks and debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{module.name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line with `argv` (defaults to `sys.argv[1:]`) and returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command line as given, for records of the run
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, ImportError) as error:  # OSError: missing inputs, full disks, unwritable paths
        if args.verbose:
            traceback.print_exc()
        print(f"cod-diffc {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"cod-diffc {args.command}: interrupted", file=sys.stderr)
        return 130
