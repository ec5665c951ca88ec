"""The reverse channel coder's operating point chosen end to end: DiffC on the embedded CoD at equal real bytes.

    python benchmarks/rcc_operating_point.py

Codes a few Kodak centre crops (256 x 256) with DiffC on the embedded model at several rates, once per coder setting
(the pooled coder at 2^13, 2^15 and 2^17 candidates per chunk), decompresses every cut, and compares the settings by
BD-rate / BD-PSNR of the mean curves against the default (pooled, 15) together with their encode and decode times.
Writes `results/rcc_operating_point.json`.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
from kodak import kodak_centre_crop

from cod_diffc.backbones import load_backbone
from cod_diffc.diffc import decompress, encode
from cod_diffc.diffc.channel_registry import build_channel
from cod_diffc.evaluation.bjontegaard import bd_psnr, bd_rate
from cod_diffc.evaluation.metrics import psnr, to_uint8
from cod_diffc.pipelines.embedded_models import DEFAULT_EMBEDDED_MODEL


ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "rcc_operating_point.json"
IMAGES = ["kodim04", "kodim08", "kodim15", "kodim20"]
SIZE = 256
TARGET_BPP = [0.02, 0.05, 0.1, 0.2, 0.4]
SETTINGS = [("pooled", 15), ("pooled", 13), ("pooled", 17)]  # the default first: it is the anchor


def run_setting(adapter, images: dict[str, torch.Tensor], coder: str, chunk_bits: int) -> dict:
    """Mean bpp and PSNR per target over the images, with median encode and per-cut decode seconds."""
    bpp, quality, encode_s, decode_s = [], [], [], []
    for image in images.values():
        simulator = build_channel(coder, chunk_bits)
        start = time.perf_counter()
        points = encode(image, adapter, target_bpp=TARGET_BPP, simulator=simulator, progress=False).points
        encode_s.append(time.perf_counter() - start)
        bpp.append([point.bpp for point in points])
        qualities = []
        for point in points:
            start = time.perf_counter()
            reconstruction = decompress(point.stream, adapter, simulator=simulator, progress=False)
            decode_s.append(time.perf_counter() - start)
            qualities.append(psnr(to_uint8(image), to_uint8(reconstruction)))
        quality.append(qualities)
    return {
        "method": f"{coder}_pfr",
        "max_chunk_bits": chunk_bits,
        "bpp": [statistics.mean(column) for column in zip(*bpp)],
        "psnr": [statistics.mean(column) for column in zip(*quality)],
        "encode_s_median": statistics.median(encode_s),
        "decode_s_median": statistics.median(decode_s),
    }


def main() -> None:
    adapter = load_backbone("cod")
    images = {name: kodak_centre_crop(name, SIZE) for name in IMAGES}
    rows = []
    for coder, chunk_bits in SETTINGS:
        rows.append(run_setting(adapter, images, coder, chunk_bits))
        anchor, row = rows[0], rows[-1]
        row["bd_rate_vs_default_percent"] = bd_rate(anchor["bpp"], anchor["psnr"], row["bpp"], row["psnr"])
        row["bd_psnr_vs_default_db"] = bd_psnr(anchor["bpp"], anchor["psnr"], row["bpp"], row["psnr"])
        print(
            f"{coder} {chunk_bits}: BD-rate {row['bd_rate_vs_default_percent']:+.1f} %, BD-PSNR "
            f"{row['bd_psnr_vs_default_db']:+.2f} dB, encode {row['encode_s_median']:.1f} s, decode "
            f"{row['decode_s_median']:.1f} s per cut"
        )
    machine = {"cpu_threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__}
    setup = {"model": DEFAULT_EMBEDDED_MODEL, "images": IMAGES, "crop": SIZE, "target_bpp": TARGET_BPP}
    RESULTS.write_text(json.dumps({"machine": machine, "setup": setup, "results": rows}, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
