"""The time grid of the zero-shot codecs: DiffC's encoding schedule, which Turbo-DDCM and DDCM reuse."""

import math
import struct
from dataclasses import dataclass


MAX_NUM_STEPS = 4096
"""Largest number of steps a schedule (and so a stream) may have."""


def to_float16(value: float) -> float:
    """`value` rounded to the nearest IEEE half-precision number, the precision a stream stores scalars in."""
    return struct.unpack("<e", struct.pack("<e", value))[0]


def check_float16_scale(name: str, value: float) -> None:
    """`ValueError` unless `value` is a finite, non-negative float16 number (a guidance scale as streams store it)."""
    if not (math.isfinite(value) and value >= 0 and to_float16(value) == value):
        raise ValueError(f"{name} must be a finite, non-negative float16 value, got {value}")


@dataclass(frozen=True)
class DiffCSchedule:
    r"""
    The decreasing times `t_0 = 1 > t_1 > ... > t_N = t_end` at which DiffC sends the noisy latent, uniform in `t`.

    Step `n` (0-based) sends `z_{t_{n+1}}` given `z_{t_n}`; stopping after step `n - 1` leaves the decoder with the
    noisy latent at `t_n`, so "stop step" `n` ranges over `0..N`. The two parameters are all a stream stores, and
    `t_end` is rounded to float16 on construction so encoder and decoder compute identical times. What a given `t`
    means (how much noise) is up to the backbone's `alpha_sigma`.

    Parameters:
        num_steps (`int`, defaults to `128`): Number of steps `N`, 1 to [`MAX_NUM_STEPS`].
        t_end (`float`, defaults to `0.02`): The last (least noisy) time `t_N`, in (0, 1).
    """

    num_steps: int = 128
    t_end: float = 0.02

    def __post_init__(self):
        if not isinstance(self.num_steps, int) or not 1 <= self.num_steps <= MAX_NUM_STEPS:
            raise ValueError(f"num_steps must be an integer in [1, {MAX_NUM_STEPS}], got {self.num_steps!r}")
        if not (isinstance(self.t_end, float | int) and math.isfinite(self.t_end)):
            raise ValueError(f"t_end must be a finite number, got {self.t_end!r}")
        t_end = to_float16(self.t_end)
        if not 0 < t_end < 1:
            raise ValueError(f"t_end must lie in (0, 1) (after rounding to float16), got {self.t_end!r}")
        object.__setattr__(self, "t_end", t_end)

    def time(self, step: int) -> float:
        """`t_step` for `step` in `0..num_steps`, in float64 (the same on every machine)."""
        if not 0 <= step <= self.num_steps:
            raise ValueError(f"step must lie in [0, {self.num_steps}], got {step}")
        return 1.0 - (1.0 - self.t_end) * step / self.num_steps
