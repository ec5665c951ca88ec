"""Wall-clock reads that wait for the device, so GPU work is timed where it runs, not where it was queued."""

import time

import torch


def clock(device: torch.device) -> float:
    """`time.perf_counter()` once the work queued on `device` has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
