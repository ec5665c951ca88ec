import math
from itertools import pairwise

import pytest
import torch

from cod_diffc.backbones import UNCONDITIONAL, denoise
from cod_diffc.backbones.gaussian import GaussianBackbone
from cod_diffc.backbones.sampling import ReverseStep
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.bitstream import StreamMode, read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import compress, decode, decompress, encode
from cod_diffc.diffc.index_coding import StepCodeWriter
from cod_diffc.errors import StreamError


DATA_STD = 0.3
SCHEDULE = DiffCSchedule(num_steps=16, t_end=0.05)
# Small candidate sets keep the tests fast; the stream records the configuration, so the decoder rebuilds it.
SIMULATOR = ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2)


def gaussian_image(side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A latent drawn from the backbone's data distribution, and the image that encodes to it."""
    latent = DATA_STD * torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))
    return (latent + 1) / 2, latent


@pytest.fixture(scope="module")
def adapter() -> GaussianBackbone:
    return GaussianBackbone(std=DATA_STD)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return gaussian_image(side=8, seed=0)[0]


@pytest.fixture(scope="module")
def encoded(adapter, image):
    """Every cut of one encode of the whole schedule."""
    stop_steps = list(range(SCHEDULE.num_steps + 1))
    return encode(image, adapter, stop_step=stop_steps, schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False)


class OtherGaussianBackbone(GaussianBackbone):
    name = "gaussian-other"


class TestEncodeDecode:
    def test_decode_reproduces_the_encoder_latent_bit_exactly(self, adapter, encoded):
        for point in encoded.points:
            decoded = decode(point.stream, adapter, progress=False)
            assert torch.equal(decoded.latent, point.latent), f"stop step {point.stop_step}"
            assert decoded.t == point.t == SCHEDULE.time(point.stop_step)
            assert decoded.stream.stop_step == point.stop_step

    def test_same_inputs_give_the_same_bytes(self, adapter, image, encoded):
        again = encode(
            image, adapter, stop_step=[5, 16], schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False
        )
        assert [point.stream for point in again.points] == [encoded.points[5].stream, encoded.points[16].stream]

    def test_another_seed_gives_another_stream(self, adapter, image, encoded):
        other = encode(image, adapter, stop_step=16, schedule=SCHEDULE, seed=8, simulator=SIMULATOR, progress=False)
        assert other.points[0].stream != encoded.points[16].stream

    def test_bpp_counts_every_byte_of_the_file(self, encoded, image):
        num_pixels = image.shape[2] * image.shape[3]
        for point in encoded.points:
            assert point.bpp == encoded.bpp(point.stop_step) == 8 * len(point.stream) / num_pixels
            assert encoded.file_bytes[point.stop_step] == len(point.stream) == len(encoded.stream(point.stop_step))

    def test_rate_increases_with_the_stop_step(self, encoded):
        assert all(kl > 0 for kl in encoded.step_kl_bits)
        kl_bits = [point.kl_bits for point in encoded.points]
        assert all(later > earlier for earlier, later in pairwise(kl_bits))
        assert all(later >= earlier for earlier, later in pairwise(encoded.file_bytes))
        assert encoded.file_bytes[-1] > encoded.file_bytes[1] > encoded.file_bytes[0]

    def test_coded_bits_per_step_within_the_channel_bound(self, encoded):
        # ChunkedPFRSimulator's bound on a step's index bits: KL + n (log2(KL_c / n + 1) + 4) for n chunks of
        # nominal KL KL_c, plus the kl_code symbol (a few bits; 8 allowed).
        codes = encoded.step_codes
        for n, (code, kl_bits) in enumerate(zip(codes, encoded.step_kl_bits, strict=True)):
            layout = SIMULATOR.layout(code.kl_code)
            step_bits = SIMULATOR.code_length_bits(codes[: n + 1]) - SIMULATOR.code_length_bits(codes[:n])
            chunk_overhead = layout.num_chunks * (math.log2(layout.chunk_kl_bits + 1) + 4)
            assert step_bits <= kl_bits + chunk_overhead + 8, f"step {n}"
        # The real rANS section is the ideal length plus the coder's flush and CDF quantisation.
        section_bytes = len(read_stream(encoded.points[-1].stream).step_codes)
        assert 8 * section_bytes <= 1.05 * SIMULATOR.code_length_bits(codes) + 64

    def test_stop_step_zero_is_a_condition_only_stream_of_seeded_noise(self, adapter, encoded):
        point = encoded.points[0]
        decoded = decode(point.stream, adapter, progress=False)
        assert decoded.stream.mode == StreamMode.CONDITION_ONLY
        assert decoded.t == 1.0
        assert torch.equal(decoded.latent, point.latent)
        assert abs(decoded.latent.std().item() - 1) < 0.2

    def test_encode_runs_only_as_far_as_the_largest_cut(self, adapter, image):
        result = encode(image, adapter, stop_step=[3, 1], schedule=SCHEDULE, simulator=SIMULATOR, progress=False)
        assert len(result.step_codes) == 3
        assert [point.stop_step for point in result.points] == [3, 1]
        with pytest.raises(ValueError, match="outside the encoded range"):
            result.stream(4)


