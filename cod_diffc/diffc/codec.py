r"""DiffC: lossy compression by sending a noisy latent with reverse channel coding (Theis et al. 2022,
https://huggingface.co/papers/2206.08889; Vonderfecht & Liu, ICLR 2025, https://huggingface.co/papers/2411.08862).

.. code-block:: none

    image ─encode_image─► z_0 (encoder only)                z_{t_0} ~ N(0, I) from the seed (both sides)
                           │                                       │
    step n < stop step:    └─► mu = (q_mean - p_mean) / std ─channel─► index ─► z_{t_n+1} = p_mean + std * z_index
                                                                              │
    decoder:   z_{t_stop} ─denoise (probability-flow ODE)─► ẑ_0 ─decode_latent─► image

Encoder and decoder share the seeded initial noise `z_{t_0}` and, at every step `t = t_n -> s = t_{n+1}`, the
model's reverse step `p(z_s | z_t) = N(a z_t + b x0_hat, std**2 I)` (DDPM form with the backbone's `x0_hat`). The
encoder knows the posterior `q(z_s | z_t, z_0) = N(a z_t + b z_0, std**2 I)` and sends a sample of it with the
channel simulator at a cost of about `KL(q || p) = |mu|**2 / 2` nats, `mu = b (z_0 - x0_hat) / std`; both sides then
continue from the same `z_s`. The first step starts at `t_0 = 1` from seeded noise: exactly the forward process for
backbones with `alpha(1) = 0` (flow models), the usual approximation for others (Stable Diffusion's `alpha(1)` is
about 0.07). Stopping after `n` steps leaves the decoder with `z_{t_n}`, a sample of the forward process of the image
at time `t_n` (up to the channel simulator's truncation bias), which it denoises with the deterministic
probability-flow ODE. One encode yields every rate: the stream is cut at the chosen stop step.
"""

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from cod_diffc.backbones.adapter import BackboneAdapter, Condition
from cod_diffc.backbones.sampling import ReverseStep
from cod_diffc.codecs.codec import Codec, CodedStream, DecodedLatent, check_decode_method, latent_to_image
from cod_diffc.codecs.container import check_backbone
from cod_diffc.codecs.core import (
    DEFAULT_MAX_LATENT_ELEMENTS,
    EncoderSetup,
    initial_noise,
    posterior_offset,
    prepare_decode,
    prepare_encode,
    run_reverse_process,
    target_latent,
)
from cod_diffc.codecs.devices import codec_precision
from cod_diffc.codecs.randomness import derive_key
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.errors import StreamError

from .bitstream import DiffCStream, read_stream, write_stream
from .channel import ChannelSimulator, StepCode
from .channel_pooled import PooledPFRSimulator
from .channel_registry import build_channel, channel_config, channel_from_config
from .index_coding import StepCodeWriter


INITIAL_NOISE_KEY, STEP_KEY = "diffc-initial-noise", "diffc-step"
"""Labels of DiffC's shared randomness (frozen: streams depend on them)."""


@dataclass(frozen=True)
class RatePoint:
    r"""
    One cut of an encode: the file for a stop step and what the decoder will reconstruct from it.

    Attributes:
        stop_step (`int`): Number of DiffC steps in the file.
        t (`float`): Time of the decoded noisy latent, `schedule.time(stop_step)`.
        stream (`bytes`): The whole file.
        bpp (`float`): `8 * len(stream) / (H * W)`.
        kl_bits (`float`): Total KL of the steps sent, in bits (the ideal cost of the steps).
        latent (`torch.Tensor`): `(1, C, h, w)` noisy latent at `t`; [`decode`] returns it bit for bit on the
            same device.
    """

    stop_step: int
    t: float
    stream: bytes
    bpp: float
    kl_bits: float
    latent: torch.Tensor


