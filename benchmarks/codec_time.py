"""Time DiffC compress + decompress per image, on the CPU or a GPU.

    python benchmarks/codec_time.py              # tiny CoD models (random weights), random images
    python benchmarks/codec_time.py --embedded --sizes 256 512 --compare-tree /tmp/before [--repeat 3]
                                                 # the default embedded model, Kodak centre crops, 0.05 bpp, side by
                                                 # side with an earlier commit (git worktree add /tmp/before COMMIT),
                                                 # every image timed --repeat times on a noisy machine
    python benchmarks/codec_time.py --released --device cuda --dtype bfloat16
                                                 # released-size cod-pixel-xl (random weights), 512x512 crops

Writes `results/codec_time_{tiny,embedded,released}.json`: medians over the repetitions (tiny) or the images of one
encode (every rate) and one decompress of the last cut, which is split into replaying the coded steps (`decode_s`)
and the probability-flow denoising (`denoise_s`; `mean_s` is the one-step posterior-mean decode instead). Each stage
is split into the network (`network_*_s`), the reverse channel coder (`rcc_*_s`) and the rANS coding of the step
codes (`entropy_*_s`); `io_s` is the command line's file reading and writing. Default (pooled) reverse channel coder,
default 128-step schedule, 25 denoising steps. With `--compare-tree`, every image is timed in both checkouts in
turn, each in a fresh process, and the streams are checked to be identical. `--device` and `--dtype` set where and in
what precision the network runs (the reverse channel coder runs on the same device, in float32); GPU timings
synchronise before every clock read.
"""

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from kodak import KODAK, kodak_centre_crop, require_kodak
from timing import clock

from cod_diffc import CodLitePipeline, CodPipeline
from cod_diffc.backbones import denoise, load_backbone
from cod_diffc.backbones.cod import CodBackbone
from cod_diffc.backbones.cod_lite import CodLiteBackbone
from cod_diffc.diffc import decode, encode
from cod_diffc.diffc.codec import default_simulator
from cod_diffc.evaluation.metrics import psnr, to_uint8
from cod_diffc.image_files import atomic_write, load_image, save_image
from cod_diffc.pipelines import get_named_config
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
TINY_REPETITIONS = 3
TINY_TARGET_BPP = [0.1, 0.3]
KODAK_IMAGES = ["kodim05", "kodim14", "kodim23"]
KODAK_TARGET_BPP = [0.05]


