"""Benchmark of DiffC's reverse-channel coders on the reference's synthetic problems.

Runs the plain [`ChunkedPFRSimulator`] and the pooled [`PooledPFRSimulator`] (at the plain coder's operating point
and at high-fidelity ones) on `shared/reference/rcc/measured_reference_coder.md` Part B plus a pixel-space step
(3 x 512 x 512): q = N(mu, I_d) against p = N(0, I_d) with mu a random direction scaled to the KL, and writes
`results/rcc.json`, one row per (simulator, problem), the operating point in the row:

- `bits_per_kl`: real rANS bytes x 8 / KL, the `repetitions` steps of a problem coded as one stream (as DiffC codes
  consecutive steps), so it includes the `kl_code` symbols and the stream's final state;
- `zipf_bits_per_kl`: ideal Zipf code length of the indices alone / KL (the reference's "ratio to KL");
- `projection`: mean <z, mu> / |mu|^2 of the sent sample (1.0 without truncation bias), `projection_sem` its
  standard error over the repetitions (None for one repetition);
- `encode_s`, `decode_s`: medians over the repetitions; `first_encode_s` (pooled): the first encode of the process,
  which also builds the Gaussian pool; `load_average`: the machine's 1-minute load when the row finished (other
  processes on a shared machine slow every timing).

- `candidate_coordinates_per_s`: the candidate coordinates a step scores (`sum_c K_c * d_c`) / `encode_s`.

Usage: `python benchmarks/rcc.py` (about 4 minutes on 2 CPU cores; plain-coder problems that would not fit its
time budget are skipped with a note). Each coder runs with torch's thread count or one thread, whichever is faster
on the (possibly shared) machine: the plain coder by its generator's throughput, the pooled one per problem.
`python benchmarks/rcc.py --device cuda` runs the same problems on a GPU (timings synchronise the device) and writes
`results/rcc_cuda.json`.
"""

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import torch
from timing import clock

from cod_diffc.codecs.randomness import CounterGenerator, derive_key
from cod_diffc.diffc.channel import ChunkedChannelSimulator, ChunkedPFRSimulator
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.diffc.index_coding import encode_step_codes, ideal_index_bits


ROOT = Path(__file__).resolve().parents[1]
REFERENCE_JSON = ROOT.parent / "shared" / "reference" / "rcc" / "measured_reference_coder.json"
RESULTS_JSON = ROOT / "results" / "rcc.json"
# (dim, KL bits, repetitions): Part B of the reference measurements, fewer repetitions for the slow plain coder.
PLAIN_PROBLEMS = [(16384, 10, 3), (16384, 100, 2), (16384, 1000, 2), (16384, 5000, 1), (24576, 300, 1)]
PIXEL_PROBLEM = (3 * 512 * 512, 300)
PLAIN_TIME_BUDGET_S = 200.0
POOLED_REPETITIONS = 10
PIXEL_REPETITIONS = 3
# (max_chunk_bits, padding_bits): the plain coder's operating point, then high-fidelity ones (more padding or K),
# and a smaller candidate set for pixel space (scoring costs 2**max_chunk_bits * dim multiply-adds).
POOLED_OPERATING_POINTS = [(16, 2), (16, 8), (18, 8), (15, 2)]


def random_mu(dim: int, kl_bits: float, seed: int) -> torch.Tensor:
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return direction / direction.norm() * math.sqrt(2.0 * math.log(2.0) * kl_bits)


def candidate_coordinates(simulator: ChunkedChannelSimulator, dim: int, kl_bits: float) -> int:
    """Candidate coordinates one encode generates: sum over chunks of K_c * d_c."""
    layout = simulator.layout(simulator.kl_code_for(kl_bits, dim))
    base_dim, num_long = divmod(dim, layout.num_chunks)
    return sum(
        2 ** layout.candidate_bits(chunk) * (base_dim + (chunk < num_long)) for chunk in range(layout.num_chunks)
    )


def normals_per_second(device: torch.device) -> float:
    generator = CounterGenerator(b"calibration", device)
    rows = torch.arange(2048, device=device)
    generator.normal(torch.zeros_like(rows), rows, 32)
    start = clock(device)
    for stream in range(8):
        generator.normal(torch.full_like(rows, stream), rows, 32)
    return 8 * 2048 * 32 / (clock(device) - start)