@dataclass
class EncodeResult:
    r"""
    The output of [`encode`]: every step it ran, and the requested cuts.

    Attributes:
        points (`list[RatePoint]`): One per requested stop step or target bpp, in request order.
        step_codes (`list[StepCode]`): The code of every step run.
        step_kl_bits (`list[float]`): `KL(q || p)` of every step run, in bits.
        header ([`DiffCStream`]): The stream fields shared by every cut (its `stop_step` is 0).
        simulator ([`ChannelSimulator`]): The channel simulator that coded the steps.
        condition ([`~backbones.adapter.Condition`]): The backbone's condition of the image, equal to what a decoder
            loads from the side information.
        writer ([`~diffc.index_coding.StepCodeWriter`]): The entropy coder of the step codes, holding every step.
    """

    points: list[RatePoint]
    step_codes: list[StepCode]
    step_kl_bits: list[float]
    header: DiffCStream
    simulator: ChannelSimulator
    condition: Condition
    writer: StepCodeWriter

    def stream(self, stop_step: int) -> bytes:
        """The file cut at `stop_step`, any step from 0 to `len(step_codes)`."""
        if not 0 <= stop_step <= len(self.step_codes):
            raise ValueError(f"stop step {stop_step} outside the encoded range [0, {len(self.step_codes)}]")
        return _cut(self.header, self.writer, stop_step)

    @functools.cached_property
    def file_bytes(self) -> list[int]:
        """Size of the whole file at stop step `n`, for `n = 0..len(step_codes)` (coded on first use: every cut
        is coded in full, so this takes time quadratic in the steps)."""
        return [len(self.stream(n)) for n in range(len(self.step_codes) + 1)]

    def bpp(self, stop_step: int) -> float:
        """Bits per pixel of the whole file cut at `stop_step`."""
        return 8 * len(self.stream(stop_step)) / (self.header.height * self.header.width)


@dataclass(frozen=True)
class DecodeResult(DecodedLatent):
    r"""
    The output of [`decode`]: the [`~codecs.codec.DecodedLatent`] every codec decodes to (the noisy latent at time
    `t`, 1.0 for a condition-only stream; the condition; the stream's guidance and image size), and the parsed
    file.

    Attributes:
        stream ([`DiffCStream`]): The parsed file.
    """

    stream: DiffCStream

    @classmethod
    def of(cls, latent: torch.Tensor, t: float, condition: Condition, stream: DiffCStream) -> "DecodeResult":
        return cls(latent, t, condition, stream.denoise_guidance_scale, stream.height, stream.width, stream)


def default_simulator() -> ChannelSimulator:
    """The reverse channel coder `encode` uses unless told otherwise: the pooled coder with chunks of up to 13 bits
    of KL (K <= 2**15 candidates). In `results/rcc.json` it matches the reference's operating point (14-bit chunks,
    K = 2**16) in rate and fidelity at half the time; see docs/rcc.md."""
    return PooledPFRSimulator(max_chunk_bits=15)


def _cut(header: DiffCStream, writer: StepCodeWriter, stop_step: int) -> bytes:
    """The file of `header` cut after `stop_step` of the steps in `writer`."""
    if stop_step == 0:
        # Nothing coded: a condition-only stream, which is smaller and decodes to the same initial noise.
        return write_stream(replace(header, channel=None, schedule=None, encoding_guidance_scale=1.0))
    return write_stream(replace(header, stop_step=stop_step, step_codes=writer.to_bytes(stop_step)))


def _max_cut_bytes(header: DiffCStream, writer: StepCodeWriter, stop_step: int) -> int:
    """An upper bound of `len(_cut(header, writer, stop_step))` for `stop_step >= 1`, without rANS coding."""
    placeholder = bytes(writer.max_bytes(stop_step))
    return len(write_stream(replace(header, stop_step=stop_step, step_codes=placeholder)))


