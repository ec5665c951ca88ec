"""`cod-diffc demo`: the shipped sample image through the default codec (DiffC) on CoD at a few rates, with a
side-by-side picture."""

from __future__ import annotations

import argparse
import importlib.resources
import time
from pathlib import Path

from cod_diffc.cli._common import add_coder_arguments, add_runtime_arguments, codec_settings, int_in_range


DEFAULT_RATES = (0.02, 0.05, 0.1)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="compress and decompress the sample image at a few rates with the embedded CoD model",
        description=(
            "Compress the sample image that ships with the package (or --image) with the default codec on CoD at a few "
            "rates and "
            "the condition alone, decompress every stream, and write the reconstructions, a side-by-side PNG and a "
            "table of bytes, bpp and PSNR."
        ),
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("cod_diffc_demo"), help="output directory")
    parser.add_argument("--image", type=Path, help="image to use instead of the shipped sample")
    parser.add_argument("--model", help="CoD pipeline directory (default: the embedded model)")
    parser.add_argument(
        "--size", type=int_in_range(32), default=256, help="side of the square the image is resized to (default 256)"
    )
    parser.add_argument("--bpp", type=float, nargs="+", default=list(DEFAULT_RATES), help="target rates")
    add_coder_arguments(parser)
    parser.add_argument(
        "--denoise-steps", type=int_in_range(1), default=25, help="probability-flow ODE steps when decoding"
    )
    add_runtime_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import cod_diffc
    from cod_diffc.backbones import load_backbone
    from cod_diffc.cli._common import quiet_model_loading, torch_dtype
    from cod_diffc.codecs import get_codec_class
    from cod_diffc.codecs.registry import DEFAULT_CODEC
    from cod_diffc.evaluation.html_report import single_image_data, write_page
    from cod_diffc.image_files import centre_square, load_image, save_image
    from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL

    codec = get_codec_class(DEFAULT_CODEC).from_settings(**codec_settings(args))
    sample = args.image or Path(str(importlib.resources.files("cod_diffc") / "assets" / "sample.png"))
    image = centre_square(load_image(sample), args.size)
    quiet_model_loading()
    adapter = load_backbone("cod", args.model, device=args.device, dtype=torch_dtype(args.dtype))
    print(f"model: {args.model or DEFAULT_EMBEDDED_MODEL + ' (embedded)'}")
    print(f"image: {sample} (resized to {args.size}x{args.size})")

    points, encode_seconds = coded_points(codec, image, adapter, args)
    args.output.mkdir(parents=True, exist_ok=True)
    panels, rows, page_points = decoded_points(codec, image, adapter, points, args)
    save_image(args.output / "side_by_side.png", np.concatenate(panels, axis=1))
    print(f"encode (one pass for every rate): {encode_seconds:.1f} s")
    print(f"{'stream':<16}{'bytes':>8}{'bpp':>9}{'PSNR dB':>9}{'decode s':>10}")
    for name, size, bpp, quality, seconds in rows:
        print(f"{name:<16}{size:>8}{bpp:>9.4f}{quality:>9.2f}{seconds:>10.1f}")
    print(f"wrote {args.output}/side_by_side.png (original, then the rows above from left to right)")
    run = {"command": " ".join(["cod-diffc", *args.argv]), "version": cod_diffc.__version__}
    data = single_image_data("cod-diffc demo", run, sample.stem, "original.png", f"{codec.name} on CoD", page_points)
    print(f"wrote {write_page(args.output / 'index.html', data)} (compare the pictures in a browser)")
    return 0


def coded_points(codec, image, adapter, args: argparse.Namespace) -> tuple[list[tuple[str, bytes]], float]:
    """`(name, stream)` of the condition alone (no coded step) and of every target above it, from one encode (targets
    that fall on the same cut give one stream), and the encode's seconds."""
    (condition_only,) = codec.compress_many(image, adapter, stop_steps=[0], progress=False)
    smallest_bpp = 8 * len(condition_only.stream) / (args.size * args.size)
    targets = sorted(target for target in args.bpp if target > smallest_bpp)
    for target in sorted(set(args.bpp) - set(targets)):
        print(f"note: {target} bpp is below the condition-only stream ({smallest_bpp:.4f} bpp) at this size")
    coded = codec.compress_many(image, adapter, target_bpps=targets, progress=not args.no_progress) if targets else []
    points = [("condition_only", condition_only.stream)]
    for point in coded:
        if point.stream != points[-1][1]:
            points.append((point.setting.replace("=", ""), point.stream))
    return points, coded[0].encoding_time if coded else condition_only.encoding_time


def decoded_points(codec, image, adapter, points: list[tuple[str, bytes]], args: argparse.Namespace):
    """Writes the original and each stream with its reconstruction into `args.output`; returns the side-by-side
    panels, the table's rows `(name, bytes, bpp, PSNR, decode seconds)` and the comparison page's points."""
    from cod_diffc.evaluation.metrics import ms_ssim, psnr, to_uint8
    from cod_diffc.image_files import atomic_write, save_image

    original = to_uint8(image)
    save_image(args.output / "original.png", original)
    panels, rows, page_points = [original], [], []
    for name, stream in points:
        atomic_write(args.output / f"{name}.cdc", stream)
        start = time.perf_counter()
        reconstruction = to_uint8(
            codec.decompress(stream, adapter, num_denoise_steps=args.denoise_steps, progress=not args.no_progress)
        )
        decode_seconds = time.perf_counter() - start
        save_image(args.output / f"{name}.png", reconstruction)
        panels.append(reconstruction)
        bpp = 8 * len(stream) / (args.size * args.size)
        rows.append((name, len(stream), bpp, psnr(original, reconstruction), decode_seconds))
        page_points.append(
            {
                "bytes": len(stream),
                "bpp": bpp,
                "psnr": rows[-1][3],
                "msssim": ms_ssim(original, reconstruction),
                "png": f"{name}.png",
                "stream": f"{name}.cdc",
            }
        )
    return panels, rows, page_points
