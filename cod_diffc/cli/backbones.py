"""`cod-diffc backbones`: the backbone names `--backbone` accepts (built-in and installed plugins)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backbones", help="list the backbones every codec runs on (built-in and plugins)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.backbones import available_backbones

    for name in available_backbones():
        print(name)
    return 0
