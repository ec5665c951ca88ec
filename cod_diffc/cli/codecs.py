"""`cod-diffc codecs`: the codec names `--codec` accepts (built-in and installed plugins), one line each."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("codecs", help="list the codecs (built-in and plugins)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.codecs import available_codecs, get_codec_class

    names = available_codecs()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {get_codec_class(name).summary}")
    return 0
