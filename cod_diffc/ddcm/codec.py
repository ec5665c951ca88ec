r"""The DDCM family: compression by choosing each reverse step's noise from a seeded codebook.

DDCM (Ohayon, Manor, Michaeli, Elad, ICML 2025, https://huggingface.co/papers/2502.01189) runs an ancestral
(DDPM-style) reverse process in which the fresh noise of every step is replaced by an atom of a fixed, seeded
codebook; Turbo-DDCM (Vaisman et al., ICLR 2026) combines several signed atoms of a large codebook per step, chosen
in closed form. On any backbone, in VP terms, step `n` goes from `t = t_n` to `s = t_{n+1}` of the schedule:

.. code-block:: none

    z_t ──model──► x0_hat, p(z_s | z_t) = N(a z_t + b x0_hat, std**2 I)
                    │
    encoder only:   mu = b (z_0 - x0_hat) / std            (the direction that moves z_s toward the image)
                    scores = <atom_k, mu_block> for every atom k of every block       (one matrix product)
       DDCM:        k* = argmax_k scores                              noise = atom_k*             log2 K bits
       Turbo-DDCM:  the M atoms of largest |score|, signs s = sign(score)
                                                        noise = sum_j s_j atom_kj / sqrt(M)   log2 C(K, M) + M bits
                    │
    both sides:     z_s = a z_t + b x0_hat + std * noise

The choices are all the stream carries besides the backbone's condition ([`~ddcm.index_coding`], exact cost); the
decoder replays the sampler with the same codebooks ([`~ddcm.codebook`], regenerating only the atoms chosen) and
needs no channel simulation: decoding is the sampler itself. The first `stop_step` steps are coded; the decoder
then denoises the noisy latent at `t_stop` (probability-flow ODE or posterior mean), as DiffC's does. Rate control
by target bpp: all steps with the most atoms per step `M` that fit, else one atom per step over as many steps as
fit; then the first `E` steps take one atom more, for as many steps as the remaining bytes allow.

What this implementation adds to the papers, for large latents on a CPU: a latent of more than `block_width`
coordinates is split into blocks, each with its own codebook drawn from one shared atom pool (see
[`~ddcm.codebook`]); a latent within `block_width` (Stable Diffusion at 512 x 512) has one codebook, as in the papers.
Turbo-DDCM's coefficients are unit signs (no magnitude levels), and the schedule is DiffC's (uniform in `t`).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from cod_diffc.backbones.adapter import BackboneAdapter, Condition
from cod_diffc.backbones.sampling import ReverseStep
from cod_diffc.codecs.codec import Codec, DecodedLatent, check_target_bpp
from cod_diffc.codecs.container import Container, read_container, write_container
from cod_diffc.codecs.core import (
    DEFAULT_MAX_LATENT_ELEMENTS,
    EncoderSetup,
    initial_noise,
    new_container,
    posterior_offset,
    prepare_decode,
    prepare_encode,
    run_reverse_process,
    target_latent,
)
from cod_diffc.codecs.devices import codec_precision
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.errors import StreamError

from .bitstream import DDCMPayload, read_payload, write_payload
from .codebook import BlockLayout, StepCodebook
from .index_coding import pack_digits, packed_size, subset_rank, subset_unrank, unpack_digits


INITIAL_NOISE_KEY = "ddcm-initial-noise"
"""Label of the DDCM family's initial noise (frozen: streams depend on it)."""


@dataclass(frozen=True)
class DDCMVariant:
    r"""
    The settings of a DDCM-family encoder (a decoder reads them from the stream).

    Parameters:
        signed (`bool`): Turbo-DDCM's signed multi-atom steps, or DDCM's single unsigned atom.
        schedule ([`~codecs.schedule.DiffCSchedule`]): The step times.
        codebook_bits (`int`): `log2 K`, atoms per block and step.
        block_width (`int`): Most latent coordinates per codebook.
        min_block_width (`int`): Fewest latent coordinates per codebook that rate control may choose.
        min_coded_fraction (`float`): The share of the schedule that one-atom steps must reach before rate control
            narrows the codebooks ([`allocate`]).
        max_atoms (`int`): Most atoms per block and step that rate control may choose (1 for DDCM).
    """

    signed: bool
    schedule: DiffCSchedule
    codebook_bits: int
    block_width: int
    min_block_width: int
    min_coded_fraction: float
    max_atoms: int

    def __post_init__(self):
        if not self.signed and self.max_atoms != 1:
            raise ValueError(f"DDCM chooses one atom per step, got max_atoms={self.max_atoms}")
        if not 1 <= self.min_block_width <= self.block_width:
            raise ValueError(f"min_block_width must lie in [1, block_width], got {self.min_block_width}")
        if not 0 <= self.min_coded_fraction <= 1:
            raise ValueError(f"min_coded_fraction must lie in [0, 1], got {self.min_coded_fraction}")
        # The payload's own checks, on the settings the stream will record.
        DDCMPayload(1.0, 1.0, self.schedule, self.codebook_bits, self.block_width, self.max_atoms, 0, 0, b"")


