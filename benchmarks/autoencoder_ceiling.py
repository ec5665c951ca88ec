"""The latent route's ceiling: an autoencoder's own reconstruction PSNR on the 24 Kodak 256x256 centre crops.

    python benchmarks/autoencoder_ceiling.py shipped=cod_diffc/weights/cod-latent-small/vae \
        continued=runs/embedded_vae_decoder_2/vae -o results/embedded_vae_decoder_continued/ceiling.json

Each `LABEL=PATH` is a diffusers `AutoencoderKL` folder (a pipeline's `vae/`, or an autoencoder run's export). Every
crop goes through encode, the posterior mean, and decode, in float32; DiffC on a latent CoD cannot do better than
this round trip at any rate. Prints and writes the mean PSNR (and the per-image values) per autoencoder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from kodak import write_kodak_centre_crops


ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def round_trip_psnr(vae: torch.nn.Module, crops: Path) -> dict[str, float]:
    """PSNR (dB, 8-bit RGB) of `vae`'s round trip (posterior mean) on each PNG of `crops`, by image name."""
    from cod_diffc.evaluation.metrics import psnr, to_uint8
    from cod_diffc.image_files import load_image

    scores = {}
    for path in sorted(crops.glob("*.png")):
        image = load_image(path)  # (1, 3, H, W) in [0, 1]
        decoded = vae.decode(vae.encode(2 * image - 1).latent_dist.mean).sample  # (1, 3, H, W) in [-1, 1]
        scores[path.stem] = psnr(to_uint8(image), to_uint8((decoded + 1) / 2))
    return scores


def labelled_folder(text: str) -> tuple[str, Path]:
    """`LABEL=PATH` of an autoencoder folder."""
    label, separator, path = text.partition("=")
    if not (separator and label and (Path(path) / "config.json").is_file()):
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH of an AutoencoderKL folder, got {text!r}")
    return label, Path(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("autoencoders", type=labelled_folder, nargs="+", metavar="LABEL=PATH")
    parser.add_argument("-o", "--output", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args()

    from diffusers import AutoencoderKL

    crops = write_kodak_centre_crops(256, ROOT / "runs" / "kodak_centre_256")
    results = {}
    for label, folder in args.autoencoders:
        per_image = round_trip_psnr(AutoencoderKL.from_pretrained(folder).float().eval(), crops)
        results[label] = {
            "folder": str(folder),
            "mean_psnr": float(np.mean(list(per_image.values()))),
            "per_image": per_image,
        }
        print(f"{label}: {results[label]['mean_psnr']:.3f} dB ({folder})")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    summary = {"images": "the 24 Kodak images, 256x256 centre crops", "autoencoders": results}
    args.output.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
