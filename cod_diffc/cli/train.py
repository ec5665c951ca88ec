"""`cod-diffc train`: train CoD from a YAML configuration (also under `accelerate launch`)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train CoD (or its autoencoder, or a latent diffusion model to compare it with) from a configuration",
        description=(
            "Train CoD, with model.kind: autoencoder the AutoencoderKL of a latent CoD, or with model.kind: ldm a "
            "latent diffusion UNet of the Stable Diffusion family, from a YAML configuration (see configs/train/ and "
            "docs/training.md). Runs on one device, or on several with "
            "`accelerate launch -m cod_diffc train ...`."
        ),
    )
    parser.add_argument("--config", required=True, help="the training configuration (YAML)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint of run.output_dir, if any"
    )
    resume.add_argument("--resume-from", metavar="PATH", help="continue from this checkpoint or run folder")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="configuration overrides, e.g. optim.lr=2e-5 run.max_steps=1000 model.transformer.num_layers=4",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cod_diffc.training import AutoencoderTrainer, CodTrainer, LatentDiffusionTrainer, load_train_config

    config = load_train_config(args.config, args.overrides)
    trainer_class = {"cod": CodTrainer, "autoencoder": AutoencoderTrainer, "ldm": LatentDiffusionTrainer}
    trainer = trainer_class[config.model.kind](config, resume=args.resume_from or args.resume)
    exported = trainer.train()
    if trainer.accelerator.is_main_process:
        print(f"exported {'autoencoder' if config.model.kind == 'autoencoder' else 'pipeline'}: {exported}")
    return 0