def run_problem(
    simulator: ChunkedChannelSimulator, dim: int, kl_bits: float, repetitions: int, device: torch.device
) -> dict:
    """Encodes and decodes `repetitions` steps of one problem (new mu and key each) and codes them as one stream."""
    codes, projections, encode_times, decode_times, decode_exact = [], [], [], [], True
    for repetition in range(repetitions):
        mu = random_mu(dim, kl_bits, seed=repetition)
        key = derive_key(b"rcc-benchmark", dim, int(kl_bits), repetition)
        mu_on_device = mu.to(device)
        start = clock(device)
        code, sample = simulator.encode(mu_on_device, key)
        encode_times.append(clock(device) - start)
        start = clock(device)
        decoded = simulator.decode(code, dim, key, device)
        decode_times.append(clock(device) - start)
        decode_exact &= torch.equal(decoded, sample)
        codes.append(code)
        projections.append((sample.cpu().double() @ mu / mu.square().sum()).item())
    layout = simulator.layout(codes[0].kl_code)
    stream = encode_step_codes(codes, simulator)
    index_bits = sum(ideal_index_bits(simulator.layout(code.kl_code), code.indices) for code in codes)
    return {
        "method": simulator.method,
        "dim": dim,
        "kl_bits": kl_bits,
        "bits_per_kl": 8 * len(stream) / (repetitions * kl_bits),
        "zipf_bits_per_kl": index_bits / (repetitions * kl_bits),
        "fixed_length_bits_per_kl": sum(layout.candidate_bits(chunk) for chunk in range(layout.num_chunks)) / kl_bits,
        "projection": statistics.fmean(projections),
        "projection_sem": statistics.stdev(projections) / math.sqrt(repetitions) if repetitions > 1 else None,
        "encode_s": statistics.median(encode_times),
        "decode_s": statistics.median(decode_times),
        "candidate_coordinates_per_s": candidate_coordinates(simulator, dim, kl_bits)
        / statistics.median(encode_times),
        "decode_exact": decode_exact,
        "num_chunks": layout.num_chunks,
        "chunk_bits": sorted({layout.candidate_bits(chunk) for chunk in range(layout.num_chunks)}),
        "stream_bytes": len(stream),
        "max_chunk_bits": simulator.max_chunk_bits,
        "padding_bits": simulator.padding_bits,
        "pool_width": getattr(simulator, "pool_width", None),
        "repetitions": repetitions,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }


