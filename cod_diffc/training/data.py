"""Training data: a folder tree of images, random square crops, and a sample order that resumes exactly.

The order is a pure function of the run's seed and of a *global sample position* `g = step * batch_size + i`: the
position picks the epoch (`g // num_images`), a seeded permutation of that epoch picks the image, and a generator
seeded by `(seed, g)` picks the crop and the flip. Nothing depends on how many processes, data workers or
accumulation steps share the batch, or on where a run was interrupted, so a resumed run sees exactly the images and
crops the uninterrupted one would have seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from torch.utils.data import Dataset, Sampler

from cod_diffc.image_files import IMAGE_SUFFIXES, load_rgb_image
from cod_diffc.training.seeds import derive_seed


logger = logging.getLogger(__name__)


def find_images(root: str | Path) -> tuple[list[Path], list[Path]]:
    """Lists the images under `root` (recursively, sorted by relative path) whose header PIL can read.

    Returns:
        `(readable, unreadable)`: the image files, and the files with an image suffix that PIL cannot open (each
        reported by a warning).

    Raises:
        `FileNotFoundError`: if `root` is not a directory. `ValueError`: if it holds no readable image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} not found")
    candidates = sorted(
        (path for path in root.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()),
        key=lambda path: path.relative_to(root).as_posix(),
    )
    readable, unreadable = [], []
    for path in candidates:
        try:
            with PIL.Image.open(path) as image:
                image.size  # noqa: B018 - opening reads the header; a file that is no image fails here
            readable.append(path)
        except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
            logger.warning("skipping unreadable image %s: %s", path, error)
            unreadable.append(path)
    if not readable:
        raise ValueError(
            f"no readable images in {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)}"
            + (f"; {len(unreadable)} unreadable file(s) skipped)" if unreadable else ")")
        )
    return readable, unreadable


def resize_short_side(image: PIL.Image.Image, resolution: int, max_short_side: int | None) -> PIL.Image.Image:
    """Upscales an image whose short side is below `resolution`, downscales one above `max_short_side`."""
    short_side = min(image.size)
    if short_side < resolution:
        target = resolution
    elif max_short_side is not None and short_side > max_short_side:
        target = max_short_side
    else:
        return image
    scale = target / short_side
    size = (max(target, round(image.width * scale)), max(target, round(image.height * scale)))
    return image.resize(size, PIL.Image.Resampling.BICUBIC)


