"""Constants and helpers of the conformance tests (imported by their conftest and test modules)."""

import re

import torch

from cod_diffc import CodPipeline
from cod_diffc.cli.convert import HUB_FILES


# The variants `cod-diffc convert --variant` takes, as the reference files spell them ("latent-64bits" is
# "latent_64bits" there). A folder may hold any of them; the tests of a missing one are skipped.
VARIANTS = [name.replace("-", "_") for name in HUB_FILES]
# Reference suffix -> working dtype.
DTYPES = {"f32": torch.float32, "f64": torch.float64}
# The reference README's tolerances for codec maps and velocities, and for samples. The release computes its multistep
# weights in float32 (up to 6e-7 off the exact ones, which we use), so float64 samples agree to 1e-6, not 1e-9.
ATOL = {"f32": 5e-5, "f64": 1e-9}
SAMPLE_ATOL = {"f32": 2e-4, "f64": 1e-6}
SAMPLE_NAME = re.compile(r"sample_(?P<sampler>adam2|euler)_n(?P<steps>\d+)_(?P<dtype>f32|f64)")
SOLVER_ORDER = {"adam2": 2, "euler": 1}
# Differing uint8 values allowed between our reconstruction and the release's, each explained by rounding (below).
MAX_ROUNDING_DIFFERENCES = 1e-3  # fraction of the values


def stored_samples(reference_io: dict[str, torch.Tensor]) -> list[tuple[str, str, int, str]]:
    """`(name, sampler, num_steps, dtype suffix)` of every sampler run stored in an io file, from the tensor names."""
    runs = []
    for name in sorted(reference_io):
        match = SAMPLE_NAME.fullmatch(name)
        if match is not None:
            runs.append((name, match["sampler"], int(match["steps"]), match["dtype"]))
    return runs


def uint8_differences(
    pipe: CodPipeline, sample: torch.Tensor, reference_uint8: torch.Tensor, atol: float
) -> tuple[int, int]:
    """
    `(differing, unexplained)`: how many uint8 values of our reconstruction of `sample` differ from the release's
    `(B, 3, H, W)` `reference_uint8`, and how many of those no float sample within `atol` of ours explains.

    The release maps its float sample to uint8 in bfloat16 arithmetic, where a step of the 8-bit mantissa near 255 is
    a whole level: a sample that agrees to 1e-6 can still land one or two levels away when it sits near a rounding
    boundary. The mapping is monotonic, so a value is explained when the reference lies between the mappings of
    `sample - atol` and `sample + atol`.
    """

    def to_uint8(values: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(CodPipeline.quantize_uint8(pipe.to_images(values).bfloat16())).permute(0, 3, 1, 2)

    reference = reference_uint8.to(torch.uint8)
    ours, low, high = to_uint8(sample), to_uint8(sample - atol), to_uint8(sample + atol)
    differing = ours != reference
    unexplained = differing & ((reference < low) | (reference > high))
    return int(differing.sum()), int(unexplained.sum())
