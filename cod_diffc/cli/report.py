"""`cod-diffc report`: (re)write the comparison page of a finished `cod-diffc evaluate` folder, coding nothing."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write the comparison page (index.html) of an evaluate folder",
        description=(
            "Write DIR/index.html from a finished `cod-diffc evaluate` run: RD curves, BD table, a split viewer at "
            "equal bytes and grids of the reconstructions. Nothing is coded again."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="the output folder of `cod-diffc evaluate`")
    parser.add_argument("--anchor", help="method the BD table compares against (default: the run's anchor)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.evaluation.html_report import write_run_page

    page = write_run_page(args.run_dir, args.anchor)
    print(f"wrote {page}")
    return 0
