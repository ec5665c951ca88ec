"""`cod-diffc backbones`: the backbone names `--backbone` accepts (built-in and installed plugins), each built-in one
with the model it loads without `--model`."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("backbones", help="list the backbones every codec runs on (built-in and plugins)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.backbones import available_backbones
    from cod_diffc.backbones.registry import BUILTIN_DEFAULT_MODELS

    names = available_backbones()
    width = max(len(name) for name in names)
    for name in names:
        default = BUILTIN_DEFAULT_MODELS.get(name)
        print(f"{name:<{width}}  default model: {default}" if default else name)
    return 0
