"""The first run on a GPU, in one script: does the library work there, is it fast, and do its streams cross devices?

Runs from a plain copy of the working tree on a machine whose torch is not ours (nothing installed, nothing read from
outside the tree), in a few minutes, and writes everything it measured to `OUTPUT/gpu_check.json`:

    python benchmarks/gpu_check.py --device cuda --output results/gpu_check        # 512x512, released-size model
    python benchmarks/gpu_check.py --device cpu --quick --output /tmp/gpu_check    # 64x64, tiny model (CI runs it)

Checks, each recorded with its figures and `ok` (the script exits 1 if any failed, after running them all):

- `import`: the package imports (version, torch, device name, seconds);
- `round_trip_diffc`, `round_trip_turbo-ddcm`: the embedded model compresses the sample image on the device and
  decompresses it there (bytes, bpp, PSNR, seconds); the same image compressed again gives the same bytes; the
  stream decodes on the CPU too, to the same picture within float rounding (PSNR between the two decodes);
- `coder_step`: the DiffC reverse channel coder alone, median seconds per step at the latent's size;
- `released_forward`: one forward pass of the released-size CoD transformer with random weights (`cod-pixel-xl`;
  `cod-pixel-tiny` with `--quick`) in float32 and bfloat16.

GPU timings synchronise before every clock read. See docs/gpu.md.
"""

import argparse
import importlib.resources
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # a plain copy of the tree imports without installation

import torch  # noqa: E402
from timing import clock  # noqa: E402  (benchmarks/timing.py: GPU clocks wait for the device)


def check_import(device: torch.device) -> dict:
    start = time.perf_counter()
    import cod_diffc
    from cod_diffc.codecs.devices import check_codec_device

    check_codec_device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "version": cod_diffc.__version__,
        "torch": torch.__version__,
        "device_name": name,
        "seconds": time.perf_counter() - start,
        "ok": True,
    }


def sample_image(size: int) -> torch.Tensor:
    """The packaged sample photograph as a `(1, 3, size, size)` centre square."""
    from cod_diffc.image_files import centre_square, load_image

    return centre_square(load_image(Path(str(importlib.resources.files("cod_diffc") / "assets" / "sample.png"))), size)


def check_round_trip(
    codec_name: str, device: torch.device, size: int, target_bpp: float, backbones: dict, quick: bool
) -> dict:
    from cod_diffc.codecs import load_codec
    from cod_diffc.diffc import DiffCSchedule
    from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
    from cod_diffc.evaluation.metrics import psnr, to_uint8

    # --quick: a small candidate pool and a short schedule, so that the CPU run takes seconds.
    settings = {"simulator": PooledPFRSimulator(max_chunk_bits=10), "schedule": DiffCSchedule(num_steps=32)}
    codec = load_codec(codec_name, **(settings if quick and codec_name == "diffc" else {}))
    image, denoise_steps = sample_image(size).to(device), 4 if quick else 25
    adapter, cpu_adapter = backbones[device.type], backbones["cpu"]
    start = clock(device)
    stream = codec.compress(image, adapter, target_bpp=target_bpp, progress=False)
    compress_s = clock(device) - start
    decoded = codec.decompress(stream, adapter, num_denoise_steps=denoise_steps, progress=False)
    decompress_s = clock(device) - start - compress_s
    again = codec.compress(image, adapter, target_bpp=target_bpp, progress=False)
    on_cpu = codec.decompress(stream, cpu_adapter, num_denoise_steps=denoise_steps, progress=False)
    original, reconstruction, cpu_reconstruction = (to_uint8(x.cpu()) for x in (image, decoded, on_cpu))
    identical = bool((reconstruction == cpu_reconstruction).all())
    cross_device_psnr = float("inf") if identical else psnr(reconstruction, cpu_reconstruction)
    return {
        "bytes": len(stream),
        "bpp": 8 * len(stream) / size**2,
        "psnr": psnr(original, reconstruction),
        "compress_s": compress_s,
        "decompress_s": decompress_s,
        "same_bytes_twice": again == stream,
        "cpu_decode_identical": identical,
        "cpu_decode_psnr_against_device_decode": None if identical else cross_device_psnr,  # JSON has no infinity
        "ok": again == stream and cross_device_psnr > 40.0,
    }


