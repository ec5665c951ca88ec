"""Where one network evaluation of the embedded CoD spends its time: by module and by operator.

    python benchmarks/profile_network.py [--sizes 256 512]

The codec's own split (network, reverse channel coder, rANS, I/O) is `benchmarks/codec_time.py`; the network is the
largest part, and this script opens it: one velocity at the model's default guidance (a conditional and an
unconditional pass inside CoD's guidance window when that scale is above 1) on a Kodak centre crop, timed per
top-level submodule of the transformer with forward hooks (median of 3 evaluations), and per operator with
`torch.profiler` (one evaluation). Writes `results/network_profile.json`.
"""

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from kodak import kodak_centre_crop
from torch.profiler import ProfilerActivity, profile

from cod_diffc.backbones import Condition, load_backbone
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
REPETITIONS = 3
TOP_OPERATORS = 12


def module_seconds(
    adapter, latent: torch.Tensor, sigma: torch.Tensor, condition: Condition, guidance: float
) -> dict[str, float]:
    """Seconds per top-level transformer submodule (blocks grouped as backbone / head) over one evaluation."""
    transformer = adapter.pipeline.transformer
    num_backbone = transformer.config.num_layers
    seconds: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []
    for name, module in transformer.named_children():
        children = list(module.named_children()) if name == "blocks" else [(None, module)]
        for index, child in children:
            label = name if index is None else ("backbone_blocks" if int(index) < num_backbone else "head_blocks")
            handles.append(
                child.register_forward_pre_hook(
                    lambda m, a, label=label: starts.__setitem__(label, time.perf_counter())
                )
            )
            handles.append(
                child.register_forward_hook(
                    lambda m, a, o, label=label: seconds.__setitem__(
                        label, seconds[label] + time.perf_counter() - starts[label]
                    )
                )
            )
    start = time.perf_counter()
    adapter.predict_x0_and_epsilon(latent, sigma, condition, guidance)
    total = time.perf_counter() - start
    for handle in handles:
        handle.remove()
    seconds["total"] = total
    seconds["outside_transformer_modules"] = total - sum(value for key, value in seconds.items() if key != "total")
    return dict(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    adapter = load_backbone("cod")
    guidance = adapter.default_guidance_scale
    sigma = torch.tensor(0.5)  # inside the guidance window: two passes when the model guides
    rows = []
    with torch.no_grad():
        for size in args.sizes:
            image = kodak_centre_crop("kodim05", size)
            condition = adapter.prepare_condition(image)
            latent = torch.randn(1, *adapter.latent_shape(size, size), generator=torch.Generator().manual_seed(0))
            adapter.predict_x0_and_epsilon(latent, sigma, condition, guidance)  # warm-up
            runs = [module_seconds(adapter, latent, sigma, condition, guidance) for _ in range(REPETITIONS)]
            modules = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                adapter.predict_x0_and_epsilon(latent, sigma, condition, guidance)
            events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
            total_us = sum(event.self_cpu_time_total for event in events)
            operators = [
                {
                    "op": event.key,
                    "self_s": event.self_cpu_time_total / 1e6,
                    "share": event.self_cpu_time_total / total_us,
                    "calls": event.count,
                }
                for event in events[:TOP_OPERATORS]
            ]
            rows.append(
                {
                    "image_size": size,
                    "guided_evaluation_s": modules["total"],
                    "modules_s": modules,
                    "operators": operators,
                }
            )
            print(f"{size}x{size}: one guided evaluation {modules['total']:.3f} s")
            for key, value in sorted(modules.items(), key=lambda item: -item[1]):
                print(f"    {key:<28}{value:8.3f} s")
            for operator in operators[:6]:
                print(f"    {operator['op']:<50}{operator['share']:7.1%}")
    output = ROOT / "results" / "network_profile.json"
    machine = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__}
    summary = {"model": DEFAULT_EMBEDDED_MODEL, "machine": machine, "results": rows}
    output.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
