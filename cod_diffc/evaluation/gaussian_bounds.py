r"""Rate-distortion bounds of Gaussian data, against which a diffusion codec's overhead is measured exactly.

For data `X ~ N(0, s**2)` per coordinate and `Z_t = alpha X + sigma U` (Theis et al. 2022, "Lossy compression with
Gaussian diffusion", arXiv 2206.08889), per coordinate, rate `R` in bits and distortion `D` in squared error:

- an exact sample of `Z_t` carries `I(X; Z_t) = 1/2 log2(1 + alpha**2 s**2 / sigma**2)` bits;
- Shannon (the posterior mean of such a sample reaches it): `D(R) = s**2 2**(-2R)`;
- DiffC-F (exact channel simulation, probability-flow decode): `D_F(R) = 2 s**2 (1 - sqrt(1 - 2**(-2R)))`;
- DiffC-A (ancestral decode): `D_A(R) = 2 s**2 2**(-2R)`, 3 dB above Shannon.

Each `*_distortion` has its inverse `*_rate`, the least rate that reaches a distortion; a codec's *rate overhead*
at a measured `(R, D)` is `R / bound_rate(D) - 1`.
"""

import math


def mutual_information_bits(alpha: float, sigma: float, std: float) -> float:
    """`I(X; Z_t)` in bits per coordinate for `Z_t = alpha X + sigma U`, `X ~ N(0, std**2)`."""
    return 0.5 * math.log2(1 + (alpha * std / sigma) ** 2)


def shannon_distortion(rate: float, std: float) -> float:
    """`s**2 2**(-2R)`: the least squared error at `rate` bits per coordinate."""
    return std**2 * 2 ** (-2 * rate)


def shannon_rate(distortion: float, std: float) -> float:
    """The least rate (bits per coordinate) at squared error `distortion` (0 at or above the variance)."""
    return max(0.0, 0.5 * math.log2(std**2 / distortion))


def flow_distortion(rate: float, std: float) -> float:
    """`2 s**2 (1 - sqrt(1 - 2**(-2R)))`: DiffC with exact channel simulation and the probability-flow decode."""
    return 2 * std**2 * (1 - math.sqrt(1 - 2 ** (-2 * rate)))


def flow_rate(distortion: float, std: float) -> float:
    """The inverse of [`flow_distortion`]: `-1/2 log2(1 - (1 - D / (2 s**2))**2)` (0 at or above `2 s**2`)."""
    if distortion >= 2 * std**2:
        return 0.0
    return -0.5 * math.log2(1 - (1 - distortion / (2 * std**2)) ** 2)


def ancestral_distortion(rate: float, std: float) -> float:
    """`2 s**2 2**(-2R)`: DiffC with exact channel simulation and an ancestral decode, 3 dB above Shannon."""
    return 2 * shannon_distortion(rate, std)


def ancestral_rate(distortion: float, std: float) -> float:
    """The inverse of [`ancestral_distortion`]."""
    return shannon_rate(distortion / 2, std)


def rate_overhead(rate: float, bound_rate: float) -> float:
    """`R / R_bound(D) - 1` for a codec's rate `R` and a bound's rate `bound_rate` at the codec's distortion `D`:
    the fraction of extra rate it spends (`inf` where the bound needs no rate)."""
    return rate / bound_rate - 1 if bound_rate > 0 else math.inf