def step_radix(codebook_size: int, num_atoms: int, signed: bool) -> int:
    """The number of choices of one block in one step: `C(K, M) * 2**M` signed, `K` unsigned (`M = 1`)."""
    return math.comb(codebook_size, num_atoms) * 2**num_atoms if signed else codebook_size


@dataclass(frozen=True)
class DDCMEncodeResult:
    r"""
    The output of [`encode`].

    Attributes:
        stream (`bytes`): The whole file.
        bpp (`float`): `8 * len(stream) / (H * W)`.
        stop_step (`int`), num_atoms (`int`), extra_atom_steps (`int`), block_width (`int`): What rate control
            chose: the coded steps, the atoms per block and step `M`, how many first steps take `M + 1`, and the
            codebooks' width.
        latent (`torch.Tensor`): `(1, C, h, w)` noisy latent at `t`, which [`decode`] returns bit for bit on the
            same device.
        t (`float`): Its time.
        condition ([`~backbones.adapter.Condition`]): The backbone's condition of the image.
    """

    stream: bytes
    bpp: float
    stop_step: int
    num_atoms: int
    extra_atom_steps: int
    block_width: int
    latent: torch.Tensor
    t: float
    condition: Condition


@dataclass(frozen=True)
class DDCMDecodeResult(DecodedLatent):
    r"""
    The output of [`decode`]: the [`~codecs.codec.DecodedLatent`] every codec decodes to (the noisy latent `(1, C,
    h, w)` at time `t`, the condition, the stream's guidance and image size), and the parsed container and payload.
    """

    container: Container
    payload: DDCMPayload


def _signed_coefficients(signs: torch.Tensor) -> torch.Tensor:
    """`(B, M)` float32 signs to the coefficients `s_j / sqrt(M)`, the same bits on the encoder and the decoder side
    (one function, so the two cannot round differently)."""
    return signs / math.sqrt(signs.shape[1])


