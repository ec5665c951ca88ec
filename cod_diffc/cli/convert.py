"""`cod-diffc convert`: a released CoD or CoD-Lite checkpoint → a `CodPipeline` or `CodLitePipeline` directory
(safetensors)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from cod_diffc.conversion.cod_lite_releases import HUB_REPO as COD_LITE_HUB_REPO
from cod_diffc.conversion.cod_lite_releases import RELEASED_CHECKPOINTS as COD_LITE_VARIANTS


if TYPE_CHECKING:
    from cod_diffc.pipelines import CodPipeline


HUB_REPO = "zhaoyangjia/CoD"
HUB_FILES = {
    "pixel": "cod/CoD_pixel_vpred.pt",
    "latent": "cod/CoD_latent_vpred.pt",
    "latent-64bits": "cod/CoD_latent_vpred_64bits.pt",
}
NAMED_CONFIG_OF_VARIANT = {"pixel": "cod-pixel-xl", "latent": "cod-latent-xl", "latent-64bits": "cod-latent-64bits-xl"}
DENOISER_KEYS = {"hidden_size", "num_blocks", "num_cond_blocks"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a released CoD or CoD-Lite checkpoint into a pipeline directory",
        description=(
            "Convert a released CoD or CoD-Lite checkpoint (torch.load dictionary, read with weights_only=True) into "
            "a CodPipeline or CodLitePipeline directory. Every unmapped, missing or mis-shaped key is an error that "
            "lists the keys."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("checkpoint", nargs="?", type=Path, help="the checkpoint (.pt/.ckpt or .safetensors)")
    source.add_argument(
        "--from-hub",
        metavar="REPO",
        help=f"download from the hub (e.g. {HUB_REPO} or {COD_LITE_HUB_REPO}) or its cache",
    )
    parser.add_argument(
        "--variant",
        choices=[*HUB_FILES, *COD_LITE_VARIANTS],
        required=True,
        metavar="VARIANT",
        help=(
            f"which released model it is: CoD's {', '.join(HUB_FILES)} (a CodPipeline), or CoD-Lite's "
            f"{', '.join(COD_LITE_VARIANTS)} (a CodLitePipeline: the pre-trained model, or a one-step codec named for "
            "its bits per pixel)"
        ),
    )
    parser.add_argument("--config", type=Path, help="the checkpoint's yaml/json config (default: the released one)")
    parser.add_argument("--vae", default="stabilityai/sd-vae-ft-ema", help="latent variants: the VAE path or hub id")
    parser.add_argument("--allow-download", action="store_true", help="let huggingface_hub download missing files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the pipeline directory to write")
    parser.set_defaults(func=run)


def find_denoiser_arguments(config: object) -> tuple[dict, dict]:
    """The official denoiser `init_args` and any patched codec constants, found anywhere in a parsed config."""
    if isinstance(config, dict):
        if DENOISER_KEYS <= set(config):
            return dict(config), {}
        for value in config.values():
            try:
                init_args, _ = find_denoiser_arguments(value)
            except ValueError:
                continue
            overrides = config.get("codec_overrides_vs_official_hardcoded", {})
            constants = {  # CoD's reference configs name them in a block, CoD-Lite's beside the init_args
                "GN_GROUPS": overrides.get("groupnorm_groups", config.get("GN_GROUPS")),
                "ENC_CH": overrides.get("encoder_base_channels", config.get("ENC_CH")),
                "CB_DIM": overrides.get("codebook_dim", config.get("CB_DIM")),
            }
            return init_args, {key: value for key, value in constants.items() if value is not None}
    raise ValueError(f"no denoiser arguments ({', '.join(sorted(DENOISER_KEYS))}, ...) in the config")


def read_checkpoint(path: Path) -> dict:
    """Reads a checkpoint without running untrusted pickled code (`weights_only=True`)."""
    import pickle

    import torch

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path}: refused, it holds pickled objects that are not plain tensors and containers "
            f"(torch.load weights_only=True): {str(error).splitlines()[0]}"
        ) from None


def hub_file(repo: str, filename: str, allow_download: bool) -> Path:
    """`filename` of hub repository `repo` from the local Hugging Face cache (downloaded only with
    `allow_download`); a `FileNotFoundError` says how to get it otherwise."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.constants import HF_HUB_CACHE
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, local_files_only=not allow_download))
    except LocalEntryNotFoundError:
        raise FileNotFoundError(
            f"{repo}/{filename} is not in the Hugging Face cache ({HF_HUB_CACHE}); download it on a machine with "
            f"internet (`huggingface-cli download {repo} {filename}`) and copy the cache, or pass the file path, "
            "or add --allow-download"
        ) from None


