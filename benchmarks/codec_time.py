"""Time DiffC compress + decompress per image on the tiny CoD models (random weights), on this machine's CPU.

    python benchmarks/codec_time.py

Writes `results/codec_time_tiny.json`: medians over a few repetitions of one encode (every rate) and one decode per
cut, with the default (pooled) reverse channel coder, the default 128-step schedule and 25 denoising steps.
"""

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from cod_diffc import CodPipeline
from cod_diffc.diffc import decompress, encode
from cod_diffc.diffc.adapters.cod import CodBackbone


REPETITIONS = 3
TARGET_BPP = [0.1, 0.3]
RESULTS = Path(__file__).resolve().parents[1] / "results" / "codec_time_tiny.json"


def tiny_backbone(name: str) -> CodBackbone:
    torch.manual_seed(0)
    pipe = CodPipeline.from_named_config(name)
    with torch.no_grad():  # fresh output layers are zero: give the model non-trivial outputs
        for parameter in [*pipe.transformer.parameters(), *pipe.condition_codec.parameters()]:
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
    return CodBackbone(pipe)


def main() -> None:
    rows = []
    for name, size in (("cod-pixel-tiny", 64), ("cod-pixel-tiny", 256), ("cod-latent-tiny", 256)):
        adapter = tiny_backbone(name)
        image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        encode_times, decode_times, points = [], [], None
        for _ in range(REPETITIONS):
            start = time.perf_counter()
            points = encode(image, adapter, target_bpp=TARGET_BPP, progress=False).points
            encode_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            decompress(points[-1].stream, adapter, progress=False)
            decode_times.append(time.perf_counter() - start)
        row = {
            "model": name,
            "image_size": size,
            "target_bpp": TARGET_BPP,
            "bytes": [len(point.stream) for point in points],
            "bpp": [point.bpp for point in points],
            "stop_steps": [point.stop_step for point in points],
            "encode_s": statistics.median(encode_times),
            "decode_s": statistics.median(decode_times),
            "repetitions": REPETITIONS,
        }
        rows.append(row)
        print(f"{name} {size}x{size}: encode (both rates) {row['encode_s']:.2f} s, decode ({row['bytes'][-1]} bytes) "
              f"{row['decode_s']:.2f} s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                                               "torch": torch.__version__}, "results": rows}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
