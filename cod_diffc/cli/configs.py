"""`cod-diffc configs`: the named CoD configurations."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("configs", help="list the named CoD configurations")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.pipelines.named_configs import NAMED_CONFIGS

    width = max(map(len, NAMED_CONFIGS))
    for name, config in NAMED_CONFIGS.items():
        print(f"{name:<{width}}  {config.description}")
    return 0
