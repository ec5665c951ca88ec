r"""The payload of a DDCM-family stream in the shared container ([`~codecs.container`]).

    field                       bytes          notes
    denoise guidance scale      2              float16
    encoding guidance scale     2              float16
    schedule num_steps          varint
    schedule t_end              2              float16
    log2 codebook size          1              K = 2**k atoms per block and step, 1 <= k <= 16
    block width                 varint         most coordinates per block, 1 to 2**20
    atoms per step              varint         M atoms per block and step (1 for DDCM)
    stop step                   varint         number of coded steps, 0..num_steps
    steps with one more atom    varint         the first E coded steps take M + 1 atoms (0 for DDCM)
    atom choices                varint + len   the mixed-radix integer of every choice ([`~ddcm.index_coding`])

Which variant made the stream (signed multi-atom Turbo-DDCM, or single-atom DDCM) is the container's codec name.
"""

from dataclasses import dataclass

from cod_diffc.codecs.container import ByteReader, float16, sized, varint
from cod_diffc.codecs.schedule import MAX_NUM_STEPS, DiffCSchedule, check_float16_scale
from cod_diffc.errors import StreamError


MAX_CODEBOOK_BITS = 16
MAX_BLOCK_WIDTH = 2**20
MAX_ATOMS = 256


@dataclass(frozen=True)
class DDCMPayload:
    r"""
    The fields of a DDCM-family payload.

    Parameters:
        denoise_guidance_scale (`float`), encoding_guidance_scale (`float`): float16-representable guidance scales.
        schedule ([`~codecs.schedule.DiffCSchedule`]): The step times.
        codebook_bits (`int`): `log2 K`.
        block_width (`int`): Most coordinates per block.
        num_atoms (`int`): `M`, atoms per block and step.
        stop_step (`int`): Steps coded.
        extra_atom_steps (`int`): `E`: steps `0..E-1` take `M + 1` atoms (finer rate control).
        choices (`bytes`): The packed atom choices.
    """

    denoise_guidance_scale: float
    encoding_guidance_scale: float
    schedule: DiffCSchedule
    codebook_bits: int
    block_width: int
    num_atoms: int
    stop_step: int
    extra_atom_steps: int
    choices: bytes

    def __post_init__(self):
        for which in ("denoise_guidance_scale", "encoding_guidance_scale"):
            check_float16_scale(which, getattr(self, which))
        if not 1 <= self.codebook_bits <= MAX_CODEBOOK_BITS:
            raise ValueError(f"codebook size must be 2**1 to 2**{MAX_CODEBOOK_BITS}, got 2**{self.codebook_bits}")
        if not 1 <= self.block_width <= MAX_BLOCK_WIDTH:
            raise ValueError(f"block width must lie in [1, {MAX_BLOCK_WIDTH}], got {self.block_width}")
        most_atoms = min(MAX_ATOMS, 2**self.codebook_bits)
        if not 1 <= self.num_atoms + (self.extra_atom_steps > 0) <= most_atoms:
            raise ValueError(f"atoms per step must lie in [1, {most_atoms}], got {self.num_atoms} (+1 in some steps)")
        if not 0 <= self.stop_step <= self.schedule.num_steps:
            raise ValueError(f"stop step {self.stop_step} outside [0, {self.schedule.num_steps}]")
        if not 0 <= self.extra_atom_steps <= self.stop_step:
            raise ValueError(f"steps with one more atom {self.extra_atom_steps} outside [0, {self.stop_step}]")

    @property
    def codebook_size(self) -> int:
        return 2**self.codebook_bits

    def atoms_at(self, step: int) -> int:
        """Atoms per block in coded step `step`."""
        return self.num_atoms + (step < self.extra_atom_steps)


def write_payload(payload: DDCMPayload) -> bytes:
    """The bytes of `payload` (see the module docstring)."""
    return b"".join(
        [
            float16(payload.denoise_guidance_scale),
            float16(payload.encoding_guidance_scale),
            varint(payload.schedule.num_steps),
            float16(payload.schedule.t_end),
            bytes([payload.codebook_bits]),
            varint(payload.block_width),
            varint(payload.num_atoms),
            varint(payload.stop_step),
            varint(payload.extra_atom_steps),
            sized(payload.choices),
        ]
    )


def read_payload(data: bytes) -> DDCMPayload:
    """Parses and validates a payload; [`~errors.StreamError`] naming the field for anything invalid."""
    reader = ByteReader(data)
    try:
        fields = {
            "denoise_guidance_scale": reader.float16("denoise guidance scale"),
            "encoding_guidance_scale": reader.float16("encoding guidance scale"),
            "schedule": DiffCSchedule(
                num_steps=reader.varint("schedule num_steps", MAX_NUM_STEPS, min_value=1),
                t_end=reader.float16("schedule t_end"),
            ),
            "codebook_bits": reader.take(1, "log2 codebook size")[0],
            "block_width": reader.varint("block width", MAX_BLOCK_WIDTH, min_value=1),
            "num_atoms": reader.varint("atoms per step", MAX_ATOMS, min_value=1),
        }
        fields["stop_step"] = reader.varint("stop step", fields["schedule"].num_steps)
        fields["extra_atom_steps"] = reader.varint("steps with one more atom", fields["stop_step"])
        fields["choices"] = reader.sized("atom choices")
        reader.finish()
        return DDCMPayload(**fields)
    except StreamError:
        raise
    except ValueError as error:
        raise StreamError(f"corrupt stream: {error}") from None
