"""Time DiffC compress + decompress per image, on the CPU or a GPU.

    python benchmarks/codec_time.py              # tiny CoD models (random weights), random images
    python benchmarks/codec_time.py --embedded   # the embedded cod-pixel-small, 512x512 Kodak centre crops, 0.05 bpp
    python benchmarks/codec_time.py --released --device cuda --dtype bfloat16
                                                 # released-size cod-pixel-xl (random weights), same images and rate

Writes `results/codec_time_{tiny,embedded,released}.json`: medians over the repetitions (tiny) or the images of one
encode (every rate) and one decompress of the last cut, which is split into replaying the coded steps (`decode_s`)
and the probability-flow denoising (`denoise_s`), with the reverse channel coder's share of encode and replay
(`rcc_encode_s`, `rcc_decode_s`); default (pooled) reverse channel coder, default 128-step schedule, 25 denoising
steps. `--device` and `--dtype` set where and in what precision the network runs (the
reverse channel coder runs on the same device, in float32); GPU timings synchronise before every clock read.
"""

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch
from kodak import kodak_centre_crop
from timing import clock

from cod_diffc import CodPipeline
from cod_diffc.diffc import decode, denoise, encode, load_backbone
from cod_diffc.diffc.adapters.cod import CodBackbone
from cod_diffc.diffc.channel import ChannelSimulator
from cod_diffc.diffc.codec import default_simulator
from cod_diffc.evaluation.metrics import psnr, to_uint8


ROOT = Path(__file__).resolve().parents[1]
TINY_REPETITIONS = 3
TINY_TARGET_BPP = [0.1, 0.3]
KODAK_IMAGES = ["kodim05", "kodim14", "kodim23"]
KODAK_TARGET_BPP = [0.05]


def random_backbone(name: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> CodBackbone:
    """Named configuration `name` with random weights (seed 0), on `device` in `dtype`."""
    torch.manual_seed(0)
    pipe = CodPipeline.from_named_config(name)
    with torch.no_grad():  # fresh output layers are zero: give the model non-trivial outputs
        for parameter in [*pipe.transformer.parameters(), *pipe.condition_codec.parameters()]:
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
    pipe.to(device)
    if dtype != torch.float32:  # diffusers warns on any dtype cast, even a no-op one
        pipe.to(dtype=dtype)
    return CodBackbone(pipe)


class CoderClock:
    """Wraps the `encode` and `decode` of a channel simulator instance and adds up the seconds spent in them."""

    def __init__(self, simulator: ChannelSimulator, device: torch.device):
        self.simulator, self.device = simulator, device
        self.seconds = {"encode": 0.0, "decode": 0.0}
        for name in self.seconds:
            setattr(simulator, name, self._timed(name, getattr(simulator, name)))

    def _timed(self, name: str, method):
        def timed(*args, **kwargs):
            start = clock(self.device)
            result = method(*args, **kwargs)
            self.seconds[name] += clock(self.device) - start
            return result

        return timed


def time_codec(adapter, image: torch.Tensor, target_bpp: list[float]) -> dict:
    """One encode at every target, then the decompress of the last cut in its two stages; seconds and quality.

    `rcc_encode_s` and `rcc_decode_s` are the parts of `encode_s` and `decode_s` spent in the reverse channel coder
    (the rest is mostly the network).
    """
    coder = CoderClock(default_simulator(), adapter.device)
    start = clock(adapter.device)
    points = encode(image, adapter, target_bpp=target_bpp, simulator=coder.simulator, progress=False).points
    encode_s = clock(adapter.device) - start
    start = clock(adapter.device)
    decoded = decode(points[-1].stream, adapter, simulator=coder.simulator, progress=False)
    decode_s = clock(adapter.device) - start
    start = clock(adapter.device)
    latent = denoise(decoded.latent, decoded.t, adapter, decoded.stream.denoise_guidance_scale, progress=False)
    reconstruction = adapter.decode_latent(latent)
    denoise_s = clock(adapter.device) - start
    return {
        "bytes": [len(point.stream) for point in points],
        "bpp": [point.bpp for point in points],
        "stop_steps": [point.stop_step for point in points],
        "psnr": psnr(to_uint8(image), to_uint8(reconstruction)),
        "encode_s": encode_s,
        "rcc_encode_s": coder.seconds["encode"],
        "decode_s": decode_s,
        "rcc_decode_s": coder.seconds["decode"],
        "denoise_s": denoise_s,
    }


def median_row(runs: list[dict], **fields) -> dict:
    """Medians of the timings over `runs`, with the rates of the first run and `fields`."""
    row = {**fields, **{key: runs[0][key] for key in ("bytes", "bpp", "stop_steps")}}
    for key in ("encode_s", "rcc_encode_s", "decode_s", "rcc_decode_s", "denoise_s"):
        row[key] = statistics.median(run[key] for run in runs)
    row["compress_plus_decompress_s"] = row["encode_s"] + row["decode_s"] + row["denoise_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--embedded", action="store_true", help="time the embedded model on Kodak crops")
    models.add_argument(
        "--released", action="store_true", help="time the released-size cod-pixel-xl (random weights) on Kodak crops"
    )
    parser.add_argument("--device", default="cpu", help="where the network and the coder run (default: cpu)")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="the network's precision"
    )
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)

    rows = []
    if args.embedded or args.released:
        if args.embedded:
            model, adapter = "cod-pixel-small", load_backbone("cod", device=args.device, dtype=dtype)
        else:
            model, adapter = "cod-pixel-xl", random_backbone("cod-pixel-xl", args.device, dtype)
        runs = [time_codec(adapter, kodak_centre_crop(name, 512), KODAK_TARGET_BPP) for name in KODAK_IMAGES]
        rows.append(
            median_row(
                runs,
                model=model,
                image_size=512,
                images=KODAK_IMAGES,
                target_bpp=KODAK_TARGET_BPP,
                per_image=runs,
            )
        )
        results = ROOT / "results" / f"codec_time_{'embedded' if args.embedded else 'released'}.json"
    else:
        for name, size in (("cod-pixel-tiny", 64), ("cod-pixel-tiny", 256), ("cod-latent-tiny", 256)):
            adapter = random_backbone(name, args.device, dtype)
            image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            runs = [time_codec(adapter, image, TINY_TARGET_BPP) for _ in range(TINY_REPETITIONS)]
            rows.append(
                median_row(runs, model=name, image_size=size, target_bpp=TINY_TARGET_BPP, repetitions=TINY_REPETITIONS)
            )
        results = ROOT / "results" / "codec_time_tiny.json"
    for row in rows:
        print(
            f"{row['model']} {row['image_size']}x{row['image_size']} at {row['bpp'][-1]:.4f} bpp: encode "
            f"{row['encode_s']:.1f} s (coder {row['rcc_encode_s']:.1f} s), decode {row['decode_s']:.1f} s (coder "
            f"{row['rcc_decode_s']:.1f} s), denoise {row['denoise_s']:.1f} s, "
            f"in all {row['compress_plus_decompress_s']:.1f} s"
        )
    machine = {
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(adapter.device) if adapter.device.type == "cuda" else "cpu",
        "dtype": args.dtype,
    }
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps({"machine": machine, "results": rows}, indent=1) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
