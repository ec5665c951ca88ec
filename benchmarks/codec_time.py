"""Time DiffC compress + decompress per image on this machine's CPU.

    python benchmarks/codec_time.py              # tiny CoD models (random weights), random images
    python benchmarks/codec_time.py --embedded   # the embedded cod-pixel-small, 512x512 Kodak centre crops, 0.05 bpp

Writes `results/codec_time_tiny.json` or `results/codec_time_embedded.json`: medians over the repetitions (tiny) or
the images (embedded) of one encode (every rate) and one decompress of the last cut, which is split into replaying
the coded steps (`decode_s`) and the probability-flow denoising (`denoise_s`); default (pooled) reverse channel
coder, default 128-step schedule, 25 denoising steps.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from kodak import kodak_centre_crop

from cod_diffc import CodPipeline
from cod_diffc.diffc import decode, denoise, encode, load_backbone
from cod_diffc.diffc.adapters.cod import CodBackbone
from cod_diffc.evaluation.metrics import psnr, to_uint8


ROOT = Path(__file__).resolve().parents[1]
TINY_REPETITIONS = 3
TINY_TARGET_BPP = [0.1, 0.3]
EMBEDDED_IMAGES = ["kodim05", "kodim14", "kodim23"]
EMBEDDED_TARGET_BPP = [0.05]


def tiny_backbone(name: str) -> CodBackbone:
    torch.manual_seed(0)
    pipe = CodPipeline.from_named_config(name)
    with torch.no_grad():  # fresh output layers are zero: give the model non-trivial outputs
        for parameter in [*pipe.transformer.parameters(), *pipe.condition_codec.parameters()]:
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
    return CodBackbone(pipe)


def time_codec(adapter, image: torch.Tensor, target_bpp: list[float]) -> dict:
    """One encode at every target, then the decompress of the last cut in its two stages; seconds and quality."""
    start = time.perf_counter()
    points = encode(image, adapter, target_bpp=target_bpp, progress=False).points
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = decode(points[-1].stream, adapter, progress=False)
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    latent = denoise(decoded.latent, decoded.t, adapter, decoded.stream.denoise_guidance_scale, progress=False)
    reconstruction = adapter.decode_latent(latent)
    denoise_s = time.perf_counter() - start
    return {
        "bytes": [len(point.stream) for point in points],
        "bpp": [point.bpp for point in points],
        "stop_steps": [point.stop_step for point in points],
        "psnr": psnr(to_uint8(image), to_uint8(reconstruction)),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "denoise_s": denoise_s,
    }


def median_row(runs: list[dict], **fields) -> dict:
    """Medians of the timings over `runs`, with the rates of the first run and `fields`."""
    row = {**fields, **{key: runs[0][key] for key in ("bytes", "bpp", "stop_steps")}}
    for key in ("encode_s", "decode_s", "denoise_s"):
        row[key] = statistics.median(run[key] for run in runs)
    row["compress_plus_decompress_s"] = row["encode_s"] + row["decode_s"] + row["denoise_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedded", action="store_true", help="time the embedded model on Kodak crops")
    args = parser.parse_args()

    rows = []
    if args.embedded:
        adapter = load_backbone("cod")
        runs = [time_codec(adapter, kodak_centre_crop(name, 512), EMBEDDED_TARGET_BPP) for name in EMBEDDED_IMAGES]
        rows.append(
            median_row(
                runs,
                model="cod-pixel-small",
                image_size=512,
                images=EMBEDDED_IMAGES,
                target_bpp=EMBEDDED_TARGET_BPP,
                per_image=runs,
            )
        )
        results = ROOT / "results" / "codec_time_embedded.json"
    else:
        for name, size in (("cod-pixel-tiny", 64), ("cod-pixel-tiny", 256), ("cod-latent-tiny", 256)):
            adapter = tiny_backbone(name)
            image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            runs = [time_codec(adapter, image, TINY_TARGET_BPP) for _ in range(TINY_REPETITIONS)]
            rows.append(
                median_row(runs, model=name, image_size=size, target_bpp=TINY_TARGET_BPP, repetitions=TINY_REPETITIONS)
            )
        results = ROOT / "results" / "codec_time_tiny.json"
    for row in rows:
        print(
            f"{row['model']} {row['image_size']}x{row['image_size']} at {row['bpp'][-1]:.4f} bpp: encode "
            f"{row['encode_s']:.1f} s, decode {row['decode_s']:.1f} s, denoise {row['denoise_s']:.1f} s, "
            f"in all {row['compress_plus_decompress_s']:.1f} s"
        )
    machine = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__}
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps({"machine": machine, "results": rows}, indent=1) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
