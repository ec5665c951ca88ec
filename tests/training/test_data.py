import numpy as np
import PIL.Image
import pytest
import torch

from cod_diffc.image_files import load_rgb_image
from cod_diffc.training.data import (
    TrainBatchSampler,
    TrainImageDataset,
    find_images,
    load_validation_images,
    split_validation,
)

from training_helpers import write_images


def test_find_images_recurses_filters_suffixes_and_counts_unreadable_files(tmp_path):
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "b" / "c", 1)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a JPEG")
    readable, unreadable = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in readable] == [
        "a/image_00.png",
        "a/image_01.png",
        "b/c/image_00.png",
    ]
    assert unreadable == [tmp_path / "broken.jpg"]


def test_find_images_rejects_a_folder_without_images(tmp_path):
    with pytest.raises(ValueError, match="no readable images"):
        find_images(tmp_path)
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing")


def test_grayscale_alpha_palette_and_16_bit_images_become_rgb(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    PIL.Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    PIL.Image.fromarray(np.full((4, 4), 77, np.uint8), "L").save(tmp_path / "gray.webp", lossless=True)
    PIL.Image.fromarray(np.full((4, 4), 0x8000, np.uint16)).save(tmp_path / "gray16.png")
    PIL.Image.new("P", (4, 4), 3).save(tmp_path / "palette.png")

    alpha = np.asarray(load_rgb_image(tmp_path / "alpha.png"))
    assert alpha.shape == (4, 4, 3)
    assert (alpha[:2] == [200, 0, 0]).all() and (alpha[2:] == 255).all()  # transparent -> white
    assert (np.asarray(load_rgb_image(tmp_path / "gray.webp")) == 77).all()
    assert (np.asarray(load_rgb_image(tmp_path / "gray16.png")) == 128).all()
    assert load_rgb_image(tmp_path / "palette.png").mode == "RGB"


def test_crops_depend_only_on_position_and_small_images_are_upscaled(tmp_path):
    paths = write_images(tmp_path, 2, size=(20, 30))
    dataset = TrainImageDataset(paths, resolution=32, seed=3)
    first, again, other = dataset[(0, 5)], dataset[(0, 5)], dataset[(0, 6)]
    assert first["image"].shape == (3, 32, 32) and first["image"].dtype == torch.uint8
    assert torch.equal(first["image"], again["image"])
    assert first["skipped"] == 0 and other["position"] == 6


def test_a_file_that_fails_to_decode_is_replaced_and_counted(tmp_path):
    paths = write_images(tmp_path, 2)
    paths[0].write_bytes(paths[0].read_bytes()[:60])  # valid header, truncated data
    sample = TrainImageDataset(paths, resolution=32, seed=0)[(0, 0)]
    assert sample["skipped"] == 1
    assert sample["image"].shape == (3, 32, 32)


def test_batches_of_two_processes_interleave_into_the_single_process_stream():
    single = iter(TrainBatchSampler(num_images=5, micro_batch_size=4, seed=1))
    rank0 = iter(TrainBatchSampler(5, 2, seed=1, process_index=0, num_processes=2))
    rank1 = iter(TrainBatchSampler(5, 2, seed=1, process_index=1, num_processes=2))
    for _ in range(4):
        assert next(single) == next(rank0) + next(rank1)


def test_resumed_sampler_continues_the_stream_and_each_epoch_is_a_permutation():
    stream = iter(TrainBatchSampler(num_images=5, micro_batch_size=3, seed=0))
    batches = [next(stream) for _ in range(5)]  # 15 positions = 3 epochs
    resumed = iter(TrainBatchSampler(num_images=5, micro_batch_size=3, seed=0, start_micro_batch=2))
    assert next(resumed) == batches[2]
    images = [index for batch in batches for index, _ in batch]
    assert [sorted(images[i : i + 5]) for i in (0, 5, 10)] == [list(range(5))] * 3
    assert images[:5] != images[5:10]  # reshuffled each epoch


def test_validation_subset_is_fixed_and_held_out(tmp_path):
    paths = write_images(tmp_path, 6)
    train, val = split_validation(paths, 2, seed=0)
    assert split_validation(paths, 2, seed=0) == (train, val)
    assert len(val) == 2 and not set(val) & set(train) and len(train) == 4
    assert load_validation_images(val, 32, None).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="validation"):
        split_validation(paths, 6, seed=0)