class TestTargetBpp:
    def test_cut_is_the_largest_stop_step_that_fits(self, adapter, image, encoded):
        sizes = encoded.file_bytes
        num_pixels = image.shape[2] * image.shape[3]
        targets = [8 * sizes[1] / num_pixels, 8 * (sizes[8] + 1) / num_pixels, 8 * sizes[-1] / num_pixels - 0.01]
        result = encode(
            image, adapter, target_bpp=targets, schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False
        )
        for target, point in zip(targets, result.points, strict=True):
            expected = max(n for n, size in enumerate(sizes) if 8 * size / num_pixels <= target)
            assert point.stop_step == expected
            assert point.bpp <= target
            assert point.stream == encoded.points[expected].stream
            assert torch.equal(point.latent, encoded.points[expected].latent)

    def test_only_cuts_near_the_target_are_entropy_coded(self, adapter, image, encoded, monkeypatch):
        coded_cuts = []
        code_prefix = StepCodeWriter.to_bytes
        monkeypatch.setattr(
            StepCodeWriter,
            "to_bytes",
            lambda writer, num_steps=None: coded_cuts.append(num_steps) or code_prefix(writer, num_steps),
        )
        target = 8 * encoded.file_bytes[-1] / (image.shape[2] * image.shape[3]) - 0.01
        result = encode(
            image, adapter, target_bpp=target, schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False
        )
        assert result.points[0].stop_step == SCHEDULE.num_steps - 1
        assert len(coded_cuts) <= 4, coded_cuts  # not one per step: the steps far below the target are bounded

    def test_target_below_the_smallest_file_raises_with_the_achievable_range(self, adapter, image, encoded):
        smallest_bpp = encoded.points[0].bpp
        with pytest.raises(ValueError, match=f"smallest file .*{smallest_bpp:.6g} bpp.*achievable"):
            encode(image, adapter, target_bpp=smallest_bpp / 2, schedule=SCHEDULE, simulator=SIMULATOR)

    def test_clamped_targets_below_the_smallest_file_get_that_file(self, adapter, image, encoded):
        smallest_bpp = encoded.points[0].bpp
        targets = [smallest_bpp / 2, encoded.points[5].bpp]
        options = {"schedule": SCHEDULE, "seed": 7, "simulator": SIMULATOR, "progress": False}
        result = encode(image, adapter, target_bpp=targets, clamp_targets=True, **options)
        assert [point.stream for point in result.points] == [encoded.points[0].stream, encoded.points[5].stream]

    def test_target_above_the_schedule_gets_the_whole_schedule(self, adapter, image, encoded):
        stream = compress(
            image, adapter, target_bpp=1e4, schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False
        )
        assert stream == encoded.points[-1].stream

    def test_stop_step_and_target_bpp_are_exclusive(self, adapter, image):
        with pytest.raises(ValueError, match="not both"):
            encode(image, adapter, stop_step=1, target_bpp=1.0)


@pytest.fixture(scope="module")
def gaussian_run(adapter):
    """A 768-dimensional encode with enough candidate padding that the channel's truncation bias stays small."""
    image, latent = gaussian_image(side=16, seed=1)
    schedule = DiffCSchedule(num_steps=24, t_end=0.05)
    simulator = ChunkedPFRSimulator(max_chunk_bits=10, padding_bits=5)
    result = encode(
        image, adapter, stop_step=[0, 6, 12, 18, 24], schedule=schedule, simulator=simulator, progress=False
    )
    return latent, schedule, result


