"""`cod-diffc compress`: images → streams of any codec of the registry, through the `Codec` interface only (a
progressive codec makes every requested rate from one encode per image)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cod_diffc.cli._common import (
    add_coder_arguments,
    add_runtime_arguments,
    codec_settings,
    int_in_range,
    output_paths,
    parse_options,
)


STREAM_SUFFIX = ".cdc"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="compress images with a diffusion codec (DiffC, Turbo-DDCM, DDCM) on a diffusion backbone",
        description=(
            "Compress images with a zero-shot diffusion codec. A progressive codec (see `cod-diffc codecs`) makes "
            "every requested rate from one encode per image and can cut after a number of coded steps (--stop-step). "
            "Any image size: sides the backbone cannot take are mirror-padded and cropped on decode."
        ),
    )
    parser.add_argument("--codec", help="codec name (see `cod-diffc codecs`, which marks the default)")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG/JPEG/WebP/... images")
    parser.add_argument(
        "-o", "--output", required=True, help="output file, or directory for several (a trailing / names a directory)"
    )
    parser.add_argument("--backbone", default="cod", help="backbone name (see `cod-diffc backbones`; default cod)")
    parser.add_argument("--model", help="model directory or hub id (default: the backbone's default model)")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--bpp", type=float, help="target bits per pixel (whole file)")
    rate.add_argument("--bpp-list", type=float, nargs="+", metavar="BPP", help="several target rates at once")
    rate.add_argument(
        "--stop-step",
        type=int,
        nargs="+",
        metavar="N",
        help="cut after N coded steps (0: condition only; progressive codecs)",
    )
    parser.add_argument("--steps", type=int_in_range(1), default=None, help="schedule length (default: the codec's)")
    add_coder_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared randomness, stored in the stream")
    parser.add_argument("--guidance-scale", type=float, default=None, help="guidance of the coded steps")
    parser.add_argument("--denoise-guidance-scale", type=float, default=None, help="guidance the decoder uses")
    parser.add_argument(
        "--max-side",
        type=int_in_range(1),
        default=None,
        help="downscale (Lanczos) images whose long side exceeds this many pixels before coding; the stream then "
        "decodes to the downscaled size (for images too large for the device's memory)",
    )
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="backbone option")
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)


def _rate_requests(args: argparse.Namespace) -> tuple[dict, list[str]]:
    """The `compress_many` keywords and the file-name labels of the requested streams."""
    if args.stop_step is not None:
        if any(step < 0 for step in args.stop_step):
            raise ValueError("--stop-step must be >= 0")
        return {"stop_steps": args.stop_step}, [f"_step{step}" for step in args.stop_step]
    targets = args.bpp_list if args.bpp_list is not None else ([args.bpp] if args.bpp is not None else None)
    if targets is None:
        return {}, ["_full"]
    if any(not target > 0 for target in targets):
        raise ValueError("target bpp must be > 0")
    return {"target_bpps": targets}, [f"_bpp{target:g}" for target in targets]


def run(args: argparse.Namespace) -> int:
    from cod_diffc.backbones import available_backbones, load_backbone
    from cod_diffc.cli._common import quiet_model_loading, torch_dtype
    from cod_diffc.codecs import available_codecs, get_codec_class
    from cod_diffc.codecs.registry import DEFAULT_CODEC
    from cod_diffc.image_files import limit_long_side, load_image

    if args.backbone not in available_backbones():
        raise ValueError(f"unknown backbone {args.backbone!r}; available: {', '.join(available_backbones())}")
    args.codec = args.codec or DEFAULT_CODEC
    if args.codec not in available_codecs():
        raise ValueError(f"unknown codec {args.codec!r}; available: {', '.join(available_codecs())}")
    codec = get_codec_class(args.codec).from_settings(**codec_settings(args))  # checked before work
    rate, labels = _rate_requests(args)
    if not codec.progressive and "target_bpps" not in rate:
        raise ValueError(f"codec {args.codec!r} is not progressive: give a target rate (--bpp or --bpp-list)")
    if len(labels) == 1:
        labels = [""]
    destinations = output_paths(args.images, labels, args.output, STREAM_SUFFIX)
    images = {path: limit_long_side(load_image(path), args.max_side) for path in args.images}  # checked before work

    quiet_model_loading()
    adapter = load_backbone(
        args.backbone,
        args.model,
        device=args.device,
        dtype=torch_dtype(args.dtype),
        **parse_options(args.option, args.backbone),
    )
    for path in _progress(args):
        _compress(args, codec, adapter, images[path], rate, labels, path, destinations)
    return 0


def _progress(args: argparse.Namespace):
    from tqdm.auto import tqdm

    return tqdm(args.images, desc="images", disable=args.no_progress or len(args.images) == 1)


def _compress(args, codec, adapter, image, rate, labels, path, destinations) -> None:
    """Every requested stream of one image; the files are written once all are made, so a request that fails leaves
    none behind."""
    import torch

    from cod_diffc.image_files import atomic_write

    height, width = image.shape[-2:]
    coded = codec.compress_many(
        image.to(torch.float32), adapter, seed=args.seed, progress=not args.no_progress, **rate
    )
    for label, point in zip(labels, coded):
        destination = destinations[(path, label)]
        atomic_write(destination, point.stream)
        bpp = 8 * len(point.stream) / (height * width)
        print(
            f"{path} -> {destination}: {len(point.stream)} bytes, {bpp:.4f} bpp, codec {codec.name}, "
            f"{point.setting}, {point.encoding_time:.1f} s"
        )
