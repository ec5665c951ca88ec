"""`cod-diffc compress`: images → streams of any codec (DiffC: one encode per image for every requested rate)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cod_diffc.cli._common import add_coder_arguments, add_runtime_arguments, int_in_range, output_paths, parse_options


STREAM_SUFFIX = ".cdc"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="compress images with a diffusion codec (DiffC, Turbo-DDCM, DDCM) on a diffusion backbone",
        description=(
            "Compress images with a zero-shot diffusion codec. DiffC (the default): one encode per image serves "
            "every requested rate (the stream is progressive). Any image size: sides the backbone cannot take are "
            "mirror-padded and cropped on decode."
        ),
    )
    parser.add_argument("--codec", default="diffc", help="codec name (see `cod-diffc codecs`; default diffc)")
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
        "--stop-step", type=int, nargs="+", metavar="N", help="cut after N DiffC steps (0: condition only; DiffC)"
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
    """The `encode` keyword and the file-name labels of the requested cuts."""
    if args.stop_step is not None:
        if any(step < 0 for step in args.stop_step):
            raise ValueError("--stop-step must be >= 0")
        return {"stop_step": args.stop_step}, [f"_step{step}" for step in args.stop_step]
    targets = args.bpp_list if args.bpp_list is not None else ([args.bpp] if args.bpp is not None else None)
    if targets is None:
        return {}, ["_full"]
    if any(not target > 0 for target in targets):
        raise ValueError("target bpp must be > 0")
    return {"target_bpp": targets}, [f"_bpp{target:g}" for target in targets]


def _codec_settings(args: argparse.Namespace) -> dict:
    """The settings of a codec other than DiffC that the command line sets."""
    if args.stop_step is not None:
        raise ValueError(
            f"--stop-step cuts DiffC's progressive stream; codec {args.codec!r} takes --bpp or --bpp-list"
        )
    if args.bpp is None and args.bpp_list is None:
        raise ValueError(f"codec {args.codec!r} needs a target rate: --bpp or --bpp-list")
    settings = {
        "num_steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "denoise_guidance_scale": args.denoise_guidance_scale,
    }
    return {key: value for key, value in settings.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    from cod_diffc.backbones import available_backbones, load_backbone
    from cod_diffc.cli._common import build_simulator, quiet_model_loading, torch_dtype
    from cod_diffc.codecs import available_codecs, load_codec
    from cod_diffc.image_files import limit_long_side, load_image

    if args.backbone not in available_backbones():
        raise ValueError(f"unknown backbone {args.backbone!r}; available: {', '.join(available_backbones())}")
    if args.codec not in available_codecs():
        raise ValueError(f"unknown codec {args.codec!r}; available: {', '.join(available_codecs())}")
    codec = None if args.codec == "diffc" else load_codec(args.codec, **_codec_settings(args))
    simulator = build_simulator(args.coder, args.chunk_bits) if codec is None else None  # checked before work
    rate, labels = _rate_requests(args)
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
        if codec is None:
            _compress_diffc(args, adapter, simulator, images[path], rate, labels, path, destinations)
        else:
            _compress_at_targets(args, codec, adapter, images[path], rate["target_bpp"], labels, path, destinations)
    return 0


def _progress(args: argparse.Namespace):
    from tqdm.auto import tqdm

    return tqdm(args.images, desc="images", disable=args.no_progress or len(args.images) == 1)


def _report(path: Path, destination: Path, stream: bytes, bpp: float, detail: str, seconds: float) -> None:
    print(f"{path} -> {destination}: {len(stream)} bytes, {bpp:.4f} bpp, {detail}, {seconds:.1f} s")


def _compress_at_targets(args, codec, adapter, image, targets, labels, path, destinations) -> None:
    """One encode per target rate (codecs whose streams are not progressive); every file is written once all are
    made, so a target that fails leaves none behind."""
    import torch

    from cod_diffc.image_files import atomic_write

    height, width = image.shape[-2:]
    streams = []
    for target in targets:
        start = time.perf_counter()
        stream = codec.compress(
            image.to(torch.float32), adapter, target_bpp=target, seed=args.seed, progress=not args.no_progress
        )
        streams.append((stream, time.perf_counter() - start))
    for label, (stream, seconds) in zip(labels, streams):
        destination = destinations[(path, label)]
        atomic_write(destination, stream)
        _report(path, destination, stream, 8 * len(stream) / (height * width), f"codec {codec.name}", seconds)


def _compress_diffc(args, adapter, simulator, image, rate, labels, path, destinations) -> None:
    """One DiffC encode for every requested cut."""
    import torch

    from cod_diffc.diffc import DiffCSchedule, encode
    from cod_diffc.image_files import atomic_write

    start = time.perf_counter()
    result = encode(
        image.to(torch.float32),
        adapter,
        schedule=DiffCSchedule(num_steps=args.steps) if args.steps is not None else None,
        seed=args.seed,
        simulator=simulator,
        guidance_scale=args.guidance_scale,
        denoise_guidance_scale=args.denoise_guidance_scale,
        progress=not args.no_progress,
        **rate,
    )
    seconds = time.perf_counter() - start
    for label, point in zip(labels, result.points):
        destination = destinations[(path, label)]
        atomic_write(destination, point.stream)
        _report(path, destination, point.stream, point.bpp, f"stop step {point.stop_step}", seconds)
