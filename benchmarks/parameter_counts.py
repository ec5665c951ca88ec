"""Parameter counts of every named CoD configuration, built on the meta device (no memory allocated).

    python benchmarks/parameter_counts.py

Writes `results/parameter_counts.json`.
"""

import json
from pathlib import Path

from accelerate import init_empty_weights

from cod_diffc import NAMED_CONFIGS, CodConditionCodec, CodTransformer2DModel


RESULTS = Path(__file__).resolve().parents[1] / "results" / "parameter_counts.json"


def main() -> None:
    rows = []
    for name, config in NAMED_CONFIGS.items():
        with init_empty_weights():
            codec = CodConditionCodec(**config.condition_codec)
            transformer = CodTransformer2DModel(**config.transformer)
        codec_count = sum(p.numel() for p in codec.parameters())
        transformer_count = sum(p.numel() for p in transformer.parameters())
        rows.append(
            {
                "config": name,
                "condition_codec": codec_count,
                "transformer": transformer_count,
                "total": codec_count + transformer_count,
            }
        )
        print(
            f"{name:<22} codec {codec_count:>13,}  transformer {transformer_count:>13,}  "
            f"total {codec_count + transformer_count:>13,}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
