"""Benchmark of DiffC's reverse-channel coder on the reference's synthetic problems.

Runs [`ChunkedPFRSimulator`] on `shared/reference/rcc/measured_reference_coder.md` Part B: q = N(mu, I_d) against
p = N(0, I_d) with mu a random direction scaled to the KL, and writes `results/rcc.json`, one row per problem:

- `bits_per_kl`: real rANS bytes x 8 / KL, the `repetitions` steps of a problem coded as one stream (as DiffC codes
  consecutive steps), so it includes the `kl_code` symbols and the stream's final state;
- `zipf_bits_per_kl`: ideal Zipf code length of the indices alone / KL (the reference's "ratio to KL");
- `projection`: mean <z, mu> / |mu|^2 of the sent sample (1.0 without truncation bias);
- `encode_s`, `decode_s`: medians over the repetitions.

Usage: `python benchmarks/rcc.py` (about 3 minutes on 2 CPU cores; problems that would not fit the time budget
are skipped with a note). It runs with torch's thread count or one thread, whichever generates faster.
"""

import json
import math
import statistics
import time
from pathlib import Path

import torch

from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.index_coding import encode_step_codes, ideal_index_bits
from cod_diffc.diffc.randomness import CounterGenerator, derive_key


ROOT = Path(__file__).resolve().parents[1]
REFERENCE_JSON = ROOT.parent / "shared" / "reference" / "rcc" / "measured_reference_coder.json"
RESULTS_JSON = ROOT / "results" / "rcc.json"
# (dim, KL bits, repetitions): Part B of the reference measurements, fewer repetitions for the big problems.
PROBLEMS = [(16384, 10, 5), (16384, 100, 3), (16384, 1000, 1), (16384, 5000, 1), (24576, 300, 1)]
TIME_BUDGET_S = 240.0


def random_mu(dim: int, kl_bits: float, seed: int) -> torch.Tensor:
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return direction / direction.norm() * math.sqrt(2.0 * math.log(2.0) * kl_bits)


def candidate_coordinates(simulator: ChunkedPFRSimulator, dim: int, kl_bits: float) -> int:
    """Candidate coordinates one encode generates: sum over chunks of K_c * d_c."""
    layout = simulator.layout(simulator.kl_code_for(kl_bits, dim))
    base_dim, num_long = divmod(dim, layout.num_chunks)
    return sum(
        2 ** layout.candidate_bits(chunk) * (base_dim + (chunk < num_long)) for chunk in range(layout.num_chunks)
    )


def normals_per_second() -> float:
    generator = CounterGenerator(b"calibration")
    rows = torch.arange(2048)
    generator.normal(torch.zeros_like(rows), rows, 32)
    start = time.perf_counter()
    for stream in range(8):
        generator.normal(torch.full_like(rows, stream), rows, 32)
    return 8 * 2048 * 32 / (time.perf_counter() - start)


def run_problem(simulator: ChunkedPFRSimulator, dim: int, kl_bits: float, repetitions: int) -> dict:
    """Encodes and decodes `repetitions` steps of one problem (new mu and key each) and codes them as one stream."""
    codes, projections, encode_times, decode_times, decode_exact = [], [], [], [], True
    for repetition in range(repetitions):
        mu = random_mu(dim, kl_bits, seed=repetition)
        key = derive_key(b"rcc-benchmark", dim, int(kl_bits), repetition)
        start = time.perf_counter()
        code, sample = simulator.encode(mu, key)
        encode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        decoded = simulator.decode(code, dim, key)
        decode_times.append(time.perf_counter() - start)
        decode_exact &= torch.equal(decoded, sample)
        codes.append(code)
        projections.append((sample.double() @ mu / mu.square().sum()).item())
    layout = simulator.layout(codes[0].kl_code)
    stream = encode_step_codes(codes, simulator)
    index_bits = sum(ideal_index_bits(simulator.layout(code.kl_code), code.indices) for code in codes)
    return {
        "method": simulator.method,
        "dim": dim,
        "kl_bits": kl_bits,
        "bits_per_kl": 8 * len(stream) / (repetitions * kl_bits),
        "zipf_bits_per_kl": index_bits / (repetitions * kl_bits),
        "fixed_length_bits_per_kl": sum(
            layout.candidate_bits(chunk) for chunk in range(layout.num_chunks)
        ) / kl_bits,
        "projection": statistics.fmean(projections),
        "encode_s": statistics.median(encode_times),
        "decode_s": statistics.median(decode_times),
        "decode_exact": decode_exact,
        "num_chunks": layout.num_chunks,
        "chunk_bits": sorted({layout.candidate_bits(chunk) for chunk in range(layout.num_chunks)}),
        "stream_bytes": len(stream),
        "max_chunk_bits": simulator.max_chunk_bits,
        "padding_bits": simulator.padding_bits,
        "repetitions": repetitions,
        "torch_threads": torch.get_num_threads(),
    }


def main():
    simulator = ChunkedPFRSimulator(max_chunk_bits=16, padding_bits=2)
    reference_rows = json.loads(REFERENCE_JSON.read_text())["part_b"]
    reference = {(row["dim"], row["kl_bits_analytic"]): row for row in reference_rows}
    # On a shared machine a busy core can make multi-threaded kernels far slower than one thread: use the faster.
    throughputs = {}
    for num_threads in sorted({1, torch.get_num_threads()}):
        torch.set_num_threads(num_threads)
        throughputs[num_threads] = normals_per_second()
    num_threads, throughput = max(throughputs.items(), key=lambda item: item[1])
    torch.set_num_threads(num_threads)
    print(f"{simulator!r}, torch threads {num_threads}, generator ~{throughput / 1e6:.0f} M normals/s")
    deadline = time.perf_counter() + TIME_BUDGET_S
    rows = []
    for dim, kl_bits, repetitions in PROBLEMS:
        estimate_s = 1.3 * repetitions * candidate_coordinates(simulator, dim, kl_bits) / throughput
        if time.perf_counter() + estimate_s > deadline:
            print(f"skipping dim {dim}, KL {kl_bits}: ~{estimate_s:.0f} s exceeds the {TIME_BUDGET_S:.0f} s budget")
            continue
        rows.append(run_problem(simulator, dim, kl_bits, repetitions))

    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps(rows, indent=1) + "\n")

    header = (
        f"{'dim':>6} {'KL':>5} {'reps':>4} {'chunks':>6} | {'bits/KL':>7} {'zipf/KL':>7} {'ref zipf/KL':>11} | "
        f"{'proj':>5} {'ref proj':>8} | {'enc s':>6} {'ref enc s':>9} | {'dec s':>6} {'ref dec s':>9} | exact"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        ref = reference[(row["dim"], row["kl_bits"])]
        print(
            f"{row['dim']:>6} {row['kl_bits']:>5} {row['repetitions']:>4} {row['num_chunks']:>6} | "
            f"{row['bits_per_kl']:>7.3f} {row['zipf_bits_per_kl']:>7.3f} {ref['overhead_ratio']:>11.3f} | "
            f"{row['projection']:>5.3f} {ref['proj']:>8.3f} | {row['encode_s']:>6.2f} {ref['encode_s']:>9.2f} | "
            f"{row['decode_s']:>6.3f} {ref['decode_s']:>9.3f} | {row['decode_exact']}"
        )
    print(f"wrote {RESULTS_JSON.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