@codec_precision
def encode(
    image: torch.Tensor,
    adapter: BackboneAdapter,
    *,
    stop_step: int | Sequence[int] | None = None,
    target_bpp: float | Sequence[float] | None = None,
    schedule: DiffCSchedule | None = None,
    seed: int = 0,
    guidance_scale: float | None = None,
    denoise_guidance_scale: float | None = None,
    simulator: ChannelSimulator | None = None,
    clamp_targets: bool = False,
    progress: bool = True,
) -> EncodeResult:
    r"""
    Encodes an image with DiffC, running the schedule only as far as the requested cuts need.
    Args:
        image (`torch.Tensor`): `(1, 3, H, W)` image in [0, 1], of any size (mirror-padded to the backbone's
            `size_multiple`; the stream records the true size, and bpp counts its pixels).
        adapter ([`BackboneAdapter`]): The backbone.
        stop_step (`int` or `Sequence[int]`, *optional*): Cut(s) after these numbers of steps; with neither this nor
            `target_bpp`, the whole schedule.
        target_bpp (`float` or `Sequence[float]`, *optional*): Cut(s) at the last step whose whole file fits in
            `target_bpp * H * W / 8` bytes (the whole schedule for a target above what it reaches).
        schedule, simulator, guidance_scale, denoise_guidance_scale: The encoder's settings, as [`DiffCCodec`]
            takes them (guidance rounded to float16, the stream's precision; the channel configuration is stored).
        seed (`int`, defaults to `0`): Seed of the shared randomness, in [0, 2**64), written into the stream.
        clamp_targets (`bool`, defaults to `False`): Give a `target_bpp` below the smallest file (header and side
            information) that file instead of raising, as a classical codec's lowest quality does.
        progress (`bool`, defaults to `True`): Show a progress bar.

    Returns:
        [`EncodeResult`]: The cuts (files and the noisy latents they decode to), every step's code and KL.

    Raises:
        `ValueError`: For a stop step outside the schedule, or a target below the smallest file (unless
            `clamp_targets`), naming the achievable range; [`~backbones.resources.ImageTooLargeError`] for an image
            the device has not the memory for (before any work).
    """
    schedule, simulator = schedule or DiffCSchedule(), simulator or default_simulator()
    stop_steps, target_bpps = _requested_cuts(stop_step, target_bpp, schedule)
    setup = prepare_encode(image, adapter, guidance_scale, denoise_guidance_scale)
    header = _stream_header(adapter, setup, seed, simulator, schedule)
    coder = _StepEncoder(header, simulator, stop_steps, target_bpps, clamp_targets)
    coder.target = target_latent(adapter, setup)  # (1, C, h, w)
    latent = coder.latents[0] = initial_noise(seed, INITIAL_NOISE_KEY, setup.latent_shape, adapter.device)
    latent, _ = run_reverse_process(
        adapter,
        latent,
        schedule,
        max(stop_steps) if stop_steps else schedule.num_steps,
        setup.condition,
        setup.guidance_scale,
        coder.noise,
        after_step=coder.after_step,
        description="DiffC encode",
        progress=progress,
    )
    return coder.result(latent, setup.condition)


def _stream_header(
    adapter: BackboneAdapter, setup: EncoderSetup, seed: int, simulator: ChannelSimulator, schedule: DiffCSchedule
) -> DiffCStream:
    """The stream's fields but the cut (stop step and step codes)."""
    return DiffCStream(
        backbone=adapter.name,
        fingerprint=adapter.fingerprint(),
        height=setup.height,
        width=setup.width,
        seed=seed,
        denoise_guidance_scale=setup.denoise_guidance_scale,
        side_info=setup.condition.side_info,
        channel=channel_config(simulator),
        schedule=schedule,
        encoding_guidance_scale=setup.guidance_scale,
    )


def _requested_cuts(
    stop_step: int | Sequence[int] | None, target_bpp: float | Sequence[float] | None, schedule: DiffCSchedule
) -> tuple[list[int], list[float]]:
    """The stop steps and target rates asked for, as lists (the whole schedule when neither is given)."""
    if stop_step is not None and target_bpp is not None:
        raise ValueError("give stop_step or target_bpp, not both")
    stop_steps = [schedule.num_steps] if stop_step is None and target_bpp is None else []
    if stop_step is not None:
        stop_steps = [stop_step] if isinstance(stop_step, int) else list(stop_step)
        for step in stop_steps:
            if not 0 <= step <= schedule.num_steps:
                raise ValueError(f"stop step {step} outside the schedule's range [0, {schedule.num_steps}]")
    target_bpps = (
        [] if target_bpp is None else [target_bpp] if isinstance(target_bpp, float | int) else list(target_bpp)
    )
    return stop_steps, target_bpps


