"""Gathers training images from several folders into one flat folder, downscaled once to a maximum short side.

`cod-diffc train` reads one folder tree; this builds it from several sources (for example the CID22 training split
and the Unsplash photos, leaving CID22's validation split out) and does the downscaling that `data.max_short_side`
would otherwise repeat on every read, which matters on a CPU:

    python scripts/prepare_training_images.py ../shared/data/train/cid22/training ../shared/data/train/unsplash \
        -o data/embedded_train --max-short-side 256
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tqdm import tqdm

from cod_diffc.image_files import load_rgb_image
from cod_diffc.training.data import find_images, resize_short_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="image folders (searched recursively)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (flat, PNG)")
    parser.add_argument("--max-short-side", type=int, default=256, help="downscale larger images to this short side")
    args = parser.parse_args()

    images = [path for source in args.sources for path in find_images(source)[0]]
    names = [path.stem + ".png" for path in images]
    clashes = sorted({name for name in names if names.count(name) > 1})
    if clashes:
        raise SystemExit(f"error: several sources hold images named {', '.join(clashes)}")
    args.output.mkdir(parents=True, exist_ok=True)
    for path, name in zip(tqdm(images, desc="images"), names):
        image = resize_short_side(load_rgb_image(path), resolution=0, max_short_side=args.max_short_side)
        partial = args.output / f".{name}.partial"
        image.save(partial, format="PNG")
        os.replace(partial, args.output / name)
    print(f"wrote {len(images)} images to {args.output}")


if __name__ == "__main__":
    main()
