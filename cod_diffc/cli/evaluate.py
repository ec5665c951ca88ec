"""`cod-diffc evaluate`: rate-distortion sweeps of diffusion codecs x backbones and classical codecs on a folder of
images.

Under `accelerate launch`, the images are shared across the processes (each process codes every `N`-th image) and
the main process merges the per-image records into the outputs once all are done.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cod_diffc.cli._common import add_coder_arguments, add_runtime_arguments, int_in_range


FID_NOTE = "FID/KID: not computed (pass --metrics fid kid)"


class _BackboneAction(argparse.Action):
    """`--backbone NAME` starts a method; the `--model`, `--label` and `--option` after it belong to it."""

    def __call__(self, parser, namespace, value, option_string=None):
        method = {"backbone": value, "model": None, "label": None, "options": []}
        namespace.backbones = [*(namespace.backbones or []), method]


class _BackboneSettingAction(argparse.Action):
    def __call__(self, parser, namespace, value, option_string=None):
        if not namespace.backbones:
            parser.error(f"{option_string} must follow the --backbone it belongs to")
        method = namespace.backbones[-1]
        if self.dest == "options":
            method["options"].append(value)
        elif method[self.dest] is not None:
            parser.error(f"{option_string} given twice for --backbone {method['backbone']}")
        else:
            method[self.dest] = value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="rate-distortion sweep of diffusion codecs x backbones and classical codecs on a folder of images",
        description=(
            "Evaluate diffusion codecs (--codec: DiffC, Turbo-DDCM, DDCM, ...) on one or more backbones, and classical "
            "codecs, at the requested rates on every image of DATASET_DIR. Writes one CompressAI-style JSON per "
            "method, a per-image CSV, an RD plot and a Markdown A/B report (BD-rate against an anchor, crops) to -o. "
            "A progressive codec encodes once per image for every rate; the others encode once per rate."
        ),
    )
    parser.add_argument(
        "--codec",
        dest="codecs",
        nargs="+",
        metavar="CODEC",
        help="diffusion codecs to run on every --backbone (see `cod-diffc codecs`, which marks the default); methods "
        "are named cod_diffc-BACKBONE for the default codec and CODEC-BACKBONE for the others",
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="folder of images (png, jpg, webp, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("--bpp", type=float, nargs="+", required=True, metavar="BPP", help="target rates (bpp)")
    parser.add_argument(
        "--backbone", dest="backbones", action=_BackboneAction, metavar="NAME", help="a backbone (repeatable)"
    )
    parser.add_argument("--model", action=_BackboneSettingAction, help="model of the preceding --backbone")
    parser.add_argument("--label", action=_BackboneSettingAction, help="result name of the preceding --backbone")
    parser.add_argument(
        "--option", dest="options", action=_BackboneSettingAction, metavar="KEY=VALUE", help="backbone option"
    )
    parser.add_argument(
        "--baseline",
        nargs="+",
        default=[],
        metavar="CODEC",
        help="classical codecs to compare: jpeg webp avif jxl, and their downscale-code-upscale variants for very "
        "low rates: jpeg-down webp-down avif-down jxl-down",
    )
    parser.add_argument("--resume", action="store_true", help="skip (method, image) pairs already in -o")
    parser.add_argument(
        "--steps", type=int_in_range(1), default=None, help="schedule length of every codec (default: each codec's)"
    )
    add_coder_arguments(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared randomness")
    parser.add_argument("--guidance-scale", type=float, default=None, help="guidance of the coded steps")
    _add_decode_arguments(parser)
    _add_report_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(func=run, backbones=None)


def _add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    """How the diffusion codecs' streams are decoded."""
    parser.add_argument("--denoise-guidance-scale", type=float, default=None, help="guidance the decoder uses")
    parser.add_argument(
        "--denoise-steps", type=int_in_range(1), default=25, help="probability-flow ODE steps (default 25)"
    )
    parser.add_argument(
        "--decode",
        nargs="+",
        choices=("flow", "mean"),
        default=["flow"],
        help="decodes to evaluate, each a method from the same encodes: flow (probability-flow ODE, default) "
        "and/or mean (one-step posterior mean, highest PSNR); names other than flow get a -mean suffix",
    )


def _add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """What the report compares and shows."""
    parser.add_argument("--anchor", help="method the BD table compares against (default: the first)")
    parser.add_argument("--crop-image", help="name (stem) of the image shown in the crops (default: the first)")
    parser.add_argument("--crop-bpp", type=float, help="target rate of the crops (default: the middle one)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=("fid", "kid"),
        default=[],
        help="distribution metrics over overlapping 64x64 patches, as CoD's and DDCM's papers report them (needs "
        "torchmetrics, torch-fidelity and its Inception weights in torch's hub cache)",
    )


def _codecs(names: list[str], settings: dict) -> dict:
    """Each codec with the settings it takes; `ValueError` for a setting that none of them takes."""
    from cod_diffc.codecs import get_codec_class

    classes = {name: get_codec_class(name) for name in names}
    unused = sorted(set(settings) - set().union(*(codec_class.setting_names() for codec_class in classes.values())))
    if unused:
        raise ValueError(f"no codec of --codec {' '.join(names)} takes the setting(s) {', '.join(unused)}")
    return {
        name: codec_class.from_settings(**{k: v for k, v in settings.items() if k in codec_class.setting_names()})
        for name, codec_class in classes.items()
    }


