"""Every codec against the rate-distortion bounds of Gaussian data, where they are known in closed form.

    python benchmarks/gaussian_theory.py [--side 64] [--std 0.3] [--rates 0.1 0.25 0.5 1 2] [-o results/gaussian_theory]
    python benchmarks/gaussian_theory.py --backbone gaussian-vp --prediction-type v_prediction -o ...

A `3 x side x side` latent of N(0, std**2) coordinates is coded by each codec on the `gaussian` backbone (the exact
denoiser of that data, on CoD's flow path) or the `gaussian-vp` one (the same denoiser through Stable Diffusion's
discrete-VP path, epsilon or v) at each rate in bits per coordinate, every byte of the file counted; each file is
decoded to its noisy latent and denoised both ways (the one-step posterior mean and the probability-flow ODE), and
the squared error is measured on the latent itself (no clamping to an image). Reported per point: the rate overhead over
Shannon's bound for the mean decode and over DiffC-F's bound for the flow decode
([`~cod_diffc.evaluation.gaussian_bounds`]), and for DiffC where the bits go: the header, the file's bits over the
summed step KL, the summed KL over `I(X; Z_t)` at the time reached, and the mean decode's distortion excess over an
exact sample of `z_t` at that time. Writes `gaussian_theory.json` and `rd.png` (the points and the three bounds).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import torch

from cod_diffc.backbones.gaussian import GaussianBackbone, GaussianVPBackbone
from cod_diffc.backbones.sampling import denoise
from cod_diffc.codecs import Codec, load_codec
from cod_diffc.diffc import DiffCCodec, encode
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.evaluation import gaussian_bounds as bounds


ROOT = Path(__file__).resolve().parents[1]
FLOW_STEPS = 50


def codecs() -> dict[str, Codec]:
    """The codecs measured: DiffC with each built-in channel coder at its default operating point, Turbo-DDCM, DDCM."""
    return {
        "diffc (pooled)": DiffCCodec(simulator=PooledPFRSimulator(max_chunk_bits=15)),
        "diffc (plain)": DiffCCodec(simulator=ChunkedPFRSimulator(max_chunk_bits=15)),
        "turbo-ddcm": load_codec("turbo-ddcm"),
        "ddcm": load_codec("ddcm"),
    }


def finite(value: float) -> float | None:
    """`value`, or `None` (JSON's null) where it is infinite: a point no better than sending nothing."""
    return value if math.isfinite(value) else None


def measure(codec: Codec, adapter: GaussianBackbone, latent: torch.Tensor, rates: list[float]) -> list[dict]:
    """Each rate's point: bits per coordinate, both decodes' squared error and their overheads over the bounds."""
    image = (latent + 1) / 2  # the backbone's encode_image inverts this exactly (patch 1)
    dimensions = latent.numel()
    coded = codec.compress_many(
        image, adapter, target_bpps=[rate * 3 for rate in rates], clamp_targets=True, progress=False
    )
    rows = []
    for rate, point in zip(rates, coded):
        decoded = codec.decompress_latent(point.stream, adapter, progress=False)
        t = torch.tensor(decoded.t)
        mean = adapter.predict_x0_and_epsilon(decoded.latent, t, decoded.condition, 1.0)[0]
        flow = denoise(decoded.latent, decoded.t, adapter, decoded.condition, 1.0, FLOW_STEPS, progress=False)
        bits = 8 * len(point.stream) / dimensions
        mse_mean, mse_flow = (float((estimate - latent).square().mean()) for estimate in (mean, flow))
        rows.append(
            {
                "target_bits_per_coordinate": rate,
                "bits_per_coordinate": bits,
                "setting": point.setting,
                "t": decoded.t,
                "mse_mean": mse_mean,
                "mse_flow": mse_flow,
                "overhead_mean_over_shannon": finite(
                    bounds.rate_overhead(bits, bounds.shannon_rate(mse_mean, adapter.std))
                ),
                "overhead_flow_over_diffc_f": finite(
                    bounds.rate_overhead(bits, bounds.flow_rate(mse_flow, adapter.std))
                ),
            }
        )
    return rows


def diffc_decomposition(adapter: GaussianBackbone, latent: torch.Tensor, rates: list[float]) -> list[dict]:
    """Where DiffC's bits go at each rate (default coder): header, bits / summed KL, summed KL / I(X; Z_t), and the
    distortion excess (dB) of the mean decode over an exact sample at the time reached."""
    dimensions = latent.numel()
    result = encode(
        (latent + 1) / 2, adapter, target_bpp=[3 * rate for rate in rates], clamp_targets=True, progress=False
    )
    header_bytes = len(result.stream(0))
    rows = []
    for rate, point in zip(rates, result.points):
        alpha, sigma = (float(c) for c in adapter.alpha_sigma(torch.tensor(point.t, dtype=torch.float64)))
        information = bounds.mutual_information_bits(alpha, sigma, adapter.std) * dimensions
        mean = adapter.predict_x0_and_epsilon(point.latent, torch.tensor(point.t), result.condition, 1.0)[0]
        mse = float((mean - latent).square().mean())
        rows.append(
            {
                "target_bits_per_coordinate": rate,
                "stop_step": point.stop_step,
                "header_bytes": header_bytes,
                # undefined (None) for a file that codes no step
                "file_bits_over_kl": 8 * len(point.stream) / point.kl_bits if point.kl_bits else None,
                "kl_over_information": point.kl_bits / information if point.stop_step else None,
                "file_bits_over_information": 8 * len(point.stream) / information if point.stop_step else None,
                "distortion_excess_db": 10 * math.log10(mse / adapter.posterior_mse(point.t)),
            }
        )
    return rows


def plot(results: dict[str, list[dict]], std: float, path: Path) -> None:
    """Distortion (dB below the variance) against bits per coordinate: the points and the three bounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = [r / 100 for r in range(1, 301)]
    figure, axis = plt.subplots(figsize=(7, 5))
    for name, distortion in [
        ("Shannon", bounds.shannon_distortion),
        ("DiffC-F (flow)", bounds.flow_distortion),
        ("DiffC-A (ancestral)", bounds.ancestral_distortion),
    ]:
        axis.plot(rates, [10 * math.log10(std**2 / distortion(r, std)) for r in rates], "--", label=f"bound: {name}")
    for name, rows in results.items():
        for decode, marker in (("mean", "o"), ("flow", "s")):
            xs = [row["bits_per_coordinate"] for row in rows]
            ys = [10 * math.log10(std**2 / row[f"mse_{decode}"]) for row in rows]
            axis.plot(xs, ys, marker=marker, label=f"{name}, {decode} decode")
    axis.set_xlabel("bits per coordinate (whole file)")
    axis.set_ylabel("SNR: 10 log10(s² / MSE) (dB)")
    axis.set_title(f"Gaussian data, s = {std}")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=64, help="latent side (3 x side x side coordinates)")
    parser.add_argument("--std", type=float, default=0.3, help="standard deviation of the data")
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0, 2.0], help="bits/coordinate")
    parser.add_argument("--backbone", choices=("gaussian", "gaussian-vp"), default="gaussian")
    parser.add_argument("--prediction-type", default="epsilon", help="gaussian-vp: epsilon, v_prediction or sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "results" / "gaussian_theory")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    if args.backbone == "gaussian":
        adapter = GaussianBackbone(std=args.std)
    else:
        adapter = GaussianVPBackbone(std=args.std, prediction_type=args.prediction_type)
    latent = args.std * torch.randn(1, 3, args.side, args.side)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    results = {}
    for name, codec in codecs().items():
        results[name] = measure(codec, adapter, latent, args.rates)
        for row in results[name]:
            overheads = [row["overhead_mean_over_shannon"], row["overhead_flow_over_diffc_f"]]
            mean, flow = ("n/a" if value is None else f"{value:+.0%}" for value in overheads)
            rate = row["bits_per_coordinate"]
            print(f"{name:15s} {rate:.3f} bit: {mean} over Shannon (mean), {flow} over DiffC-F (flow)")
    record = {
        "command": "python benchmarks/gaussian_theory.py " + " ".join(sys.argv[1:]),
        "arguments": vars(args) | {"output": str(args.output)},
        "commit": commit.stdout.strip(),
        "date": time.strftime("%Y-%m-%d"),
        "points": results,
        "diffc_decomposition": diffc_decomposition(adapter, latent, args.rates),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "gaussian_theory.json").write_text(json.dumps(record, indent=1) + "\n")
    plot(results, args.std, args.output / "rd.png")
    print(f"wrote {args.output}/gaussian_theory.json and rd.png")


if __name__ == "__main__":
    main()
