"""`cod-diffc codecs`: the codec names `--codec` accepts (built-in and installed plugins), one line each saying
whether the codec is progressive (one encode, several rates; `--stop-step`); with
`--channels`, DiffC's reverse channel coders (what `--coder` accepts)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("codecs", help="list the codecs (built-in and plugins)")
    parser.add_argument(
        "--channels", action="store_true", help="list DiffC's reverse channel coders (what --coder accepts) instead"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = channel_coder_rows() if args.channels else codec_rows()
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0


def codec_rows() -> list[tuple[str, str]]:
    from cod_diffc.codecs import available_codecs, get_codec_class
    from cod_diffc.codecs.registry import DEFAULT_CODEC

    rows = []
    for name in available_codecs():
        codec_class = get_codec_class(name)
        kind = "progressive" if codec_class.progressive else "one rate per stream"
        rows.append((name, f"{'(default) ' if name == DEFAULT_CODEC else ''}{kind}; {codec_class.summary}"))
    return rows


def channel_coder_rows() -> list[tuple[str, str]]:
    """Each coder's name (with its `--coder` short name) and the first line of its class docstring."""
    from cod_diffc.diffc.channel_registry import CODER_ALIASES, available_channels, get_channel_class

    short_names = {name: alias for alias, name in CODER_ALIASES.items()}
    rows = []
    for name in available_channels():
        label = f"{name} ({short_names[name]})" if name in short_names else name
        rows.append((label, (get_channel_class(name).__doc__ or "").strip().split("\n")[0]))
    return rows