class TestGaussianTheory:
    """DiffC on Gaussian data, where rates and distortions are known in closed form."""

    def test_step_kl_matches_the_expected_kl(self, adapter, gaussian_run):
        # With the exact eps_hat, E[KL of step n] = (b / std)**2 * dim * mmse(t_n) / (2 ln 2).
        latent, schedule, result = gaussian_run
        expected = 0.0
        for n in range(18):
            t, s = schedule.time(n), schedule.time(n + 1)
            coefficients = [adapter.alpha_sigma(torch.tensor(time, dtype=torch.float64)) for time in (t, s)]
            step = ReverseStep.between(*(float(value) for pair in coefficients for value in pair))
            expected += (step.x0_coefficient / step.std) ** 2 * latent.numel() * adapter.posterior_mse(t)
        expected /= 2 * math.log(2)
        assert math.fsum(result.step_kl_bits[:18]) == pytest.approx(expected, rel=0.15)

    def test_reconstruction_error_falls_with_rate_and_approaches_theory(self, adapter, gaussian_run):
        latent, schedule, result = gaussian_run
        one_step_mse = []
        for point in result.points:
            one_step = denoise(point.latent, point.t, adapter, UNCONDITIONAL, 1.0, num_steps=1, progress=False)
            one_step_mse.append(((one_step - latent) ** 2).mean().item())
            # The channel's truncation bias (chosen candidates lean toward the prior) costs up to ~30 % here.
            assert 0.85 < one_step_mse[-1] / adapter.posterior_mse(point.t) < 1.4, f"stop step {point.stop_step}"
            flow = denoise(point.latent, point.t, adapter, UNCONDITIONAL, 1.0, num_steps=20, progress=False)
            flow_mse = ((flow - latent) ** 2).mean().item()
            assert 0.8 < flow_mse / adapter.flow_decode_mse(point.t) < 1.4, f"stop step {point.stop_step}"
        assert all(later < earlier for earlier, later in pairwise(one_step_mse))
        assert one_step_mse[-1] < 0.05 * DATA_STD**2


