"""The released CoD-Lite checkpoints (Hugging Face hub, `zhaoyangjia/CoD_Lite`): what `cod-diffc convert --variant`
offers, importable without torch."""

from dataclasses import dataclass
from typing import Any


HUB_REPO = "zhaoyangjia/CoD_Lite"

RELEASED_INIT_ARGS = {
    "pred": "x",
    "in_channels": 3,
    "patch_size": 16,
    "hidden_size_x": 32,
    "hidden_size": 384,
    "num_blocks": 24,
    "num_cond_blocks": 21,
    "light": True,
    "up2x": True,
}
"""The official `init_args` every released CoD-Lite network shares; the rate sets `ds` and `codebook_bits`."""


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One released CoD-Lite checkpoint: its file on the hub, its kind, and the rate of its condition codec."""

    hub_file: str
    kind: str
    downsampling: int
    codebook_bits: int

    @property
    def init_args(self) -> dict[str, Any]:
        return {**RELEASED_INIT_ARGS, "ds": self.downsampling, "codebook_bits": self.codebook_bits}


RELEASED_CHECKPOINTS = {
    "cod-lite-pretrain": ReleasedCheckpoint("CoD_Lite_pretrain.pt", "pretrain", 32, 4),
    "cod-lite-0.0039": ReleasedCheckpoint("CoD_Lite_bpp_0_0039.pt", "onestep", 32, 4),
    "cod-lite-0.0078": ReleasedCheckpoint("CoD_Lite_bpp_0_0078.pt", "onestep", 32, 8),
    "cod-lite-0.0156": ReleasedCheckpoint("CoD_Lite_bpp_0_0156.pt", "onestep", 16, 4),
    "cod-lite-0.0312": ReleasedCheckpoint("CoD_Lite_bpp_0_0312.pt", "onestep", 16, 8),
    "cod-lite-0.125": ReleasedCheckpoint("CoD_Lite_bpp_0_1250.pt", "onestep", 8, 8),
    "cod-lite-0.5": ReleasedCheckpoint("CoD_Lite_bpp_0_5000.pt", "onestep", 4, 8),
}
"""`cod-diffc convert --variant` name -> the released checkpoint: the pre-trained model and the six one-step codecs
(named for their bits per pixel)."""
