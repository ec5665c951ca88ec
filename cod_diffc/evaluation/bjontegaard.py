r"""Bjøntegaard deltas between two rate-distortion curves (G. Bjøntegaard, VCEG-M33, 2001).

Each curve is fitted with a cubic polynomial, in `log10(rate)` as a function of PSNR for BD-rate and in PSNR as a
function of `log10(rate)` for BD-PSNR; the difference of the fits is averaged over the interval both curves cover.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


MIN_POINTS = 4
"""Distinct rate points a curve needs for the cubic fit."""


def _curve(rates: Sequence[float], psnrs: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    """`(log10(rate), psnr)` of the curve's distinct points; raises `ValueError` for a curve that cannot be fitted."""
    if len(rates) != len(psnrs):
        raise ValueError(f"{name} curve has {len(rates)} rates but {len(psnrs)} PSNR values")
    points = sorted(set(zip(map(float, rates), map(float, psnrs))))
    if len(points) < MIN_POINTS:
        raise ValueError(f"{name} curve has {len(points)} distinct points; the cubic fit needs {MIN_POINTS}")
    rate, psnr = np.array(points).T
    if not (np.all(rate > 0) and np.all(np.isfinite(rate)) and np.all(np.isfinite(psnr))):
        raise ValueError(f"{name} curve needs positive finite rates and finite PSNR values")
    return np.log10(rate), psnr


def _mean_difference(anchor_x, anchor_y, test_x, test_y) -> float:
    """Mean of `fit_test(x) - fit_anchor(x)` over the overlap of the two x ranges (cubic least-squares fits)."""
    low, high = max(anchor_x.min(), test_x.min()), min(anchor_x.max(), test_x.max())
    if not low < high:
        raise ValueError("the two curves do not overlap")
    anchor_integral = np.polyint(np.polyfit(anchor_x, anchor_y, 3))
    test_integral = np.polyint(np.polyfit(test_x, test_y, 3))
    area = np.polyval(test_integral, high) - np.polyval(test_integral, low)
    area -= np.polyval(anchor_integral, high) - np.polyval(anchor_integral, low)
    return float(area / (high - low))


def bd_rate(
    anchor_rates: Sequence[float],
    anchor_psnrs: Sequence[float],
    test_rates: Sequence[float],
    test_psnrs: Sequence[float],
) -> float:
    r"""
    BD-rate of the test curve against the anchor: the average rate difference at equal PSNR, in percent (negative:
    the test codec needs fewer bits).

    Raises:
        `ValueError`: If a curve has fewer than [`MIN_POINTS`] distinct points or the PSNR ranges do not overlap.
    """
    anchor_log_rate, anchor_psnr = _curve(anchor_rates, anchor_psnrs, "anchor")
    test_log_rate, test_psnr = _curve(test_rates, test_psnrs, "test")
    return float((10 ** _mean_difference(anchor_psnr, anchor_log_rate, test_psnr, test_log_rate) - 1) * 100)


def bd_psnr(
    anchor_rates: Sequence[float],
    anchor_psnrs: Sequence[float],
    test_rates: Sequence[float],
    test_psnrs: Sequence[float],
) -> float:
    r"""
    BD-PSNR of the test curve against the anchor: the average PSNR difference at equal rate, in dB (positive: the
    test codec is better).

    Raises:
        `ValueError`: If a curve has fewer than [`MIN_POINTS`] distinct points or the rate ranges do not overlap.
    """
    anchor_log_rate, anchor_psnr = _curve(anchor_rates, anchor_psnrs, "anchor")
    test_log_rate, test_psnr = _curve(test_rates, test_psnrs, "test")
    return _mean_difference(anchor_log_rate, anchor_psnr, test_log_rate, test_psnr)