def check_coder_step(device: torch.device, dim: int, repetitions: int) -> dict:
    from cod_diffc.codecs.randomness import derive_key
    from cod_diffc.diffc.codec import default_simulator

    simulator = default_simulator()  # the coder DiffC uses by default, whatever --quick says
    seconds = {}
    for kl_bits in (100.0, 1000.0):
        mu = torch.randn(dim, device=device, generator=torch.Generator(device).manual_seed(0))
        mu *= (2 * kl_bits * 0.6931471805599453) ** 0.5 / mu.norm()
        simulator.encode(mu, derive_key(0, "warm-up"))  # builds the candidate pool once
        times = []
        for repetition in range(repetitions):
            start = clock(device)
            simulator.encode(mu, derive_key(repetition, "step"))
            times.append(clock(device) - start)
        seconds[f"kl_{kl_bits:g}_bits_s"] = statistics.median(times)
    return {"dim": dim, "coder": repr(simulator), **seconds, "ok": True}


def check_released_forward(device: torch.device, name: str, size: int) -> dict:
    from cod_diffc import CodPipeline

    torch.manual_seed(0)
    transformer = CodPipeline.from_named_config(name).transformer.to(device).eval()
    result = {"model": name, "parameters": sum(p.numel() for p in transformer.parameters()), "size": size}
    grid = size // transformer.config.patch_size
    for dtype in (torch.float32, torch.bfloat16):
        transformer.to(dtype=dtype)
        sample = torch.randn(1, transformer.config.in_channels, size, size, device=device, dtype=dtype)
        condition = torch.randn(1, transformer.config.hidden_size, grid, grid, device=device, dtype=dtype)
        with torch.no_grad():
            transformer(sample, torch.tensor(0.5, device=device), condition)  # warm-up
            start = clock(device)
            velocity = transformer(sample, torch.tensor(0.5, device=device), condition).sample
            result[f"{str(dtype).removeprefix('torch.')}_s"] = clock(device) - start
        result[f"{str(dtype).removeprefix('torch.')}_finite"] = bool(torch.isfinite(velocity).all())
    result["ok"] = result["float32_finite"] and result["bfloat16_finite"]
    del transformer
    return result


def run_check(name: str, function: Callable[[], dict], report: dict) -> None:
    print(f"{name} ...", flush=True)
    try:
        report[name] = function()
    except Exception as error:  # a failed check is recorded and the others still run
        report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    print(f"{name}: {json.dumps({k: v for k, v in report[name].items() if k != 'traceback'})}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="device to check (default: cuda)")
    parser.add_argument("--quick", action="store_true", help="64x64 image, tiny model: a minute on a CPU")
    parser.add_argument("--output", type=Path, required=True, help="folder for gpu_check.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    size, target_bpp = (64, 0.5) if args.quick else (512, 0.05)
    report: dict = {"command": " ".join(sys.argv), "quick": args.quick, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    run_check("import", lambda: check_import(device), report)
    backbones: dict = {}
    if report["import"]["ok"]:
        from cod_diffc.backbones import load_backbone

        backbones = {kind: load_backbone("cod", device=kind) for kind in {"cpu", device.type}}
        for codec_name in ("diffc", "turbo-ddcm"):
            run_check(
                f"round_trip_{codec_name}",
                lambda codec_name=codec_name: check_round_trip(
                    codec_name, device, size, target_bpp, backbones, args.quick
                ),
                report,
            )
        dim = backbones["cpu"].latent_shape(size, size)
        run_check(
            "coder_step", lambda: check_coder_step(device, dim[0] * dim[1] * dim[2], 3 if args.quick else 10), report
        )
    forward = ("cod-pixel-tiny", 64) if args.quick else ("cod-pixel-xl", 512)
    run_check("released_forward", lambda: check_released_forward(device, *forward), report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    failed = [name for name, check in report.items() if isinstance(check, dict) and not check.get("ok", True)]
    print(f"wrote {args.output / 'gpu_check.json'}; " + (f"FAILED: {', '.join(failed)}" if failed else "all ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
