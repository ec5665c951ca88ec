"""Time CoD-Lite against CoD at released size (random weights) on the CPU or a GPU: the denoiser's forward pass, the
one-step codec's encode and decode, and a DiffC round trip on the pre-trained backbone.

    python benchmarks/cod_lite_time.py                                  # 512x512 and 1920x1024, DiffC at 512x512
    python benchmarks/cod_lite_time.py --sizes 512x512 --diffc-sizes 512x512 1024x1920 --repeat 5

Models: `cod-lite-xl` (the released CoD-Lite: CoD's condition codec with a light decoder, the 21-block convolutional
denoiser and its per-pixel head, 102 M parameters) and `cod-pixel-xl` (the released pixel CoD's DiT); their
weights are random, which does not change the time of a pass. The image is the package's sample photo resized
(Lanczos) to each size (`HxW`). Per size and model: one unguided denoiser pass at noise level 0.5 (`forward_s`),
and the preparation of the condition (`condition_s`: the condition codec's encoder, quantiser and decoder); for
CoD-Lite also the one-step codec (`cod-lite-onestep`: `onestep_encode_s`, the condition as a stream;
`onestep_decode_s`, the condition decoded and one pass from an all-zero image) and, at `--diffc-sizes`, a DiffC
round trip at 0.03 bpp with the default coder and schedule (the fields of `codec_time.time_codec`). Medians over
`--repeat` runs (after one warm-up run when there are several). Writes `results/cod_lite_time.json`.
"""

import argparse
import json
import platform
import statistics
import subprocess
from importlib.resources import files
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from codec_time import random_backbone, time_codec
from timing import clock

from cod_diffc.codecs import load_codec


ROOT = Path(__file__).resolve().parents[1]
MODELS = ("cod-lite-xl", "cod-pixel-xl")
DIFFC_TARGET_BPP = [0.03]


def parse_size(text: str) -> tuple[int, int]:
    """`"HxW"` -> `(H, W)`."""
    height, width = (int(side) for side in text.lower().split("x"))
    return height, width


def sample_image(height: int, width: int) -> torch.Tensor:
    """`(1, 3, height, width)` in [0, 1]: the package's sample photo, resized."""
    with PIL.Image.open(files("cod_diffc") / "assets" / "sample.png") as photo:
        pixels = np.asarray(photo.convert("RGB").resize((width, height), PIL.Image.LANCZOS))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255


def median_seconds(function, repeat: int, device: torch.device) -> float:
    """Median wall time of `function()` over `repeat` runs, after one warm-up run when `repeat > 1`."""
    if repeat > 1:
        function()
    seconds = []
    for _ in range(repeat):
        start = clock(device)
        function()
        seconds.append(clock(device) - start)
    return statistics.median(seconds)


def time_model(adapter, image: torch.Tensor, repeat: int) -> dict:
    """`condition_s` and `forward_s` of one model on `image`; for CoD-Lite, the one-step codec's too."""
    condition = adapter.prepare_condition(image)
    latent = torch.randn(1, *adapter.latent_shape(*image.shape[-2:]), generator=torch.Generator().manual_seed(0))
    latent = latent.to(adapter.device)
    time = torch.tensor(0.5, device=adapter.device)
    row = {
        "condition_s": median_seconds(lambda: adapter.prepare_condition(image), repeat, adapter.device),
        "forward_s": median_seconds(
            lambda: adapter.predict_x0_and_epsilon(latent, time, condition, 1.0), repeat, adapter.device
        ),
    }
    if adapter.name == "cod-lite":
        codec = load_codec("cod-lite-onestep")
        stream = codec.compress(image, adapter, target_bpp=1.0, clamp_targets=True)
        row["onestep_bytes"] = len(stream)
        row["onestep_encode_s"] = median_seconds(
            lambda: codec.compress(image, adapter, target_bpp=1.0, clamp_targets=True), repeat, adapter.device
        )
        row["onestep_decode_s"] = median_seconds(lambda: codec.decompress(stream, adapter), repeat, adapter.device)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x512", "1024x1920"], help="image sizes HxW")
    parser.add_argument("--diffc-sizes", nargs="*", default=["512x512"], help="sizes of the DiffC round trip")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "cod_lite_time.json")
    args = parser.parse_args()

    rows = []
    for model in MODELS:
        adapter = random_backbone(model, device=args.device)
        parameters = sum(p.numel() for p in adapter.pipeline.transformer.parameters())
        parameters += sum(p.numel() for p in adapter.pipeline.condition_codec.parameters())
        for size in args.sizes:
            image = sample_image(*parse_size(size)).to(args.device)
            row = {"model": model, "parameters": parameters, "size": size, **time_model(adapter, image, args.repeat)}
            if adapter.name == "cod-lite" and size in args.diffc_sizes:
                row["diffc"] = time_codec(adapter, image, DIFFC_TARGET_BPP)
            rows.append(row)
            print(json.dumps(row), flush=True)
        del adapter

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    report = {
        "command": "python benchmarks/cod_lite_time.py "
        + " ".join(
            [
                f"--sizes {' '.join(args.sizes)}",
                f"--diffc-sizes {' '.join(args.diffc_sizes)}",
                f"--repeat {args.repeat}",
            ]
        ),
        "commit": commit.stdout.strip(),
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    for row in rows:
        extra = ""
        if "onestep_encode_s" in row:
            extra = f", one-step encode {row['onestep_encode_s']:.2f} s / decode {row['onestep_decode_s']:.2f} s"
        if "diffc" in row:
            diffc = row["diffc"]
            extra += (
                f", DiffC at {diffc['bpp'][-1]:.4f} bpp: encode {diffc['encode_s']:.1f} s, replay "
                f"{diffc['decode_s']:.1f} s, denoise {diffc['denoise_s']:.1f} s"
            )
        print(
            f"{row['model']} {row['size']}: forward {row['forward_s']:.2f} s, condition {row['condition_s']:.2f} s{extra}"
        )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
