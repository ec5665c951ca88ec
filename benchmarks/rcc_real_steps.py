"""How unevenly real DiffC steps spread their KL over the coder's chunks, and what that costs in truncation.

The chunked coders split a step's coordinates into equal-count chunks in a random order, and give every chunk
`2**(KL / n + padding_bits)` candidates. A chunk whose true KL exceeds that budget is truncated harder than the
others and its sample carries less of mu. Splitting chunks by KL instead ("per-chunk KL balancing") would need the
decoder to learn the split, so it is worth building only if real steps are much less even than the random
directions `benchmarks/rcc.py` measures. This benchmark records the mu of every coded step of DiffC on the embedded
model (Kodak 256 x 256 centre crops, default coder and schedule, cuts up to 0.5 bpp) and, per step:

- the spread of the chunks' KL (`chunk_kl_cv`: std / mean) and the largest excess of a chunk over its nominal share
  (`max_chunk_excess_bits`);
- the projection `<z, mu> / |mu|^2` of the sample the coder sent (`projection_real`), against the projection of the
  same coder, key and KL for an isotropic random direction (`projection_isotropic`, what `benchmarks/rcc.py`
  measures) and for a perfectly even mu (`projection_even`: every coordinate `|mu_i|` equal, so every chunk holds
  exactly its share: the most any KL balancing could reach).

Writes `results/rcc_real_steps.json` (per step rows and a KL-weighted summary per image) and prints the summary.
Usage: `python benchmarks/rcc_real_steps.py` (about 10 minutes on 2 CPU cores).
"""

import json
import math
import statistics
from pathlib import Path

import torch
from kodak import kodak_centre_crop

from cod_diffc.backbones import load_backbone
from cod_diffc.diffc import encode
from cod_diffc.diffc.channel_pooled import PooledPFRSimulator
from cod_diffc.diffc.codec import default_simulator
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
RESULTS_JSON = ROOT / "results" / "rcc_real_steps.json"
IMAGES = ["kodim05", "kodim14", "kodim19", "kodim23"]
IMAGE_SIZE = 256
TARGET_BPP = 0.5


def projection(mu: torch.Tensor, sample: torch.Tensor) -> float:
    mu64 = mu.double()
    return float(sample.double() @ mu64 / (mu64 @ mu64))


def chunk_kl_bits(simulator: PooledPFRSimulator, mu: torch.Tensor, key: bytes) -> tuple[torch.Tensor, float]:
    """`(n,)` true KL (bits) of each chunk of the step's layout, and the nominal KL per chunk."""
    mu64 = mu.double()
    dim = mu.numel()
    kl_bits = float(mu64.square().sum()) / (2 * math.log(2))
    layout = simulator.layout(simulator.kl_code_for(kl_bits, dim))
    permuted_kl = mu64[simulator._permutation(key, dim, mu.device)].square() / (2 * math.log(2))  # (dim,)
    base_dim, num_long = divmod(dim, layout.num_chunks)
    chunk_dims = [base_dim + (chunk < num_long) for chunk in range(layout.num_chunks)]
    return torch.stack([part.sum() for part in permuted_kl.split(chunk_dims)]), layout.chunk_kl_bits


class StepRecorder:
    """Measures every step `simulator` (the default coder) encodes, against isotropic and even mu of the same KL.

    It wraps the instance's `encode` (the stream format stores only the coder classes themselves).
    """

    def __init__(self, simulator: PooledPFRSimulator):
        self.simulator = simulator
        self.rows: list[dict] = []
        self._encode = simulator.encode
        simulator.encode = self._record

    def _record(self, mu: torch.Tensor, key: bytes):
        code, sample = self._encode(mu, key)
        if code.indices:
            generator = torch.Generator().manual_seed(len(self.rows))
            isotropic = torch.randn(mu.numel(), generator=generator, dtype=torch.float64)
            even = torch.sign(torch.randn(mu.numel(), generator=generator, dtype=torch.float64))
            norm = mu.double().norm()
            chunk_kls, nominal = chunk_kl_bits(self.simulator, mu, key)
            self.rows.append(
                {
                    "kl_bits": float(chunk_kls.sum()),
                    "num_chunks": chunk_kls.numel(),
                    "nominal_chunk_kl_bits": nominal,
                    "chunk_kl_cv": float(chunk_kls.std() / chunk_kls.mean()) if chunk_kls.numel() > 1 else 0.0,
                    "max_chunk_excess_bits": float(chunk_kls.max()) - nominal,
                    "projection_real": projection(mu, sample),
                    "projection_isotropic": self._projection_of(isotropic / isotropic.norm() * norm, key),
                    "projection_even": self._projection_of(even / even.norm() * norm, key),
                }
            )
        return code, sample

    def _projection_of(self, mu: torch.Tensor, key: bytes) -> float:
        return projection(mu, self._encode(mu, key)[1])


def kl_weighted(rows: list[dict], field: str) -> float:
    return sum(row[field] * row["kl_bits"] for row in rows) / sum(row["kl_bits"] for row in rows)


def main():
    adapter = load_backbone("cod")
    images = {}
    for name in IMAGES:
        recorder = StepRecorder(default_simulator())
        encode(kodak_centre_crop(name, IMAGE_SIZE), adapter, target_bpp=TARGET_BPP, simulator=recorder.simulator)
        rows = recorder.rows
        summary = {
            "steps": len(rows),
            "kl_bits_total": sum(row["kl_bits"] for row in rows),
            "median_chunk_kl_cv": statistics.median(row["chunk_kl_cv"] for row in rows),
            "median_max_chunk_excess_bits": statistics.median(row["max_chunk_excess_bits"] for row in rows),
            **{
                f"kl_weighted_{field}": kl_weighted(rows, field)
                for field in ("projection_real", "projection_isotropic", "projection_even")
            },
        }
        images[name] = {"summary": summary, "steps": rows}
        print(name, json.dumps(summary))
    report = {
        "setup": {
            "model": f"{DEFAULT_EMBEDDED_MODEL} (embedded)",
            "image_size": IMAGE_SIZE,
            "target_bpp": TARGET_BPP,
            "simulator": repr(default_simulator()),
            "why": __doc__.split("\n\n")[1].replace("\n", " "),
        },
        "images": images,
    }
    RESULTS_JSON.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULTS_JSON}")


if __name__ == "__main__":
    main()