def _to_tensor(image: PIL.Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()  # (3, H, W) uint8


class TrainImageDataset(Dataset):
    """
    Random square crops of a list of images, indexed by `(image_index, position)` pairs from [`TrainBatchSampler`].

    The crop offsets and the flip come from a generator seeded by `(seed, position)`. An image that fails to decode
    is reported by a warning, counted in the item's `"skipped"` field and replaced by the next image of the list.

    Parameters:
        paths (`Sequence[Path]`): the training images.
        resolution (`int`): side of the crops.
        seed (`int`): the run's seed.
        max_short_side (`int`, *optional*): downscale images whose short side is longer to this first.
        random_flip (`bool`, *optional*, defaults to `True`): flip horizontally with probability 1/2.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        resolution: int,
        seed: int,
        max_short_side: int | None = None,
        random_flip: bool = True,
    ):
        if not paths:
            raise ValueError("the training set is empty")
        self.paths = list(paths)
        self.resolution = resolution
        self.seed = seed
        self.max_short_side = max_short_side
        self.random_flip = random_flip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor | int]:
        image_index, position = key
        rng = np.random.default_rng([self.seed, position])
        for skipped in range(len(self.paths)):
            path = self.paths[(image_index + skipped) % len(self.paths)]
            try:
                image = load_rgb_image(path)
                break
            except (OSError, ValueError, PIL.Image.DecompressionBombError) as error:
                logger.warning("skipping unreadable image %s: %s", path, error)
        else:
            raise ValueError("none of the training images can be decoded")

        image = resize_short_side(image, self.resolution, self.max_short_side)
        left = int(rng.integers(0, image.width - self.resolution + 1))
        top = int(rng.integers(0, image.height - self.resolution + 1))
        image = image.crop((left, top, left + self.resolution, top + self.resolution))
        if self.random_flip and rng.random() < 0.5:
            image = image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT)
        return {"image": _to_tensor(image), "position": position, "skipped": skipped}


class TrainBatchSampler(Sampler[list[tuple[int, int]]]):
    """
    The endless stream of micro-batches of one process, starting at a given micro-batch.

    Micro-batch `m` of the run covers the global sample positions `[m * b * P, (m + 1) * b * P)` (b samples per
    process, P processes); process `r` takes `[m * b * P + r * b, m * b * P + (r + 1) * b)`. Position `g` is image
    `permutation_e[g % N]` of epoch `e = g // N`, with a permutation seeded by `(seed, e)`.

    Parameters:
        num_images (`int`): images in the training set.
        micro_batch_size (`int`): samples per process and micro-batch.
        seed (`int`): the run's seed.
        process_index (`int`), num_processes (`int`): this process and how many share each micro-batch.
        start_micro_batch (`int`, *optional*, defaults to 0): the first micro-batch to yield (resuming).
    """

    def __init__(
        self,
        num_images: int,
        micro_batch_size: int,
        seed: int,
        process_index: int = 0,
        num_processes: int = 1,
        start_micro_batch: int = 0,
    ):
        self.num_images = num_images
        self.micro_batch_size = micro_batch_size
        self.seed = seed
        self.process_index = process_index
        self.num_processes = num_processes
        self.start_micro_batch = start_micro_batch
        self._epoch = -1
        self._permutation = torch.empty(0, dtype=torch.int64)

    def image_index(self, position: int) -> int:
        """The training image at global sample `position`."""
        epoch = position // self.num_images
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            self._permutation = torch.randperm(self.num_images, generator=generator)
            self._epoch = epoch
        return int(self._permutation[position % self.num_images])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        micro_batch = self.start_micro_batch
        while True:
            first = (micro_batch * self.num_processes + self.process_index) * self.micro_batch_size
            positions = range(first, first + self.micro_batch_size)
            yield [(self.image_index(position), position) for position in positions]
            micro_batch += 1

    def __len__(self) -> int:
        # An endless stream: DataLoader only needs a length for its own bookkeeping.
        return math.iinfo(np.int64).max


def split_validation(
    train_paths: Sequence[Path], num_images: int, seed: int, val_dir: str | Path | None = None
) -> tuple[list[Path], list[Path]]:
    """The fixed validation subset, and the training images that remain.

    Without `val_dir` the subset is `num_images` images of the training list chosen by a seeded permutation (and
    removed from training); with it, the first `num_images` images of `val_dir`.
    """
    if val_dir is not None:
        val_paths, _ = find_images(val_dir)
        return list(train_paths), val_paths[:num_images]
    if len(train_paths) <= num_images:
        raise ValueError(
            f"{len(train_paths)} training image(s) cannot give {num_images} validation images and leave any for "
            "training: lower validation.num_images or set data.val_dir"
        )
    order = torch.randperm(len(train_paths), generator=torch.Generator().manual_seed(derive_seed(seed, 2**31)))
    held_out = set(order[:num_images].tolist())
    val_paths = [train_paths[index] for index in sorted(held_out)]
    return [path for index, path in enumerate(train_paths) if index not in held_out], val_paths


def load_validation_images(paths: Sequence[Path], resolution: int, max_short_side: int | None) -> torch.Tensor:
    """Centre crops of the validation images, `(N, 3, resolution, resolution)` uint8."""
    crops = []
    for path in paths:
        image = resize_short_side(load_rgb_image(path), resolution, max_short_side)
        left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
        crops.append(_to_tensor(image.crop((left, top, left + resolution, top + resolution))))
    return torch.stack(crops)