class TestStreamChecks:
    def test_other_backbone_is_refused(self, encoded):
        with pytest.raises(StreamError, match="backbone 'gaussian'.*'gaussian-other'"):
            decode(encoded.points[4].stream, OtherGaussianBackbone(std=DATA_STD), progress=False)

    def test_other_model_fingerprint_is_refused(self, encoded):
        with pytest.raises(StreamError, match="another 'gaussian' model: fingerprint"):
            decode(encoded.points[4].stream, GaussianBackbone(std=0.4), progress=False)

    def test_other_channel_configuration_is_refused(self, adapter, encoded):
        with pytest.raises(StreamError, match="another channel simulator configuration"):
            decode(encoded.points[4].stream, adapter, simulator=ChunkedPFRSimulator(), progress=False)

    def test_truncated_and_corrupted_streams_are_refused(self, adapter, encoded):
        stream = encoded.points[8].stream
        with pytest.raises(StreamError, match="truncated|checksum"):
            decode(stream[:-1], adapter, progress=False)
        corrupted = bytearray(stream)
        corrupted[len(corrupted) // 2] ^= 0x01
        with pytest.raises(StreamError, match="checksum"):
            decode(bytes(corrupted), adapter, progress=False)

    def test_latent_larger_than_the_limit_is_refused(self, adapter, encoded):
        with pytest.raises(StreamError, match="max_latent_elements"):
            decode(encoded.points[4].stream, adapter, max_latent_elements=100, progress=False)


class TestDenoiseAndConvenience:
    def test_one_step_denoise_is_the_x0_prediction(self, adapter):
        latent = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(3))
        expected, _ = adapter.predict_x0_and_epsilon(latent, torch.tensor(0.5), UNCONDITIONAL, 1.0)
        torch.testing.assert_close(
            denoise(latent, 0.5, adapter, UNCONDITIONAL, 1.0, num_steps=1, progress=False), expected
        )

    def test_flow_denoise_converges_to_the_exact_ode_map(self, adapter):
        # For Gaussian data the probability-flow ODE maps z_t to m + s / r (z_t - alpha m) exactly.
        latent = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float32)
        alpha, sigma = (float(c) for c in adapter.alpha_sigma(torch.tensor(0.6, dtype=torch.float64)))
        exact = DATA_STD / math.sqrt(alpha**2 * DATA_STD**2 + sigma**2) * latent
        errors = [
            (denoise(latent, 0.6, adapter, UNCONDITIONAL, 1.0, num_steps=num_steps, progress=False) - exact)
            .abs()
            .max()
            .item()
            for num_steps in (4, 16, 64)
        ]
        # DDIM is a first-order solver: 4x the steps, about 4x less error.
        assert errors[0] > 3 * errors[1] > 9 * errors[2]
        assert errors[2] < 0.02

    @pytest.mark.parametrize("num_steps, t", [(0, 0.5), (4, 0.0), (4, 1.5)])
    def test_denoise_rejects_bad_arguments(self, adapter, num_steps, t):
        with pytest.raises(ValueError):
            denoise(torch.zeros(1, 3, 2, 2), t, adapter, UNCONDITIONAL, 1.0, num_steps=num_steps)

    def test_compress_decompress_round_trip(self, adapter, image, encoded):
        stream = compress(image, adapter, stop_step=16, schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False)
        assert stream == encoded.points[16].stream
        reconstruction = decompress(stream, adapter, num_denoise_steps=1, progress=False)
        assert reconstruction.shape == image.shape
        assert 0 <= reconstruction.min() and reconstruction.max() <= 1
        expected = adapter.decode_latent(
            denoise(encoded.points[16].latent, SCHEDULE.time(16), adapter, UNCONDITIONAL, 1.0, 1)
        )
        assert torch.equal(reconstruction, expected)

    def test_mean_decode_is_the_unguided_one_step_posterior_mean_and_beats_the_flow_decode_in_mse(self, adapter):
        flow_errors, mean_errors = [], []
        for seed in range(4):
            image, _ = gaussian_image(side=8, seed=100 + seed)
            result = encode(image, adapter, stop_step=6, schedule=SCHEDULE, simulator=SIMULATOR, progress=False)
            (point,) = result.points
            mean = decompress(point.stream, adapter, method="mean", num_denoise_steps=25, progress=False)
            expected = adapter.decode_latent(
                denoise(point.latent, point.t, adapter, UNCONDITIONAL, 1.0, 1, progress=False)
            )
            assert torch.equal(mean, expected)
            flow = decompress(point.stream, adapter, method="flow", progress=False)
            mean_errors.append(float((mean - image).square().mean()))
            flow_errors.append(float((flow - image).square().mean()))
        # The exact posterior mean is the minimum-MSE estimate; the ODE decode is a sharper, noisier one.
        assert sum(mean_errors) < sum(flow_errors)
        with pytest.raises(ValueError, match="unknown decode method 'sharp'"):
            decompress(point.stream, adapter, method="sharp")

    def test_guidance_scales_are_stored_and_rounded_to_float16(self, adapter, image):
        stream = compress(
            image,
            adapter,
            stop_step=1,
            guidance_scale=3.3,
            denoise_guidance_scale=1.25,
            simulator=SIMULATOR,
            schedule=SCHEDULE,
            progress=False,
        )
        parsed = read_stream(stream)
        assert parsed.encoding_guidance_scale == 3.30078125
        assert parsed.denoise_guidance_scale == 1.25

    @pytest.mark.parametrize(
        "arguments, message",
        [
            ({"stop_step": 17}, "outside the schedule"),
            ({"guidance_scale": -1.0}, "guidance_scale"),
            ({"denoise_guidance_scale": 1e6}, "denoise_guidance_scale"),
        ],
    )
    def test_encode_rejects_bad_arguments(self, adapter, image, arguments, message):
        with pytest.raises(ValueError, match=message):
            encode(image, adapter, schedule=SCHEDULE, simulator=SIMULATOR, progress=False, **arguments)

    def test_encode_rejects_a_batch(self, image):
        with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
            encode(image.repeat(2, 1, 1, 1), GaussianBackbone())


@pytest.mark.gpu
def test_cuda_decode_is_bit_exact_and_matches_a_cpu_encode(image, encoded):
    cuda_adapter = GaussianBackbone(std=DATA_STD, device="cuda")
    cuda_encoded = encode(
        image, cuda_adapter, stop_step=16, schedule=SCHEDULE, seed=7, simulator=SIMULATOR, progress=False
    )
    point = cuda_encoded.points[0]
    assert torch.equal(decode(point.stream, cuda_adapter, progress=False).latent, point.latent)
    # A stream encoded on the CPU decodes on the GPU to the same latent up to float rounding.
    cpu_point = encoded.points[16]
    decoded_on_cuda = decode(cpu_point.stream, cuda_adapter, progress=False).latent.cpu()
    torch.testing.assert_close(decoded_on_cuda, cpu_point.latent, rtol=0, atol=1e-4)