def _select(scores: torch.Tensor, num_atoms: int, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, M)` increasing atom indices and their `(B, M)` coefficients, from `(K, B)` scores."""
    if not signed:
        return scores.argmax(dim=0)[:, None], torch.ones(scores.shape[1], 1, device=scores.device)
    indices = scores.abs().topk(num_atoms, dim=0).indices.T.sort(dim=1).values  # (B, M)
    signs = torch.where(scores.T.gather(1, indices) < 0, -1.0, 1.0)  # (B, M)
    return indices, _signed_coefficients(signs)


def _digits(indices: torch.Tensor, coefficients: torch.Tensor, signed: bool) -> list[int]:
    """One mixed-radix digit per block: the atom index, or the subset rank times `2**M` plus the sign bits."""
    if not signed:
        return indices[:, 0].tolist()
    digits = []
    for block_indices, block_coefficients in zip(indices.tolist(), coefficients.tolist()):
        sign_bits = sum(1 << j for j, coefficient in enumerate(block_coefficients) if coefficient < 0)
        digits.append(subset_rank(block_indices) * 2 ** len(block_indices) + sign_bits)
    return digits


def _from_digits(
    digits: list[int], codebook_size: int, num_atoms: int, signed: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """[`_digits`]'s inverse: `(B, M)` indices and coefficients."""
    if not signed:
        return torch.tensor(digits, device=device)[:, None], torch.ones(len(digits), 1, device=device)
    indices, signs = [], []
    for digit in digits:
        rank, sign_bits = divmod(digit, 2**num_atoms)
        indices.append(subset_unrank(rank, num_atoms, codebook_size))
        signs.append([-1.0 if sign_bits >> j & 1 else 1.0 for j in range(num_atoms)])
    return torch.tensor(indices, device=device), _signed_coefficients(torch.tensor(signs, device=device))


def digit_runs(payload: DDCMPayload, num_blocks: int, signed: bool) -> list[tuple[int, int]]:
    """The `(radix, count)` runs of a stream's digits: `num_blocks` per coded step, steps in order."""
    runs = []
    for first, last in ((0, payload.extra_atom_steps), (payload.extra_atom_steps, payload.stop_step)):
        if last > first:
            radix = step_radix(payload.codebook_size, payload.atoms_at(first), signed)
            runs.append((radix, (last - first) * num_blocks))
    return runs


def allocate(
    variant: DDCMVariant, header: DDCMPayload, dim: int, fits: Callable[[DDCMPayload], bool]
) -> tuple[DDCMPayload, BlockLayout]:
    r"""
    Rate control: the allocation of the largest file that `fits`, and its block layout.

    1. The block width: the narrowest of `block_width, block_width / 2, ...` (down to `min_block_width`) whose
       one-atom steps still reach `min_coded_fraction` of the schedule; the widest if none does. More, narrower
       codebooks choose the noise more finely per bit; fewer steps leave more noise for the decoder to remove.
    2. All steps with the most atoms `M` a step that fit, else one atom over as many steps as fit.
    3. The first `E` steps with `M + 1` atoms, for the largest `E` that fits.

    Args:
        variant ([`DDCMVariant`]): The encoder's settings.
        header ([`~ddcm.bitstream.DDCMPayload`]): The payload's fixed fields (guidance, schedule, codebook size).
        dim (`int`): Coordinates of the latent.
        fits (`Callable`): Whether the file of a payload (whose choices have their final length) fits the target.

    Returns:
        The payload (choices zero bytes of the right length) and its [`~ddcm.codebook.BlockLayout`].
    """
    num_steps = variant.schedule.num_steps

    def allocation(width: int, num_atoms: int, stop_step: int, extra_atom_steps: int = 0) -> DDCMPayload:
        payload = replace(
            header, block_width=width, num_atoms=num_atoms, stop_step=stop_step, extra_atom_steps=extra_atom_steps
        )
        runs = digit_runs(payload, BlockLayout.of(dim, width).num_blocks, variant.signed)
        return replace(payload, choices=bytes(packed_size(runs)))

    def one_atom_steps(width: int) -> int:
        return max([n for n in range(num_steps + 1) if n == 0 or fits(allocation(width, 1, n))])

    widths = [variant.block_width]
    while widths[-1] // 2 >= variant.min_block_width:
        widths.append(widths[-1] // 2)
    enough = math.ceil(variant.min_coded_fraction * num_steps)
    width = next((width for width in reversed(widths) if one_atom_steps(width) >= enough), widths[0])

    fitting = [atoms for atoms in range(1, variant.max_atoms + 1) if fits(allocation(width, atoms, num_steps))]
    num_atoms = max(fitting, default=1)
    stop_step = num_steps if fitting else one_atom_steps(width)
    extra_atom_steps = 0
    if num_atoms < variant.max_atoms:
        candidates = range(1, stop_step + 1)
        extra_atom_steps = max([e for e in candidates if fits(allocation(width, num_atoms, stop_step, e))], default=0)
    return allocation(width, num_atoms, stop_step, extra_atom_steps), BlockLayout.of(dim, width)


@codec_precision
def encode(
    image: torch.Tensor,
    adapter: BackboneAdapter,
    codec_name: str,
    variant: DDCMVariant,
    *,
    target_bpp: float,
    seed: int = 0,
    guidance_scale: float | None = None,
    denoise_guidance_scale: float | None = None,
    clamp_targets: bool = False,
    progress: bool = True,
) -> DDCMEncodeResult:
    r"""
    Encodes an image with a DDCM-family codec into the largest file that fits `target_bpp`.

    Args:
        image (`torch.Tensor`): `(1, 3, H, W)` image in [0, 1], of any size (mirror-padded for the backbone).
        adapter ([`~backbones.adapter.BackboneAdapter`]): The backbone.
        codec_name (`str`), variant ([`DDCMVariant`]): The name the container records, the encoder's settings.
        target_bpp (`float`): Bits per pixel of the whole file.
        seed (`int`, defaults to 0): Seed of the codebooks and the initial noise, in [0, 2**64).
        guidance_scale (`float`, *optional*): Guidance of the coded steps (default: the backbone's).
        denoise_guidance_scale (`float`, *optional*): Guidance the decoder denoises with (default: `guidance_scale`).
        clamp_targets (`bool`, defaults to `False`): Give a target below the smallest file that file.
        progress (`bool`, defaults to `True`): Show a progress bar.

    Raises:
        `ValueError`: For a target below the smallest file (unless `clamp_targets`), naming the smallest;
            [`~backbones.resources.ImageTooLargeError`] for an image the device has not the memory for.
    """
    check_target_bpp(target_bpp)
    setup = prepare_encode(image, adapter, guidance_scale, denoise_guidance_scale)
    container = new_container(codec_name, adapter, setup, seed, payload=b"")
    allocation, layout = _allocate_bytes(container, variant, setup, target_bpp, clamp_targets)
    chooser = _AtomChooser(seed, layout, variant, allocation, target_latent(adapter, setup))
    latent, _ = run_reverse_process(
        adapter,
        initial_noise(seed, INITIAL_NOISE_KEY, setup.latent_shape, adapter.device),  # z_{t_0}
        variant.schedule,
        allocation.stop_step,
        setup.condition,
        setup.guidance_scale,
        chooser.noise,
        description=f"{codec_name} encode",
        progress=progress,
    )
    choices = pack_digits(chooser.digits, digit_runs(allocation, layout.num_blocks, variant.signed))
    stream = write_container(replace(container, payload=write_payload(replace(allocation, choices=choices))))
    return DDCMEncodeResult(
        stream=stream,
        bpp=8 * len(stream) / (setup.height * setup.width),
        stop_step=allocation.stop_step,
        num_atoms=allocation.num_atoms,
        extra_atom_steps=allocation.extra_atom_steps,
        block_width=allocation.block_width,
        latent=latent,
        t=variant.schedule.time(allocation.stop_step),
        condition=setup.condition,
    )


class _AtomChooser:
    """The DDCM family's part of an encode: each step's noise, the codebook atoms best aligned with the offset
    towards the clean `target` (`(1, C, h, w)`), and the digits that name them."""

    def __init__(
        self, seed: int, layout: BlockLayout, variant: DDCMVariant, allocation: DDCMPayload, target: torch.Tensor
    ):
        self.seed, self.layout, self.variant, self.allocation, self.target = seed, layout, variant, allocation, target
        self.digits: list[int] = []

    def noise(self, n: int, step: ReverseStep, x0_hat: torch.Tensor) -> torch.Tensor:
        """Step `n`'s combination of atoms, `(d,)`."""
        codebook = StepCodebook(self.seed, n, self.layout, 2**self.variant.codebook_bits, x0_hat.device)
        scores = codebook.scores(posterior_offset(step, self.target, x0_hat))
        signed = self.variant.signed
        indices, coefficients = _select(scores, self.allocation.atoms_at(n), signed)  # (B, M_n)
        self.digits.extend(_digits(indices, coefficients, signed))
        return codebook.combine(indices, coefficients, regenerate=False)  # (d,)


def _allocate_bytes(
    container: Container, variant: DDCMVariant, setup: EncoderSetup, target_bpp: float, clamp_targets: bool
) -> tuple[DDCMPayload, BlockLayout]:
    """Rate control ([`allocate`]) for the largest file within `target_bpp`; `ValueError` for a target below the
    smallest file (header and side information), unless `clamp_targets`."""
    header = DDCMPayload(
        denoise_guidance_scale=setup.denoise_guidance_scale,
        encoding_guidance_scale=setup.guidance_scale,
        schedule=variant.schedule,
        codebook_bits=variant.codebook_bits,
        block_width=variant.block_width,  # rate control may choose a narrower one
        num_atoms=1,
        stop_step=0,
        extra_atom_steps=0,
        choices=b"",
    )
    pixels = setup.height * setup.width
    budget = math.floor(target_bpp * pixels / 8)  # bytes

    def file_size(payload: DDCMPayload) -> int:
        return len(write_container(replace(container, payload=write_payload(payload))))

    if file_size(header) > budget and not clamp_targets:
        raise ValueError(
            f"target bpp {target_bpp} is below the smallest file this image and backbone allow "
            f"({8 * file_size(header) / pixels:.6g} bpp: header and side information)"
        )
    return allocate(variant, header, math.prod(setup.latent_shape), lambda payload: file_size(payload) <= budget)


def read_ddcm_stream(stream: bytes, codec_name: str) -> tuple[Container, DDCMPayload]:
    """The container and payload of a stream of codec `codec_name`; [`~errors.StreamError`] for anything else."""
    container = read_container(stream)
    if container.codec != codec_name:
        raise StreamError(f"not a {codec_name} stream: made by codec {container.codec!r}")
    payload = read_payload(container.payload)
    if family_codec(codec_name).default_max_atoms == 1 and payload.atoms_at(0) != 1:
        raise StreamError(f"corrupt stream: a DDCM step chooses one atom, the stream says {payload.atoms_at(0)}")
    return container, payload


@codec_precision
def decode(
    stream: bytes,
    adapter: BackboneAdapter,
    codec_name: str,
    *,
    max_latent_elements: int = DEFAULT_MAX_LATENT_ELEMENTS,
    progress: bool = True,
) -> DDCMDecodeResult:
    r"""
    Decodes a DDCM-family file to the noisy latent at its stop step, bit-exactly the encoder's on the same device.

    Raises:
        [`~errors.StreamError`]: If the stream is malformed, of another codec, or made by another backbone or model.
    """
    container, payload = read_ddcm_stream(stream, codec_name)
    container.check_backbone(adapter)
    setup = prepare_decode(adapter, container.height, container.width, container.side_info, max_latent_elements)
    layout = BlockLayout.of(math.prod(setup.latent_shape), payload.block_width)
    signed = family_codec(codec_name).signed
    runs = digit_runs(payload, layout.num_blocks, signed)
    # Bounded before any big-integer work: the digits' ideal size must match the bytes the stream carries.
    if sum(count * math.log2(radix) for radix, count in runs) > 8 * len(payload.choices) + 8:
        raise StreamError(
            f"corrupt stream: {len(payload.choices)} bytes cannot hold {payload.stop_step * layout.num_blocks} atom "
            "choices"
        )
    digits = unpack_digits(payload.choices, runs)

    def atoms(n: int, step: ReverseStep, x0_hat: torch.Tensor) -> torch.Tensor:
        step_digits = digits[n * layout.num_blocks : (n + 1) * layout.num_blocks]
        indices, coefficients = _from_digits(
            step_digits, payload.codebook_size, payload.atoms_at(n), signed, x0_hat.device
        )
        codebook = StepCodebook(container.seed, n, layout, payload.codebook_size, x0_hat.device)
        return codebook.combine(indices, coefficients, regenerate=True)  # (d,)

    latent = initial_noise(container.seed, INITIAL_NOISE_KEY, setup.latent_shape, adapter.device)  # z_{t_0}
    latent, _ = run_reverse_process(
        adapter,
        latent,
        payload.schedule,
        payload.stop_step,
        setup.condition,
        payload.encoding_guidance_scale,
        atoms,
        description=f"{codec_name} decode",
        progress=progress,
    )
    t = payload.schedule.time(payload.stop_step)
    guidance = payload.denoise_guidance_scale
    return DDCMDecodeResult(
        latent, t, setup.condition, guidance, container.height, container.width, container=container, payload=payload
    )


class _DDCMFamilyCodec(Codec):
    r"""
    What DDCM and Turbo-DDCM share: the encoder's settings, and [`encode`] / [`decode`] with them. A variant sets
    `signed` and its defaults `default_num_steps` and `default_max_atoms`.

    Args:
        num_steps (`int`, *optional*): Steps of the schedule (default: the variant's).
        t_end (`float`, defaults to 0.02): The last time of the schedule.
        codebook_bits (`int`, defaults to 10): `log2 K` (the paper's K = 16,384 is 14; 10 keeps the atom pool,
            `K x block_width` numbers, at 16 M, about 3 s to build once per process on a 2-core CPU).
        block_width (`int`, defaults to 16384): Most latent coordinates per codebook.
        min_block_width (`int`, defaults to 1024): Fewest latent coordinates per codebook rate control may choose.
        min_coded_fraction (`float`, defaults to 0.5): See [`allocate`].
        max_atoms (`int`, *optional*): Most atoms per block and step (default: the variant's; DDCM takes only 1).
        guidance_scale, denoise_guidance_scale (`float`, *optional*): As for DiffC.
    """

    signed: bool
    default_num_steps: int
    default_max_atoms: int

    def __init__(
        self,
        num_steps: int | None = None,
        t_end: float = 0.02,
        codebook_bits: int = 10,
        block_width: int = 16384,
        min_block_width: int = 1024,
        min_coded_fraction: float = 0.5,
        max_atoms: int | None = None,
        guidance_scale: float | None = None,
        denoise_guidance_scale: float | None = None,
    ):
        num_steps = self.default_num_steps if num_steps is None else num_steps
        max_atoms = self.default_max_atoms if max_atoms is None else max_atoms
        self.variant = DDCMVariant(
            signed=self.signed,
            schedule=DiffCSchedule(num_steps=num_steps, t_end=t_end),
            codebook_bits=codebook_bits,
            block_width=block_width,
            min_block_width=min_block_width,
            min_coded_fraction=min_coded_fraction,
            max_atoms=max_atoms,
        )
        self.guidance_scale = guidance_scale
        self.denoise_guidance_scale = denoise_guidance_scale

    def encode(self, image, adapter, *, target_bpp, seed=0, clamp_targets=False, progress=True) -> DDCMEncodeResult:
        """[`encode`] with this codec's settings."""
        return encode(
            image,
            adapter,
            self.name,
            self.variant,
            target_bpp=target_bpp,
            seed=seed,
            guidance_scale=self.guidance_scale,
            denoise_guidance_scale=self.denoise_guidance_scale,
            clamp_targets=clamp_targets,
            progress=progress,
        )

    def compress(self, image, adapter, *, target_bpp, seed=0, clamp_targets=False, progress=True) -> bytes:
        return self.encode(
            image, adapter, target_bpp=target_bpp, seed=seed, clamp_targets=clamp_targets, progress=progress
        ).stream

    def decode(self, stream: bytes, adapter: BackboneAdapter, *, progress: bool = True) -> DDCMDecodeResult:
        """[`decode`] for this codec's streams."""
        return decode(stream, adapter, self.name, progress=progress)

    def decompress_latent(self, stream, adapter, *, progress=True) -> DDCMDecodeResult:
        return self.decode(stream, adapter, progress=progress)

    def stream_backbone(self, stream: bytes) -> str:
        return read_ddcm_stream(stream, self.name)[0].backbone

    def settings(self) -> dict:
        variant = self.variant
        return {
            "num_steps": variant.schedule.num_steps,
            "t_end": variant.schedule.t_end,
            "codebook_bits": variant.codebook_bits,
            "block_width": variant.block_width,
            "min_block_width": variant.min_block_width,
            "min_coded_fraction": variant.min_coded_fraction,
            "max_atoms": variant.max_atoms,
            "guidance_scale": self.guidance_scale,
            "denoise_guidance_scale": self.denoise_guidance_scale,
        }


class TurboDDCMCodec(_DDCMFamilyCodec):
    """Turbo-DDCM: per step and block, the `M` atoms of a `K`-atom codebook best aligned with the residual, with
    signs; 20 steps (the papers use tens) and up to 64 atoms a step by default. Settings: [`_DDCMFamilyCodec`]."""

    name = "turbo-ddcm"
    summary = "Turbo-DDCM: several signed codebook atoms per step, chosen in closed form (fast, few steps)"
    signed = True
    default_num_steps = 20
    default_max_atoms = 64


class DDCMCodec(_DDCMFamilyCodec):
    """DDCM: per step and block, the one atom of a `K`-atom codebook best aligned with the residual; 100 steps by
    default (five times Turbo-DDCM's: DDCM needs many steps of one atom; the paper runs 1,000 on a GPU). Settings:
    [`_DDCMFamilyCodec`]."""

    name = "ddcm"
    summary = "DDCM: one codebook atom per step in place of the sampler's noise (many steps)"
    signed = False
    default_num_steps = 100
    default_max_atoms = 1


def family_codec(codec_name: str) -> type[_DDCMFamilyCodec]:
    """The DDCM-family codec class called `codec_name`; `ValueError` for another name."""
    for codec in (TurboDDCMCodec, DDCMCodec):
        if codec.name == codec_name:
            return codec
    raise ValueError(f"{codec_name!r} is not a codec of the DDCM family (turbo-ddcm, ddcm)")