def random_backbone(name: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> CodBackbone:
    """Named configuration `name` (CoD or CoD-Lite) with random weights (seed 0), on `device` in `dtype`."""
    torch.manual_seed(0)
    is_cod_lite = get_named_config(name).pipeline == "CodLitePipeline"
    pipe = (CodLitePipeline if is_cod_lite else CodPipeline).from_named_config(name)
    with torch.no_grad():  # fresh output layers are zero: give the model non-trivial outputs
        for parameter in [*pipe.transformer.parameters(), *pipe.condition_codec.parameters()]:
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
    pipe.to(device)
    if dtype != torch.float32:  # diffusers warns on any dtype cast, even a no-op one
        pipe.to(dtype=dtype)
    return (CodLiteBackbone if is_cod_lite else CodBackbone)(pipe)


class CallClock:
    """Adds up the seconds spent in `owner.name` (a function or method attribute) while installed."""

    def __init__(self, owner, name: str, device: torch.device):
        self.seconds, self.device = 0.0, device
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = clock(self.device)
            result = original(*args, **kwargs)
            self.seconds += clock(self.device) - start
            return result

        setattr(owner, name, timed)
        self.restore = lambda: setattr(owner, name, original)


def time_codec(adapter, image: torch.Tensor, target_bpp: list[float], image_path: Path | None = None) -> dict:
    """One encode at every target, then the decompress of the last cut in its stages; seconds and quality. With
    `image_path` (the file `image` came from), also `io_s` ([`time_io`]).

    Every stage is split into the network (`network_*_s`), the reverse channel coder (`rcc_*_s`) and the rANS coding
    of the step codes (`entropy_*_s`); the rest is the codec's own arithmetic. The last cut is denoised both ways:
    the probability-flow ODE (`denoise_s`, the default decode) and the one-step posterior mean (`mean_s`).
    """
    from cod_diffc.diffc import index_coding

    simulator = default_simulator()
    clocks = {
        "rcc_encode": CallClock(simulator, "encode", adapter.device),
        "rcc_decode": CallClock(simulator, "decode", adapter.device),
        "network": CallClock(adapter, "predict_x0_and_epsilon", adapter.device),
        "entropy_decode": CallClock(index_coding, "decode_step_codes", adapter.device),
    }
    if hasattr(index_coding, "StepCodeWriter"):  # the encoder codes step by step, and whole cuts only near a target
        clocks["entropy_append"] = CallClock(index_coding.StepCodeWriter, "append", adapter.device)
        clocks["entropy_encode"] = CallClock(index_coding.StepCodeWriter, "to_bytes", adapter.device)
    else:  # an earlier tree (--compare-tree) re-coded every cut in full
        clocks["entropy_encode"] = CallClock(index_coding, "encode_step_codes", adapter.device)
    try:
        start = clock(adapter.device)
        points = encode(image, adapter, target_bpp=target_bpp, simulator=simulator, progress=False).points
        encode_s = clock(adapter.device) - start
        network_encode_s, clocks["network"].seconds = clocks["network"].seconds, 0.0
        start = clock(adapter.device)
        decoded = decode(points[-1].stream, adapter, simulator=simulator, progress=False)
        decode_s = clock(adapter.device) - start
        network_decode_s, clocks["network"].seconds = clocks["network"].seconds, 0.0
        start = clock(adapter.device)
        latent = denoise(
            decoded.latent,
            decoded.t,
            adapter,
            decoded.condition,
            decoded.stream.denoise_guidance_scale,
            progress=False,
        )
        reconstruction = adapter.decode_latent(latent)
        denoise_s = clock(adapter.device) - start
        start = clock(adapter.device)
        mean = adapter.decode_latent(
            denoise(decoded.latent, decoded.t, adapter, decoded.condition, 1.0, 1, progress=False)
        )
        mean_s = clock(adapter.device) - start
    finally:
        for call_clock in clocks.values():
            call_clock.restore()
    row = {
        "bytes": [len(point.stream) for point in points],
        "bpp": [point.bpp for point in points],
        "stop_steps": [point.stop_step for point in points],
        "psnr": psnr(to_uint8(image), to_uint8(reconstruction)),
        "psnr_mean": psnr(to_uint8(image), to_uint8(mean)),
        "encode_s": encode_s,
        "network_encode_s": network_encode_s,
        "rcc_encode_s": clocks["rcc_encode"].seconds,
        "entropy_encode_s": sum(
            clocks[name].seconds for name in ("entropy_encode", "entropy_append") if name in clocks
        ),
        "decode_s": decode_s,
        "network_decode_s": network_decode_s,
        "rcc_decode_s": clocks["rcc_decode"].seconds,
        "entropy_decode_s": clocks["entropy_decode"].seconds,
        "denoise_s": denoise_s,
        "mean_s": mean_s,
        "stream_sha256": hashlib.sha256(points[-1].stream).hexdigest(),
    }
    if image_path is not None:
        with tempfile.TemporaryDirectory() as folder:
            row["io_s"] = time_io(image_path, reconstruction, points[-1].stream, Path(folder))
    return row


def time_io(image_path: Path, image: torch.Tensor, stream: bytes, folder: Path) -> float:
    """Seconds of what the command line adds around the codec: reading the image file, writing and reading the
    stream file, writing the PNG."""
    start = time.perf_counter()
    load_image(image_path)
    atomic_write(folder / "stream.cdc", stream)
    (folder / "stream.cdc").read_bytes()
    save_image(folder / "decoded.png", image)
    return time.perf_counter() - start


TIMED_FIELDS = (
    "encode_s",
    "network_encode_s",
    "rcc_encode_s",
    "entropy_encode_s",
    "decode_s",
    "network_decode_s",
    "rcc_decode_s",
    "entropy_decode_s",
    "denoise_s",
    "mean_s",
    "io_s",
)


def median_row(runs: list[dict], **fields) -> dict:
    """Medians of the timings over `runs`, with the rates of the first run and `fields`."""
    row = {**fields, **{key: runs[0][key] for key in ("bytes", "bpp", "stop_steps")}}
    for key in TIMED_FIELDS:
        if key in runs[0]:
            row[key] = statistics.median(run[key] for run in runs)
    row["compress_plus_decompress_s"] = row["encode_s"] + row["decode_s"] + row["denoise_s"] + row.get("io_s", 0.0)
    row["compress_plus_mean_decompress_s"] = row["encode_s"] + row["decode_s"] + row["mean_s"] + row.get("io_s", 0.0)
    return row


_BACKBONES: dict = {}


def embedded_run(image_name: str, size: int, device: str, dtype: torch.dtype) -> dict:
    """`time_codec` and `time_io` of the embedded model on one Kodak centre crop (the model loads once per process,
    outside the clocks)."""
    if "embedded" not in _BACKBONES:
        _BACKBONES["embedded"] = load_backbone("cod", device=device, dtype=dtype)
    adapter = _BACKBONES["embedded"]
    image = kodak_centre_crop(image_name, size)
    return time_codec(adapter, image, KODAK_TARGET_BPP, image_path=KODAK / f"{image_name}.png")


def run_in_tree(tree: Path | None, image_name: str, size: int, args: argparse.Namespace) -> dict:
    """[`embedded_run`] in a fresh process importing `cod_diffc` from `tree` (a checkout of another commit), or from
    the checkout this script belongs to when `tree` is None."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT if tree is None else tree), env.get("PYTHONPATH", "")])
    command = [sys.executable, __file__, "--worker", image_name, str(size), "--device", args.device]
    output = subprocess.run(command + ["--dtype", args.dtype], env=env, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def commit_of(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def print_row(label: str, row: dict) -> None:
    print(
        f"{label} {row['model']} {row['image_size']}x{row['image_size']} at {row['bpp'][-1]:.4f} bpp: encode "
        f"{row['encode_s']:.1f} s (network {row.get('network_encode_s', float('nan')):.1f}, coder "
        f"{row['rcc_encode_s']:.1f}, rANS {row.get('entropy_encode_s', float('nan')):.2f}), replay "
        f"{row['decode_s']:.1f} s (network {row.get('network_decode_s', float('nan')):.1f}, coder "
        f"{row['rcc_decode_s']:.1f}), denoise {row['denoise_s']:.1f} s (mean decode {row.get('mean_s', 0):.1f} s), "
        f"I/O {row.get('io_s', 0):.2f} s; in all {row['compress_plus_decompress_s']:.1f} s "
        f"({row['compress_plus_mean_decompress_s']:.1f} s with --decode mean)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = parser.add_mutually_exclusive_group()
    models.add_argument("--embedded", action="store_true", help="time the embedded model on Kodak crops")
    models.add_argument(
        "--released", action="store_true", help="time the released-size cod-pixel-xl (random weights) on Kodak crops"
    )
    models.add_argument("--worker", nargs=2, metavar=("IMAGE", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="where the network and the coder run (default: cpu)")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="the network's precision"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[512], help="crop sides of --embedded (default 512)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="with --embedded: time every image this many times (medians over all)"
    )
    parser.add_argument(
        "--compare-tree",
        type=Path,
        help="with --embedded: a checkout of an earlier commit (e.g. `git worktree add /tmp/before COMMIT`), timed "
        "side by side, image by image, in separate processes",
    )
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)

    if args.worker is not None:
        print(json.dumps(embedded_run(args.worker[0], int(args.worker[1]), args.device, dtype)))
        return
    if args.embedded or args.released:
        require_kodak()  # before building a model, not after
    rows = []
    extra = {}
    if args.embedded:
        trees = {"this": None, **({"before": args.compare_tree} if args.compare_tree is not None else {})}
        extra["trees"] = {label: commit_of(tree or ROOT) for label, tree in trees.items()}
        for size in args.sizes:
            runs: dict[str, list[dict]] = {label: [] for label in trees}
            for _ in range(args.repeat):
                for name in KODAK_IMAGES:
                    for label, tree in trees.items():  # interleaved, so both see the same machine load
                        runs[label].append(run_in_tree(tree, name, size, args))
            for label in trees:
                fields = {"tree": label, "model": DEFAULT_EMBEDDED_MODEL, "image_size": size, "images": KODAK_IMAGES}
                rows.append(median_row(runs[label], target_bpp=KODAK_TARGET_BPP, per_image=runs[label], **fields))
            if "before" in trees:
                same = [a["stream_sha256"] == b["stream_sha256"] for a, b in zip(runs["this"], runs["before"])]
                extra.setdefault("same_streams", {})[str(size)] = all(same)
                this, before = rows[-2], rows[-1]
                extra.setdefault("ratios_this_over_before", {})[str(size)] = {
                    key: this[key] / before[key] for key in ("encode_s", "decode_s", "compress_plus_decompress_s")
                }
        results = ROOT / "results" / "codec_time_embedded.json"
    elif args.released:
        adapter = random_backbone("cod-pixel-xl", args.device, dtype)
        runs = [time_codec(adapter, kodak_centre_crop(name, 512), KODAK_TARGET_BPP) for name in KODAK_IMAGES]
        rows.append(
            median_row(
                runs,
                model="cod-pixel-xl",
                image_size=512,
                images=KODAK_IMAGES,
                target_bpp=KODAK_TARGET_BPP,
                per_image=runs,
            )
        )
        results = ROOT / "results" / "codec_time_released.json"
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
        print_row(row.get("tree", ""), row)
    for size, ratios in extra.get("ratios_this_over_before", {}).items():
        print(f"{size}x{size}: this / before = " + ", ".join(f"{key} {value:.2f}" for key, value in ratios.items()))
    machine = {
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
        "dtype": args.dtype,
    }
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps({"machine": machine, **extra, "results": rows}, indent=1) + "\n")
    print(f"wrote {results}")


if __name__ == "__main__":
    main()