class _StepEncoder:
    """DiffC's part of an encode: each step's noise by reverse channel coding towards the clean `target`, and
    where the stream is cut (the requested stop steps, and for each target rate the last step whose whole file fits,
    found as the steps are coded: the file is coded exactly only once its size bound reaches a pending target); it
    keeps the noisy latent of every cut."""

    def __init__(
        self,
        header: DiffCStream,
        simulator: ChannelSimulator,
        stop_steps: list[int],
        target_bpps: list[float],
        clamp_targets: bool,
    ):
        self.header, self.simulator, self.stop_steps = header, simulator, stop_steps
        self.writer = StepCodeWriter(simulator)
        self.bpp_per_byte = 8 / (header.height * header.width)
        smallest = len(_cut(header, self.writer, 0)) * self.bpp_per_byte
        if clamp_targets:
            target_bpps = [max(target, smallest) for target in target_bpps]
        if target_bpps and min(target_bpps) < smallest:
            raise ValueError(
                f"target bpp {min(target_bpps)} is below the smallest file this image and backbone allow "
                f"({smallest:.6g} bpp: header and side information); achievable range starts there and grows with "
                f"the stop step up to {header.schedule.num_steps}"
            )
        self.target_bpps = target_bpps
        self.target: torch.Tensor | None = None  # (1, C, h, w) clean latent
        self.bpp_stops: dict[int, int] = {}  # index into target_bpps -> stop step
        self.latents: dict[int, torch.Tensor] = {}  # stop step -> noisy latent, for the cuts only
        self.step_codes: list[StepCode] = []
        self.step_kl: list[torch.Tensor] = []  # |mu|^2 of every step, on the device

    def noise(self, n: int, step: ReverseStep, x0_hat: torch.Tensor) -> torch.Tensor:
        """Step `n`'s coded sample, `(d,)`."""
        mu = posterior_offset(step, self.target, x0_hat)  # (d,)
        code, sample = self.simulator.encode(mu, derive_key(self.header.seed, STEP_KEY, n))
        self.step_codes.append(code)
        self.writer.append(code)
        self.step_kl.append(mu.double().square().sum())  # read back once, after the loop
        return sample

    def after_step(self, n: int, previous: torch.Tensor, latent: torch.Tensor) -> bool:
        """Records the cuts step `n` ends; `True` once every target has its cut."""
        if n + 1 in self.stop_steps:
            self.latents[n + 1] = latent
        pending = [index for index in range(len(self.target_bpps)) if index not in self.bpp_stops]
        lowest = min((self.target_bpps[index] for index in pending), default=None)
        if lowest is not None and _max_cut_bytes(self.header, self.writer, n + 1) * self.bpp_per_byte > lowest:
            size_bpp = len(_cut(self.header, self.writer, n + 1)) * self.bpp_per_byte
            for index in pending:
                if size_bpp > self.target_bpps[index]:
                    self.bpp_stops[index] = n
                    self.latents[n] = previous
        return bool(self.target_bpps) and len(self.bpp_stops) == len(self.target_bpps)

    def result(self, latent: torch.Tensor, condition: Condition) -> EncodeResult:
        """The requested cuts once the loop ends at `latent` (targets never reached take every coded step)."""
        steps = len(self.step_codes)
        for index in range(len(self.target_bpps)):
            if index not in self.bpp_stops:
                self.bpp_stops[index] = steps
                self.latents[steps] = latent
        step_kl_bits = (0.5 * torch.stack(self.step_kl) / math.log(2)).tolist() if self.step_kl else []
        cuts = self.stop_steps + [self.bpp_stops[index] for index in range(len(self.target_bpps))]
        streams = {n: _cut(self.header, self.writer, n) for n in cuts}
        points = [
            RatePoint(
                stop_step=n,
                t=self.header.schedule.time(n),
                stream=streams[n],
                bpp=len(streams[n]) * self.bpp_per_byte,
                kl_bits=math.fsum(step_kl_bits[:n]),
                latent=self.latents[n],
            )
            for n in cuts
        ]
        return EncodeResult(
            points=points,
            step_codes=self.step_codes,
            step_kl_bits=step_kl_bits,
            header=self.header,
            simulator=self.simulator,
            condition=condition,
            writer=self.writer,
        )