def run(args: argparse.Namespace) -> int:
    from cod_diffc.cli._common import quiet_model_loading
    from cod_diffc.training.export import save_atomically

    if args.output.exists():
        raise ValueError(f"{args.output} exists; remove it or choose another output directory")
    quiet_model_loading()
    is_cod_lite = args.variant in COD_LITE_VARIANTS
    hub_name = COD_LITE_VARIANTS[args.variant].hub_file if is_cod_lite else HUB_FILES[args.variant]
    checkpoint_path = args.checkpoint or hub_file(args.from_hub, hub_name, args.allow_download)
    arguments = None if args.config is None else find_denoiser_arguments(read_config(args.config))
    checkpoint = read_checkpoint(checkpoint_path)
    if is_cod_lite:
        from cod_diffc.conversion.cod_lite import RELEASED_CODEC_CONSTANTS, convert_cod_lite

        init_args, constants = arguments or (None, {})
        pipeline = convert_cod_lite(checkpoint, args.variant, init_args, {**RELEASED_CODEC_CONSTANTS, **constants})
    else:
        pipeline = convert_cod(checkpoint, args.variant, arguments, args.vae, args.allow_download)
    save_atomically(pipeline, args.output)
    total = sum(p.numel() for p in pipeline.transformer.parameters())
    total += sum(p.numel() for p in pipeline.condition_codec.parameters())
    print(
        f"{checkpoint_path} -> {args.output}: {type(pipeline).__name__} ({args.variant}), "
        f"{total:,} denoiser parameters"
    )
    return 0


def read_config(path: Path) -> object:
    """A checkpoint's JSON or YAML config, parsed; a one-line `ValueError` for an unreadable one."""
    import json

    import yaml

    text = path.read_text()
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not a readable JSON or YAML configuration ({error})") from None


def convert_cod(
    checkpoint: dict, variant: str, arguments: tuple[dict, dict] | None, vae_name: str, allow_download: bool
) -> CodPipeline:
    """The `CodPipeline` of a released CoD checkpoint of `variant`, sized by the released configuration or by the
    `(init_args, codec constants)` of its config."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    from cod_diffc.conversion.official import load_official_weights, official_init_args_to_kwargs
    from cod_diffc.models import CodConditionCodec, CodTransformer2DModel
    from cod_diffc.pipelines import CodPipeline, get_named_config
    from cod_diffc.schedulers import CodFlowMatchScheduler

    named = get_named_config(NAMED_CONFIG_OF_VARIANT[variant])
    if arguments is None:
        kwargs = {"condition_codec": named.condition_codec, "transformer": named.transformer}
    else:
        kwargs = official_init_args_to_kwargs(*arguments)
    is_latent = kwargs["transformer"].get("in_channels", 3) != 3
    if is_latent != named.is_latent:
        raise ValueError(f"--variant {variant} does not match the config (in_channels)")
    with init_empty_weights():
        codec = CodConditionCodec(**kwargs["condition_codec"])
        transformer = CodTransformer2DModel(**kwargs["transformer"])
    load_official_weights(checkpoint, {"condition_codec": codec, "transformer": transformer}, assign=True)
    vae = None
    if is_latent:
        try:
            vae = AutoencoderKL.from_pretrained(vae_name, local_files_only=not allow_download)
        except OSError:
            raise FileNotFoundError(
                f"the VAE {vae_name} is not available locally; download it (`huggingface-cli download {vae_name}`), "
                "pass --vae PATH to a diffusers AutoencoderKL folder, or add --allow-download"
            ) from None
    return CodPipeline(
        transformer=transformer,
        condition_codec=codec,
        scheduler=CodFlowMatchScheduler(),
        vae=vae,
        default_guidance_scale=named.default_guidance_scale,
    )