def _methods(args: argparse.Namespace, device) -> tuple[list, list[str]]:
    """The methods the arguments name (models loaded), and notes on the baselines that cannot run here."""
    from cod_diffc.backbones import available_backbones, load_backbone
    from cod_diffc.cli._common import codec_settings, parse_options, quiet_model_loading, torch_dtype
    from cod_diffc.codecs import available_codecs
    from cod_diffc.codecs.registry import DEFAULT_CODEC
    from cod_diffc.evaluation.baselines import codec_availability
    from cod_diffc.evaluation.sweep import CodecMethod, DiffusionCodecMethod

    specs = args.backbones or []
    for spec in specs:
        if spec["backbone"] not in available_backbones():
            raise ValueError(f"unknown backbone {spec['backbone']!r}; available: {', '.join(available_backbones())}")
    codec_names = list(dict.fromkeys(args.codecs or [DEFAULT_CODEC]))
    for codec_name in codec_names:
        if codec_name not in available_codecs():
            raise ValueError(f"unknown codec {codec_name!r}; available: {', '.join(available_codecs())}")
    codecs = _codecs(codec_names, codec_settings(args))
    baselines, notes = codec_availability(args.baseline)
    decodes = list(dict.fromkeys(args.decode))
    runs = [(codec, index, decode) for codec in codec_names for index in range(len(specs)) for decode in decodes]
    names = [_method_name(codec, specs[index], decode) for codec, index, decode in runs]
    names += [baseline.name for baseline in baselines]
    if not names:
        unavailable = f" ({'; '.join(notes)})" if notes else ""
        raise ValueError(f"nothing to evaluate: give a --backbone or a --baseline this machine can run{unavailable}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"several methods are named {', '.join(duplicates)}; tell them apart with --label")

    quiet_model_loading()
    adapters = [
        load_backbone(
            spec["backbone"],
            spec["model"],
            device=device,
            dtype=torch_dtype(args.dtype),
            **parse_options(spec["options"], spec["backbone"]),
        )
        for spec in specs
    ]
    methods = [
        DiffusionCodecMethod(
            name,
            codecs[codec_name],
            adapters[spec_index],
            seed=args.seed,
            num_denoise_steps=args.denoise_steps,
            decode=decode,
        )
        for name, (codec_name, spec_index, decode) in zip(names, runs)
    ]
    methods += [CodecMethod(baseline) for baseline in baselines]
    return methods, notes


def _method_name(codec: str, spec: dict, decode: str) -> str:
    """The result name of `codec` on the backbone of `spec` with `decode`: the library's own method (the default
    codec) keeps the library's name, `cod_diffc-BACKBONE`; the others are `CODEC-BACKBONE`; a label replaces the
    backbone's name, and decodes other than flow add a suffix."""
    from cod_diffc.codecs.registry import DEFAULT_CODEC

    if codec == DEFAULT_CODEC:
        stem = spec["label"] or f"cod_diffc-{spec['backbone']}"
    else:
        stem = f"{codec}-{spec['label'] or spec['backbone']}"
    return stem + ("" if decode == "flow" else f"-{decode}")


def _crop(args: argparse.Namespace, images: list[Path], target_bpps: list[float]) -> tuple[str, float]:
    """The image and target rate of the crops figure: `--crop-image` / `--crop-bpp`, or the first image and the
    middle rate."""
    crop_image = args.crop_image or images[0].stem
    if crop_image not in {path.stem for path in images}:
        raise ValueError(f"--crop-image {crop_image!r} is not an image of {args.dataset}")
    crop_bpp = args.crop_bpp if args.crop_bpp is not None else target_bpps[len(target_bpps) // 2]
    if crop_bpp not in target_bpps:
        raise ValueError(f"--crop-bpp {crop_bpp} is not one of the target rates {target_bpps}")
    return crop_image, crop_bpp


def run(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from cod_diffc.evaluation.distribution_metrics import load_distribution_metrics
    from cod_diffc.evaluation.metrics import load_perceptual_metrics
    from cod_diffc.evaluation.run_outputs import write_run_outputs
    from cod_diffc.evaluation.sweep import evaluate_images, list_images

    if any(not target > 0 for target in args.bpp):
        raise ValueError("--bpp targets must be > 0")
    target_bpps = sorted(set(args.bpp))
    images = list_images(args.dataset)
    crop = _crop(args, images, target_bpps)

    state = PartialState(cpu=args.device == "cpu")  # processes of `accelerate launch` on the CPU talk over gloo
    # Under `accelerate launch`, `--device cuda` means each process's own GPU.
    device = state.device if args.device == "cuda" and state.num_processes > 1 else args.device
    methods, notes = _methods(args, device)
    method_names = [method.name for method in methods]
    if args.anchor is not None and args.anchor not in method_names:
        raise ValueError(f"--anchor {args.anchor!r} is not among the methods {', '.join(method_names)}")
    perceptual_metrics, perceptual_notes = load_perceptual_metrics(device)
    distribution_metrics, distribution_notes = load_distribution_metrics(args.metrics, device=device)
    notes += perceptual_notes + distribution_notes + ([] if args.metrics else [FID_NOTE])

    coded = evaluate_images(
        images,
        methods,
        target_bpps,
        args.output,
        perceptual_metrics=perceptual_metrics,
        resume=args.resume,
        keep_reconstructions=[path.stem for path in images],  # every picture, for the comparison page
        process_index=state.process_index,
        num_processes=state.num_processes,
        progress=not args.no_progress,
    )
    state.wait_for_everyone()
    if not state.is_main_process:
        return 0

    write_run_outputs(
        args.output,
        methods,
        images,
        target_bpps,
        notes,
        anchor=args.anchor or method_names[0],
        crop=crop,
        distribution_metrics=distribution_metrics,
        command=args.argv,
        device=str(device),
    )
    print(f"evaluated {len(images)} image(s), {coded} (method, image) pair(s) coded by this process; {args.output}")
    print(f"comparison page: {args.output / 'index.html'}")
    for note in notes:
        print(f"note: {note}")
    return 0