def decode(
    stream: bytes,
    adapter: BackboneAdapter,
    *,
    simulator: ChannelSimulator | None = None,
    max_latent_elements: int = DEFAULT_MAX_LATENT_ELEMENTS,
    progress: bool = True,
) -> DecodeResult:
    r"""
    Decodes a DiffC file to the noisy latent at its stop step, bit-exactly the encoder's on the same device.

    The decoder checks the backbone name and model fingerprint, loads the condition from the side information,
    and replays the steps with the encoder's guidance (from the stream), regenerating only the chosen candidates.

    Args:
        stream (`bytes`): The whole file.
        adapter ([`BackboneAdapter`]): The backbone named in the stream, with the same weights.
        simulator ([`ChannelSimulator`], *optional*): The channel coder; by default the one the stream describes.
            One given here (say with another `tile_size`, which only changes speed) must have the same configuration.
        max_latent_elements (`int`, defaults to `2**26`): Refuse streams whose image size implies a larger latent.
        progress (`bool`, defaults to `True`): Show a progress bar.

    Returns:
        [`DecodeResult`]: The noisy latent, its time, and the parsed stream (for `denoise_guidance_scale`).

    Raises:
        [`~errors.StreamError`]: If the stream is malformed or made by another backbone, model or channel.
    """
    from .index_coding import decode_step_codes

    parsed = read_stream(stream)
    check_backbone(parsed.backbone, parsed.fingerprint, adapter)
    if parsed.channel is not None:
        if simulator is None:
            simulator = channel_from_config(parsed.channel)
        elif channel_config(simulator) != parsed.channel:
            raise StreamError(f"stream coded with another channel simulator configuration than {simulator!r}")
    setup = prepare_decode(adapter, parsed.height, parsed.width, parsed.side_info, max_latent_elements)
    latent = initial_noise(parsed.seed, INITIAL_NOISE_KEY, setup.latent_shape, adapter.device)  # z_{t_0}
    if parsed.schedule is None:
        return DecodeResult.of(latent, 1.0, setup.condition, parsed)
    step_codes = decode_step_codes(parsed.step_codes, parsed.stop_step, simulator)

    def replayed_noise(n: int, step: ReverseStep, x0_hat: torch.Tensor) -> torch.Tensor:
        return simulator.decode(step_codes[n], latent.numel(), derive_key(parsed.seed, STEP_KEY, n), latent.device)

    latent, _ = run_reverse_process(
        adapter,
        latent,
        parsed.schedule,
        parsed.stop_step,
        setup.condition,
        parsed.encoding_guidance_scale,
        replayed_noise,
        description="DiffC decode",
        progress=progress,
    )
    return DecodeResult.of(latent, parsed.schedule.time(parsed.stop_step), setup.condition, parsed)


def compress(
    image: torch.Tensor,
    adapter: BackboneAdapter,
    *,
    stop_step: int | None = None,
    target_bpp: float | None = None,
    **encode_kwargs,
) -> bytes:
    r"""
    Compresses an image into one DiffC file, cut at `stop_step` or at the largest stop step fitting `target_bpp`.

    A convenience over [`encode`] (which takes the same keyword arguments and can return several cuts at once).
    """
    return encode(image, adapter, stop_step=stop_step, target_bpp=target_bpp, **encode_kwargs).points[0].stream


def decompress(
    stream: bytes,
    adapter: BackboneAdapter,
    *,
    method: str = "flow",
    num_denoise_steps: int = 25,
    simulator: ChannelSimulator | None = None,
    progress: bool = True,
) -> torch.Tensor:
    r"""
    Decompresses a DiffC file into a `(1, 3, H, W)` image in [0, 1] of the size the stream records: [`decode`], then
    [`decoded_image`].

    Args:
        method (`str`, defaults to `"flow"`): One of [`~codecs.codec.DECODE_METHODS`]. `"flow"`: the probability-flow ODE in
            `num_denoise_steps` steps with the stream's denoising guidance (sharper, more realistic detail).
            `"mean"`: the one-step posterior mean `x0_hat` without guidance (highest PSNR, blurrier); it ignores
            `num_denoise_steps`. Both read the same stream: the choice costs no bytes.
    """
    check_decode_method(method)
    decoded = decode(stream, adapter, simulator=simulator, progress=progress)
    return decoded_image(decoded, adapter, method=method, num_denoise_steps=num_denoise_steps, progress=progress)


