r"""Where codecs run: the devices they accept, their float policy, and host/device helpers for a sync-free hot path.

**Devices.** The codecs need float64 on the device (the exact KL of a step, Box-Muller normals, the step
coefficients): CPU and CUDA have it, Apple's MPS does not, so [`check_codec_device`] refuses it by name.

**TF32.** A stream decodes on any device because the decoder regenerates exactly what the encoder chose (the codes
and the candidates); the network's float rounding is what may differ between an encoder and a decoder, and every
step of a multi-step decode builds on it. TF32 matrix products and convolutions round to 10 mantissa bits
(relative error ~1e-3 instead of ~1e-7), which lets a GPU encode and a CPU decode drift apart step by step. So
[`codec_precision`] turns TF32 off (`torch.backends.cuda.matmul.allow_tf32` and `torch.backends.cudnn.allow_tf32`)
while a codec encodes, decodes or denoises, and restores the user's settings afterwards. The cost is float32
throughput on tensor-core GPUs (several times slower matrix products in float32); for speed, run the network in
bfloat16 or float16 instead (`--dtype`), which is explicit and part of the model's fingerprint. Set
`COD_DIFFC_ALLOW_TF32=1` to keep the user's TF32 settings anyway (faster float32 on a GPU, larger drift).

**Host syncs.** A CUDA step should queue work and never wait for it: a read of a device value on the host
(`.item()`, `.tolist()`, `bool(tensor)`, a boolean-mask index) blocks until the GPU catches up. The coders keep
their bookkeeping on the host ([`host_to_device`] moves it without blocking) and check device values with
[`check_in_range`], which asserts on the device instead of reading back.
"""

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
import torch


CODEC_DEVICE_TYPES = ("cpu", "cuda")
"""Device types the codecs run on (they need float64 kernels)."""

_Function = TypeVar("_Function", bound=Callable)


def check_codec_device(device: torch.device | str) -> torch.device:
    """`device` as a `torch.device`, or a `ValueError` naming why the codecs cannot run there.

    Raises:
        `ValueError`: For a device type outside [`CODEC_DEVICE_TYPES`] (e.g. `mps`, which has no float64).
    """
    device = torch.device(device)
    if device.type not in CODEC_DEVICE_TYPES:
        raise ValueError(
            f"the codecs run on {' or '.join(CODEC_DEVICE_TYPES)}, not {device.type!r}: they need float64 on the "
            "device (exact step KLs, Box-Muller normals), which it lacks"
        )
    return device


@contextlib.contextmanager
def tf32_disabled() -> Iterator[None]:
    """TF32 off for CUDA matrix products and cuDNN while inside (unless `COD_DIFFC_ALLOW_TF32=1`); restored after.

    Uses whichever of torch's two switches the user set: the `allow_tf32` flags, or the `fp32_precision` settings of
    newer torch (which refuses a mix of the two).
    """
    if os.environ.get("COD_DIFFC_ALLOW_TF32") == "1":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:
        saved = matmul.allow_tf32, cudnn.allow_tf32
    except RuntimeError:  # TF32 was set through fp32_precision: stay with that API
        saved_precision = matmul.fp32_precision, cudnn.conv.fp32_precision
        matmul.fp32_precision = cudnn.conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            matmul.fp32_precision, cudnn.conv.fp32_precision = saved_precision
        return
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def codec_precision(function: _Function) -> _Function:
    """Decorates a codec entry point: no autograd, and TF32 off while it runs ([`tf32_disabled`])."""

    @functools.wraps(function)
    def wrapped(*args, **kwargs):
        with torch.no_grad(), tf32_disabled():
            return function(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def host_to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array as a tensor on `device`, copied without blocking the host (through pinned memory on CUDA)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def check_in_range(values: torch.Tensor, low: int, high: int, message: str) -> None:
    """Checks `low <= values <= high`: a `ValueError` on the CPU; on other devices an assertion queued on the device
    (no host sync; a violation fails the next operation that waits for the device)."""
    if values.numel() == 0:
        return
    if values.device.type == "cpu":
        if values.min() < low or values.max() > high:
            raise ValueError(message)
        return
    torch._assert_async(((values >= low) & (values <= high)).all(), message)