def run_pooled(
    simulator: PooledPFRSimulator,
    dim: int,
    kl_bits: float,
    repetitions: int,
    thread_counts: list[int],
    device: torch.device,
) -> dict:
    """[`run_problem`] with the faster of `thread_counts` (one timed encode each), after a first encode that builds
    the process's Gaussian pool (reported as `first_encode_s`)."""
    mu = random_mu(dim, kl_bits, seed=-1).to(device)
    key = derive_key(b"rcc-benchmark-warmup", dim, int(kl_bits))
    start = clock(device)
    simulator.encode(mu, key)
    first_encode_s = clock(device) - start
    previous, encode_s = torch.get_num_threads(), {}
    for num_threads in thread_counts:
        torch.set_num_threads(num_threads)
        start = clock(device)
        simulator.encode(mu, key)
        encode_s[num_threads] = clock(device) - start
    torch.set_num_threads(min(encode_s, key=encode_s.get))
    try:
        return {**run_problem(simulator, dim, kl_bits, repetitions, device), "first_encode_s": first_encode_s}
    finally:
        torch.set_num_threads(previous)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="where the coders run (default: cpu)")
    device = torch.device(parser.parse_args().device)
    results_json = RESULTS_JSON if device.type == "cpu" else RESULTS_JSON.with_name(f"rcc_{device.type}.json")
    plain = ChunkedPFRSimulator(max_chunk_bits=16, padding_bits=2)
    # The reference coder's figures sit beside the project (../shared); without them the rows carry ours only.
    reference_rows = json.loads(REFERENCE_JSON.read_text())["part_b"] if REFERENCE_JSON.is_file() else []
    if not reference_rows:
        print(f"note: {REFERENCE_JSON} not found: no reference columns")
    reference = {(row["dim"], row["kl_bits_analytic"]): row for row in reference_rows}
    # On a shared machine a busy core can make multi-threaded kernels far slower than one thread: use the faster
    # (for the plain coder by its generator's throughput, for the pooled one per problem).
    thread_counts = sorted({1, torch.get_num_threads()}) if device.type == "cpu" else [torch.get_num_threads()]
    throughputs = {}
    for num_threads in thread_counts:
        torch.set_num_threads(num_threads)
        throughputs[num_threads] = normals_per_second(device)
    num_threads, throughput = max(throughputs.items(), key=lambda item: item[1])
    torch.set_num_threads(num_threads)
    print(f"torch threads {num_threads}, generator ~{throughput / 1e6:.0f} M normals/s")

    rows = []
    for max_chunk_bits, padding_bits in POOLED_OPERATING_POINTS:
        pooled = PooledPFRSimulator(max_chunk_bits=max_chunk_bits, padding_bits=padding_bits)
        if (max_chunk_bits, padding_bits) == (plain.max_chunk_bits, plain.padding_bits):
            problems = [(dim, kl_bits, POOLED_REPETITIONS) for dim, kl_bits, _ in PLAIN_PROBLEMS]
            problems.append((*PIXEL_PROBLEM, PIXEL_REPETITIONS))
        elif max_chunk_bits < plain.max_chunk_bits:
            problems = [(16384, 1000, POOLED_REPETITIONS), (*PIXEL_PROBLEM, PIXEL_REPETITIONS)]
        else:
            problems = [(16384, 1000, POOLED_REPETITIONS)]
        for dim, kl_bits, repetitions in problems:
            rows.append(run_pooled(pooled, dim, kl_bits, repetitions, thread_counts, device))
            print(f"{pooled!r}: dim {dim}, KL {kl_bits}: encode {rows[-1]['encode_s']:.3f} s")

    deadline = time.perf_counter() + PLAIN_TIME_BUDGET_S
    for dim, kl_bits, repetitions in [*PLAIN_PROBLEMS, (*PIXEL_PROBLEM, 1)]:
        estimate_s = 1.3 * repetitions * candidate_coordinates(plain, dim, kl_bits) / throughput
        if time.perf_counter() + estimate_s > deadline:
            print(f"{plain!r}: skipping dim {dim}, KL {kl_bits}: ~{estimate_s:.0f} s exceeds the time budget")
            continue
        rows.append(run_problem(plain, dim, kl_bits, repetitions, device))
        print(f"{plain!r}: dim {dim}, KL {kl_bits}: encode {rows[-1]['encode_s']:.3f} s")

    results_json.parent.mkdir(parents=True, exist_ok=True)
    results_json.write_text(json.dumps(rows, indent=1) + "\n")

    header = (
        f"{'method':>11} {'bits':>4} {'pad':>3} {'dim':>6} {'KL':>5} {'reps':>4} {'chunks':>6} | {'bits/KL':>7} "
        f"{'zipf/KL':>7} {'ref zipf/KL':>11} | {'proj':>5} {'sem':>5} {'ref proj':>8} | {'enc s':>6} "
        f"{'ref enc s':>9} | {'dec s':>6} {'ref dec s':>9} | exact"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ref = reference.get((row["dim"], row["kl_bits"]), {})
        sem = f"{row['projection_sem']:>5.3f}" if row["projection_sem"] is not None else f"{'-':>5}"
        print(
            f"{row['method']:>11} {row['max_chunk_bits']:>4} {row['padding_bits']:>3} {row['dim']:>6} "
            f"{row['kl_bits']:>5} {row['repetitions']:>4} {row['num_chunks']:>6} | {row['bits_per_kl']:>7.3f} "
            f"{row['zipf_bits_per_kl']:>7.3f} {ref.get('overhead_ratio', math.nan):>11.3f} | "
            f"{row['projection']:>5.3f} {sem} {ref.get('proj', math.nan):>8.3f} | {row['encode_s']:>6.2f} "
            f"{ref.get('encode_s', math.nan):>9.2f} | {row['decode_s']:>6.3f} {ref.get('decode_s', math.nan):>9.3f} | "
            f"{row['decode_exact']}"
        )
    print(f"wrote {results_json.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