def decoded_image(
    decoded: DecodeResult,
    adapter: BackboneAdapter,
    *,
    method: str = "flow",
    num_denoise_steps: int = 25,
    progress: bool = True,
) -> torch.Tensor:
    r"""
    The `(1, 3, H, W)` image in [0, 1] of a [`decode`]d stream: the denoising `method` (see [`decompress`]) with the
    stream's denoising guidance, the backbone's `decode_latent`, and the crop of any padding to the size the stream
    records ([`~codecs.codec.latent_to_image`]). One [`decode`] serves every method.
    """
    return latent_to_image(
        decoded.latent,
        decoded.t,
        adapter,
        decoded.condition,
        guidance_scale=decoded.stream.denoise_guidance_scale,
        height=decoded.stream.height,
        width=decoded.stream.width,
        method=method,
        num_denoise_steps=num_denoise_steps,
        progress=progress,
    )


class DiffCCodec(Codec):
    r"""
    DiffC as a [`~codecs.codec.Codec`]: the encoder's settings, and streams at one rate ([`compress`]) or at many
    from one encode ([`compress_many`]: DiffC is progressive).

    Args:
        schedule ([`DiffCSchedule`], *optional*): The encoding schedule; defaults to `DiffCSchedule()`.
        simulator ([`ChannelSimulator`], *optional*): The reverse channel coder; defaults to [`default_simulator`].
        guidance_scale (`float`, *optional*): Guidance of the coded steps (default: the backbone's).
        denoise_guidance_scale (`float`, *optional*): Guidance the decoder denoises with (default: `guidance_scale`).
    """

    name = "diffc"
    summary = "DiffC: reverse-channel coding of noisy latents, then a probability-flow denoise"
    progressive = True

    def __init__(
        self,
        schedule: DiffCSchedule | None = None,
        simulator: ChannelSimulator | None = None,
        guidance_scale: float | None = None,
        denoise_guidance_scale: float | None = None,
    ):
        self.encode_options = {
            "schedule": schedule,
            "simulator": simulator,
            "guidance_scale": guidance_scale,
            "denoise_guidance_scale": denoise_guidance_scale,
        }

    @classmethod
    def from_settings(
        cls,
        num_steps: int | None = None,
        coder: str | None = None,
        chunk_bits: int | None = None,
        guidance_scale: float | None = None,
        denoise_guidance_scale: float | None = None,
    ) -> "DiffCCodec":
        """The command line's settings: `num_steps` of the schedule, the channel `coder` (a registry name, `pooled` or
        `plain`) and its `chunk_bits` (15 unless given), and the guidance scales."""
        simulator = None
        if coder is not None or chunk_bits is not None:
            simulator = build_channel(coder or "pooled", 15 if chunk_bits is None else chunk_bits)
        schedule = None if num_steps is None else DiffCSchedule(num_steps=num_steps)
        return cls(schedule, simulator, guidance_scale, denoise_guidance_scale)

    def compress(self, image, adapter, *, target_bpp, seed=0, clamp_targets=False, progress=True) -> bytes:
        (coded,) = self.compress_many(
            image, adapter, target_bpps=[target_bpp], seed=seed, clamp_targets=clamp_targets, progress=progress
        )
        return coded.stream

    def compress_many(
        self, image, adapter, *, target_bpps=None, stop_steps=None, seed=0, clamp_targets=False, progress=True
    ) -> list[CodedStream]:
        """One [`encode`] for every requested cut (all of the schedule when neither rates nor steps are given)."""
        start = time.perf_counter()
        result = encode(
            image,
            adapter,
            target_bpp=None if target_bpps is None else list(target_bpps),
            stop_step=None if stop_steps is None else list(stop_steps),
            seed=seed,
            clamp_targets=clamp_targets,
            progress=progress,
            **self.encode_options,
        )
        seconds = time.perf_counter() - start
        return [CodedStream(point.stream, f"stop_step={point.stop_step}", seconds) for point in result.points]

    def decompress_latent(self, stream, adapter, *, progress=True) -> DecodeResult:
        return decode(stream, adapter, progress=progress)  # with the channel coder the stream names

    def stream_backbone(self, stream: bytes) -> str:
        return read_stream(stream).backbone

    def settings(self) -> dict:
        schedule = self.encode_options["schedule"] or DiffCSchedule()
        return {
            "num_steps": schedule.num_steps,
            "t_end": schedule.t_end,
            "channel": channel_config(self.encode_options["simulator"] or default_simulator()).hex(),
            "guidance_scale": self.encode_options["guidance_scale"],
            "denoise_guidance_scale": self.encode_options["denoise_guidance_scale"],
        }
