"""Seeds derived from integers, so that every random draw of a run is a pure function of the seed and a position."""

import numpy as np


def derive_seed(*values: int) -> int:
    """A 63-bit seed derived from integers with a stable hash (`numpy.random.SeedSequence`)."""
    return int(
        np.random.SeedSequence([int(value) for value in values]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)
    )
