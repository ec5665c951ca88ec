r"""Rate-distortion sweeps: every method at every requested rate on every image, one result record per (method, image).

A *method* turns an image and a list of target rates into one reconstruction per rate: [`DiffusionCodecMethod`]
runs any diffusion codec of the registry through its interface (one encode per image for a progressive codec, one
per rate otherwise), [`CodecMethod`] searches a classical codec's quality setting per rate. [`evaluate_images`]
writes, for each (method, image), the files it coded (`streams/METHOD/`), and a JSON record of every point's size and
metrics (`records/METHOD/IMAGE.json`), which is what makes a sweep resumable and shardable across processes.
[`compressai_results`] and [`write_per_image_csv`] merge the records into CompressAI's result JSON and a per-image
table.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cod_diffc.image_files import IMAGE_SUFFIXES, atomic_write, load_image, save_image

from .baselines import BaselineRequest, encode_at_rates, encode_downscaled_at_rates
from .metrics import PerceptualMetric, ms_ssim, psnr, to_uint8


if TYPE_CHECKING:
    from cod_diffc.backbones import BackboneAdapter
    from cod_diffc.codecs import Codec


@dataclass(frozen=True)
class Reconstruction:
    r"""
    What a method made for one target rate.

    Parameters:
        target_bpp (`float`): The requested rate.
        stream (`bytes`): The whole file; its length gives the bpp.
        image (`np.ndarray`): `(H, W, 3)` uint8 decoded image.
        setting (`str`): The codec setting that met the target (`"stop_step=12"`, `"quality=40"`).
        encoding_time (`float`): Seconds of the encode that produced the file.
        decoding_time (`float`): Seconds to reconstruct the image from it.
    """

    target_bpp: float
    stream: bytes
    image: np.ndarray
    setting: str
    encoding_time: float
    decoding_time: float


class RateMethod(ABC):
    r"""
    A compression method under evaluation.

    Attributes:
        name (`str`): Name in results and file names (CompressAI's `"name"`).
        description (`str`): CompressAI's `"description"`.
        stream_suffix (`str`): File-name suffix of its coded files.
        settings (`dict`): JSON-serialisable settings that change what it produces; stored in every record, and a
            resumed sweep redoes the records made with other settings.
    """

    name: str
    description: str
    stream_suffix: str
    settings: dict[str, Any]

    @abstractmethod
    def reconstruct(self, image: torch.Tensor, target_bpps: Sequence[float]) -> list[Reconstruction]:
        """One [`Reconstruction`] per target rate, in order, for a `(1, 3, H, W)` image in [0, 1]."""


def _check_decode(decode: str, num_denoise_steps: int) -> None:
    """`ValueError` for a decode method or step count a diffusion codec's decoder does not take."""
    from cod_diffc.codecs.codec import check_decode_method

    check_decode_method(decode)
    if num_denoise_steps < 1:
        raise ValueError(f"num_denoise_steps must be >= 1, got {num_denoise_steps}")


class DiffusionCodecMethod(RateMethod):
    r"""
    A diffusion codec of the registry on a backbone, through the [`~codecs.codec.Codec`] interface only: one
    [`~codecs.codec.Codec.compress_many`] per image for every target rate (one encode for a progressive codec, one per
    rate otherwise; a target below the smallest file gets that file), each stream decoded from its file as a
    receiver would. Methods that differ only in `decode` (`--decode flow mean`) share the last image's encodes and,
    for a codec that decodes through a noisy latent ([`~codecs.codec.Codec.decompress_latent`]), one decode of each
    stream; each method's decoding time still counts that decode.

    Parameters:
        name (`str`): Method name, e.g. `"turbo-ddcm-cod"`.
        codec ([`~codecs.codec.Codec`]): The codec, with the encoder's settings.
        adapter ([`~backbones.BackboneAdapter`]): The backbone.
        seed (`int`, defaults to `0`): Seed of the shared randomness.
        num_denoise_steps (`int`, defaults to `25`): Probability-flow ODE steps of the decoder.
        decode (`str`, defaults to `"flow"`): The decoder's denoising, one of [`~codecs.codec.DECODE_METHODS`].
    """

    stream_suffix = ".cdc"
    # The last image's streams and decodes, shared by every instance: methods that differ only in `decode` code and
    # decode an image once.
    _shared: dict[str, Any] = {}

    def __init__(
        self,
        name: str,
        codec: Codec,
        adapter: BackboneAdapter,
        *,
        seed: int = 0,
        num_denoise_steps: int = 25,
        decode: str = "flow",
    ):
        _check_decode(decode, num_denoise_steps)
        self.name = name
        self.codec = codec
        self.adapter = adapter
        self.seed = seed
        self.num_denoise_steps = num_denoise_steps
        self.decode = decode
        encodes = "one encode per image for all rates" if codec.progressive else "one encode per image and rate"
        self.description = (
            f"Inference ({codec.name} on the {adapter.name} backbone, {decode} decode, actual bytes; {encodes})"
        )
        self.settings = {
            "codec": codec.name,
            "codec_settings": codec.settings(),
            "backbone": adapter.name,
            "fingerprint": adapter.fingerprint().hex(),
            "seed": seed,
            "num_denoise_steps": num_denoise_steps,
            "decode": decode,
        }

    def _coded(self, image: torch.Tensor, target_bpps: Sequence[float]) -> dict[str, Any]:
        """The image's streams (and the decodes made so far), shared with the other instances."""
        encode_settings = {key: self.settings[key] for key in ("codec", "codec_settings", "fingerprint", "seed")}
        key = (id(self.adapter), json.dumps(encode_settings), image.numpy().tobytes(), tuple(target_bpps))
        if DiffusionCodecMethod._shared.get("key") != key:
            coded = self.codec.compress_many(
                image, self.adapter, target_bpps=list(target_bpps), seed=self.seed, clamp_targets=True, progress=False
            )
            DiffusionCodecMethod._shared = {"key": key, "coded": coded, "latents": {}}
        return DiffusionCodecMethod._shared

    def _decompress(self, stream: bytes, latents: dict) -> tuple[torch.Tensor, float]:
        """The reconstruction of `stream` and the seconds it took, counting the (shared) decode of its latent."""
        if stream not in latents:
            start = time.perf_counter()
            decoded = self.codec.decompress_latent(stream, self.adapter, progress=False)
            latents[stream] = (decoded, time.perf_counter() - start)
        decoded, latent_seconds = latents[stream]
        render = {"method": self.decode, "num_denoise_steps": self.num_denoise_steps, "progress": False}
        start = time.perf_counter()
        if decoded is None:  # a codec that does not decode through a latent
            reconstruction = self.codec.decompress(stream, self.adapter, **render)
        else:
            reconstruction = decoded.to_image(self.adapter, **render)
        return reconstruction, latent_seconds + time.perf_counter() - start

    def reconstruct(self, image: torch.Tensor, target_bpps: Sequence[float]) -> list[Reconstruction]:
        shared = self._coded(image, target_bpps)
        reconstructions = []
        for target, point in zip(target_bpps, shared["coded"]):
            reconstruction, decoding_time = self._decompress(point.stream, shared["latents"])
            reconstructions.append(
                Reconstruction(
                    target_bpp=target,
                    stream=point.stream,
                    image=to_uint8(reconstruction),
                    setting=point.setting,
                    encoding_time=point.encoding_time,
                    decoding_time=decoding_time,
                )
            )
        return reconstructions


class CodecMethod(RateMethod):
    r"""
    A classical codec at the highest quality fitting each target rate ([`~evaluation.baselines.encode_at_rates`]),
    or, for a `-down` request, at the best (downscale factor, quality) pair
    ([`~evaluation.baselines.encode_downscaled_at_rates`]).

    Parameters:
        request ([`~evaluation.baselines.BaselineRequest`]): The codec and whether to downscale; its name is the
            method's name.
    """

    def __init__(self, request: BaselineRequest):
        self.request = request
        codec = request.codec
        self.name = request.name
        search = "downscale factor and quality" if request.downscale else "quality"
        self.description = f"{self.name.upper()} ({codec.library}, {search} searched per target rate, actual bytes)"
        self.stream_suffix = f".{self.name}"
        self.settings = {"codec": codec.name, "library": codec.library, "downscale": request.downscale}

    def reconstruct(self, image: torch.Tensor, target_bpps: Sequence[float]) -> list[Reconstruction]:
        search = encode_downscaled_at_rates if self.request.downscale else encode_at_rates
        return [
            Reconstruction(
                target_bpp=target,
                stream=point.data,
                image=point.reconstruction,
                setting=point.setting,
                encoding_time=point.encoding_time,
                decoding_time=point.decoding_time,
            )
            for target, point in zip(target_bpps, search(self.request.codec, to_uint8(image), target_bpps))
        ]


def list_images(dataset_dir: str | Path) -> list[Path]:
    """
    The image files directly in `dataset_dir`, sorted by name.

    Raises:
        `ValueError`: If the folder does not exist, holds no image, or two images share a name stem (records and
            output files are named by stem).
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise ValueError(f"{dataset_dir}: not a directory")
    images = sorted(path for path in dataset_dir.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"{dataset_dir}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    stems = [path.stem for path in images]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise ValueError(f"{dataset_dir}: several images share the name(s) {', '.join(duplicates)}")
    return images


def rate_label(target_bpp: float) -> str:
    """The file-name label of a target rate: `bpp0.01`."""
    return f"bpp{target_bpp:g}"


def record_path(output_dir: Path, method_name: str, image_name: str) -> Path:
    """Where the record of one (method, image) lives."""
    return output_dir / "records" / method_name / f"{image_name}.json"


def reconstruction_path(output_dir: Path, method_name: str, image_name: str, target_bpp: float) -> Path:
    """Where a kept reconstruction of one (method, image, target rate) lives."""
    return output_dir / "reconstructions" / method_name / f"{image_name}_{rate_label(target_bpp)}.png"


def _is_done(
    output_dir: Path,
    method: RateMethod,
    image_name: str,
    target_bpps: Sequence[float],
    metric_names: Sequence[str],
    keep_reconstruction: bool,
) -> bool:
    """Whether the record of (method, image) exists for exactly these target rates, settings and metrics, with its
    reconstructions if they are to be kept."""
    try:
        record = json.loads(record_path(output_dir, method.name, image_name).read_text())
    except (OSError, ValueError):
        return False
    if record.get("target_bpp") != list(target_bpps) or record.get("settings") != method.settings:
        return False
    if not all(name in point for point in record["points"] for name in metric_names):
        return False
    return not keep_reconstruction or all(
        reconstruction_path(output_dir, method.name, image_name, target).is_file() for target in target_bpps
    )


def score(
    reference: np.ndarray, reconstruction: np.ndarray, perceptual_metrics: Mapping[str, PerceptualMetric]
) -> dict[str, float]:
    """PSNR and MS-SSIM of two `(H, W, 3)` uint8 images, plus the perceptual metrics given (on the 8-bit images)."""
    scores = {"psnr-rgb": psnr(reference, reconstruction), "ms-ssim-rgb": ms_ssim(reference, reconstruction)}
    if perceptual_metrics:
        reference_tensor, reconstruction_tensor = (
            torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float() / 255.0  # (1, 3, H, W)
            for array in (reference, reconstruction)
        )
        for name, metric in perceptual_metrics.items():
            scores[name] = metric(reference_tensor, reconstruction_tensor)
    return scores


def evaluate_images(
    images: Sequence[Path],
    methods: Sequence[RateMethod],
    target_bpps: Sequence[float],
    output_dir: str | Path,
    *,
    perceptual_metrics: Mapping[str, PerceptualMetric] | None = None,
    resume: bool = False,
    keep_reconstructions: Sequence[str] = (),
    process_index: int = 0,
    num_processes: int = 1,
    progress: bool = True,
) -> int:
    r"""
    Runs every method on this process's share of the images and writes their files and records.

    Args:
        images (`Sequence[Path]`): All the images of the sweep; process `process_index` takes every
            `num_processes`-th one from `process_index` on.
        methods (`Sequence[RateMethod]`): The methods.
        target_bpps (`Sequence[float]`): Target rates, bits per pixel of the whole file.
        output_dir (`str` or `Path`): Root of `streams/`, `records/` and `reconstructions/`.
        perceptual_metrics (`Mapping[str, PerceptualMetric]`, *optional*): Extra metrics by result key.
        resume (`bool`, defaults to `False`): Skip the (method, image) pairs with a record for these target rates,
            the method's current settings and these metrics.
        keep_reconstructions (`Sequence[str]`): Stems of the images whose reconstructions are saved as PNG
            (`reconstructions/METHOD/IMAGE_bpp0.01.png`), e.g. for crops.
        process_index (`int`, defaults to `0`): This process's rank.
        num_processes (`int`, defaults to `1`): How many processes share the images.
        progress (`bool`, defaults to `True`): Show a progress bar (with ETA) over this process's images.

    Returns:
        `int`: How many (method, image) pairs this call coded (the rest were resumed).
    """
    if not target_bpps or any(not (target > 0 and math.isfinite(target)) for target in target_bpps):
        raise ValueError(f"target rates must be positive and finite, got {list(target_bpps)}")
    if not 0 <= process_index < num_processes:
        raise ValueError(f"process index {process_index} outside [0, {num_processes})")
    output_dir = Path(output_dir)
    metrics = perceptual_metrics or {}
    coded = 0
    shard = list(images)[process_index::num_processes]
    description = "evaluate" if num_processes == 1 else f"evaluate (process {process_index})"
    for image_path in tqdm(shard, desc=description, unit="image", disable=not progress, position=process_index):
        keep = image_path.stem in keep_reconstructions
        pending = [
            method
            for method in methods
            if not (resume and _is_done(output_dir, method, image_path.stem, target_bpps, list(metrics), keep))
        ]
        image = load_image(image_path) if pending else None  # (1, 3, H, W)
        for method in pending:
            _code_image(output_dir, method, image_path, image, target_bpps, metrics, keep)
            coded += 1
    return coded


def _code_image(
    output_dir: Path,
    method: RateMethod,
    image_path: Path,
    image: torch.Tensor,
    target_bpps: Sequence[float],
    metrics: Mapping[str, PerceptualMetric],
    keep_reconstruction: bool,
) -> None:
    """One (method, image) pair of a sweep: its files, scores and record."""
    try:
        reconstructions = method.reconstruct(image, target_bpps)
    except ValueError as error:
        raise ValueError(f"{method.name} on {image_path}: {error}") from error
    reference = to_uint8(image)
    height, width = reference.shape[:2]
    points = []
    for reconstruction in reconstructions:
        label = rate_label(reconstruction.target_bpp)
        stream_path = output_dir / "streams" / method.name / f"{image_path.stem}_{label}{method.stream_suffix}"
        atomic_write(stream_path, reconstruction.stream)
        if keep_reconstruction:
            path = reconstruction_path(output_dir, method.name, image_path.stem, reconstruction.target_bpp)
            save_image(path, reconstruction.image)
        points.append(
            {
                "target_bpp": reconstruction.target_bpp,
                "setting": reconstruction.setting,
                "bytes": len(reconstruction.stream),
                "bpp": 8 * len(reconstruction.stream) / (height * width),
                **score(reference, reconstruction.image, metrics),
                "encoding_time": reconstruction.encoding_time,
                "decoding_time": reconstruction.decoding_time,
            }
        )
    record = {
        "method": method.name,
        "image": image_path.stem,
        "height": height,
        "width": width,
        "target_bpp": list(target_bpps),
        "settings": method.settings,
        "points": points,
    }
    atomic_write(record_path(output_dir, method.name, image_path.stem), json.dumps(record, indent=1).encode())


def load_records(output_dir: str | Path, method_name: str, images: Sequence[Path]) -> list[dict]:
    """
    The records of one method for these images, in order.

    Raises:
        `ValueError`: If an image has no record (the sweep did not finish).
    """
    missing = [path.stem for path in images if not record_path(Path(output_dir), method_name, path.stem).is_file()]
    if missing:
        raise ValueError(f"{method_name}: no result for image(s) {', '.join(missing)}; run the sweep (again)")
    return [json.loads(record_path(Path(output_dir), method_name, path.stem).read_text()) for path in images]


def compressai_results(name: str, description: str, records: Sequence[dict]) -> dict:
    r"""
    One method's records averaged over the images per target rate, in CompressAI's result schema:
    `{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...], ...}}`, one entry per
    target rate (in the order requested), each the mean over the images of the per-image values.
    """
    if not records:
        raise ValueError(f"{name}: no records to average")
    metric_keys = [key for key in records[0]["points"][0] if key not in ("target_bpp", "setting", "bytes")]
    num_points = len(records[0]["points"])
    results = {
        key: [float(np.mean([record["points"][i][key] for record in records])) for i in range(num_points)]
        for key in metric_keys
    }
    return {"name": name, "description": description, "results": results}


def write_per_image_csv(path: str | Path, records_by_method: Mapping[str, Sequence[dict]]) -> None:
    """One row per (method, image, target rate): the setting used, bytes, bpp, every metric and the times."""
    rows = [
        {"method": method, "image": record["image"], **point}
        for method, records in records_by_method.items()
        for record in records
        for point in record["points"]
    ]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(Path(path), buffer.getvalue().encode())
