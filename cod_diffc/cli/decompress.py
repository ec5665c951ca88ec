"""`cod-diffc decompress`: streams of any codec → PNG images (the codec and backbone are read from each stream)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cod_diffc.cli._common import add_runtime_arguments, int_in_range, output_paths


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decompress",
        help="decompress streams (any codec) into PNG images",
        description=(
            "Decompress streams; the codec and the backbone are read from each stream, the backbone's model from "
            "--model."
        ),
    )
    parser.add_argument("streams", nargs="+", type=Path, metavar="FILE", help="streams (.cdc)")
    parser.add_argument(
        "-o", "--output", required=True, help="output PNG, or directory for several (a trailing / names a directory)"
    )
    parser.add_argument("--model", help="the model the streams were made with (default: the backbone's default)")
    parser.add_argument(
        "--decode",
        choices=("flow", "mean"),
        default="flow",
        help="flow: probability-flow ODE with the stream's guidance (detail, realism; default); mean: one-step "
        "posterior mean without guidance (highest PSNR, blurrier, one network pass)",
    )
    parser.add_argument(
        "--denoise-steps", type=int_in_range(1), default=25, help="probability-flow ODE steps of --decode flow (25)"
    )
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backbone option")
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.backbones import load_backbone
    from cod_diffc.cli._common import parse_options, quiet_model_loading, torch_dtype
    from cod_diffc.codecs import codec_of_stream
    from cod_diffc.errors import StreamError
    from cod_diffc.image_files import save_image

    destinations = output_paths(args.streams, [""], args.output, ".png")
    streams = {}
    for path in args.streams:  # every stream is read and its header checked before any model loads
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        data = path.read_bytes()
        try:
            codec = codec_of_stream(data)
            backbone = codec.stream_backbone(data)
        except StreamError as error:
            raise StreamError(f"{path}: {error}") from None
        streams[path] = (data, codec, backbone)

    quiet_model_loading()
    adapters = {}
    for path, (data, codec, backbone) in streams.items():
        if backbone not in adapters:
            adapters[backbone] = load_backbone(
                backbone,
                args.model,
                device=args.device,
                dtype=torch_dtype(args.dtype),
                **parse_options(args.option, backbone),
            )
        start = time.perf_counter()
        try:
            image = codec.decompress(
                data,
                adapters[backbone],
                method=args.decode,
                num_denoise_steps=args.denoise_steps,
                progress=not args.no_progress,
            )
        except StreamError as error:
            raise StreamError(f"{path}: {error}") from None
        destination = destinations[(path, "")]
        save_image(destination, image)
        height, width = image.shape[-2:]
        print(
            f"{path} -> {destination}: {codec.name}, {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp, "
            f"{time.perf_counter() - start:.1f} s"
        )
    return 0
