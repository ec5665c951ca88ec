import shutil
import zlib
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler

from cod_diffc import CodPipeline
from cod_diffc.backbones import UNCONDITIONAL, denoise
from cod_diffc.backbones.prompt import MAX_PROMPT_BYTES
from cod_diffc.backbones.registry import available_backbones, load_backbone
from cod_diffc.backbones.stable_diffusion import StableDiffusionAdapter, load_stable_diffusion_backbone
from cod_diffc.codecs.schedule import DiffCSchedule
from cod_diffc.diffc.bitstream import read_stream
from cod_diffc.diffc.channel import ChunkedPFRSimulator
from cod_diffc.diffc.codec import decode, decompress, encode
from cod_diffc.errors import StreamError

from tiny_models import SD_IMAGE_SIZE as IMAGE_SIZE
from tiny_models import save_tiny_sd_pipeline


PROMPT = "a cat"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """prediction type -> pipeline directory; both pipelines hold the same weights."""
    return {
        prediction_type: save_tiny_sd_pipeline(tmp_path_factory.mktemp(prediction_type), prediction_type)
        for prediction_type in ("epsilon", "v_prediction")
    }


@pytest.fixture(scope="module")
def adapter(model_dirs) -> StableDiffusionAdapter:
    return StableDiffusionAdapter.from_pretrained(model_dirs["epsilon"])


def deflate(data: bytes) -> bytes:
    """Raw DEFLATE, the compressed prompt format."""
    compressor = zlib.compressobj(level=9, wbits=-15)
    return compressor.compress(data) + compressor.flush()


def make_image(height: int = IMAGE_SIZE, width: int = IMAGE_SIZE) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))


class TestLoading:
    @pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
    def test_prediction_type_comes_from_the_scheduler_config(self, model_dirs, prediction_type):
        adapter = StableDiffusionAdapter.from_pretrained(model_dirs[prediction_type])
        assert (adapter.name, adapter.prediction_type) == ("sd", prediction_type)
        assert (adapter.device, adapter.dtype) == (torch.device("cpu"), torch.float32)
        assert adapter.num_train_timesteps == 1000

    def test_loads_through_the_registry(self, model_dirs):
        assert "sd" in available_backbones()
        adapter = load_backbone("sd", str(model_dirs["v_prediction"]), prompt=PROMPT)
        assert isinstance(adapter, StableDiffusionAdapter)
        assert (adapter.name, adapter.prediction_type, adapter.prompt) == ("sd", "v_prediction", PROMPT)

    def test_dtype_option_sets_the_unet_and_text_encoder_dtype_but_io_stays_float32(self, model_dirs, adapter):
        low_precision = load_stable_diffusion_backbone(model_dirs["epsilon"], dtype=torch.bfloat16)
        assert (low_precision.unet.dtype, low_precision.text_encoder.dtype) == (torch.bfloat16, torch.bfloat16)
        assert low_precision.vae.dtype == torch.float32
        z_t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
        assert low_precision.predict_epsilon(z_t, torch.tensor(0.5), UNCONDITIONAL, 1.0).dtype == torch.float32
        assert low_precision.fingerprint() != adapter.fingerprint()

    def test_empty_directory_is_a_directory_of_the_wrong_kind(self, tmp_path):
        with pytest.raises(ValueError, match="model directory of the wrong kind: .* has no model_index.json"):
            StableDiffusionAdapter.from_pretrained(tmp_path)

    def test_cod_pipeline_directory_is_a_directory_of_the_wrong_kind(self, tmp_path):
        CodPipeline.from_named_config("cod-latent-tiny").save_pretrained(tmp_path)
        message = r"wrong kind: .* holds a CodPipeline, not a Stable Diffusion .*lacks unet, text_encoder, tokenizer\)"
        with pytest.raises(ValueError, match=message):
            load_backbone("sd", str(tmp_path))

    def test_hub_id_loads_from_the_hugging_face_cache_without_downloading(self, model_dirs, tmp_path):
        # The cache layout huggingface_hub reads: refs/main names the snapshot holding the files.
        repo_cache = tmp_path / "models--cod-diffc-tests--tiny-sd"
        commit = "0" * 40
        shutil.copytree(model_dirs["v_prediction"], repo_cache / "snapshots" / commit)
        (repo_cache / "refs").mkdir()
        (repo_cache / "refs" / "main").write_text(commit)
        adapter = StableDiffusionAdapter.from_pretrained("cod-diffc-tests/tiny-sd", cache_dir=tmp_path)
        assert adapter.prediction_type == "v_prediction"
        from_directory = StableDiffusionAdapter.from_pretrained(model_dirs["v_prediction"])
        assert adapter.fingerprint() == from_directory.fingerprint()

        shutil.rmtree(repo_cache / "snapshots" / commit / "unet")
        with pytest.raises(FileNotFoundError, match="not .*or only partly.* in the Hugging Face cache"):
            StableDiffusionAdapter.from_pretrained("cod-diffc-tests/tiny-sd", cache_dir=tmp_path)

    def test_missing_directory_and_uncached_hub_model_say_what_is_missing(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="no Stable Diffusion model directory at /"):
            StableDiffusionAdapter.from_pretrained(tmp_path / "no" / "such" / "model")
        message = "allow_download=True .* `hf download cod-diffc-tests/no-such-model --include model_index.json 'unet/"
        with pytest.raises(FileNotFoundError, match=message):
            StableDiffusionAdapter.from_pretrained("cod-diffc-tests/no-such-model", cache_dir=tmp_path)

    def test_unsupported_prediction_type_is_refused(self, adapter):
        scheduler = DDPMScheduler(prediction_type="sample")
        with pytest.raises(ValueError, match="prediction type 'sample' is not supported"):
            StableDiffusionAdapter(adapter.unet, adapter.vae, adapter.text_encoder, adapter.tokenizer, scheduler)

    def test_zero_terminal_snr_schedule_is_refused(self, adapter):
        scheduler = DDPMScheduler(rescale_betas_zero_snr=True)
        with pytest.raises(ValueError, match="zero terminal SNR"):
            StableDiffusionAdapter(adapter.unet, adapter.vae, adapter.text_encoder, adapter.tokenizer, scheduler)


class TestTime:
    def test_alpha_sigma_matches_alphas_cumprod_at_integer_steps(self, adapter):
        steps = torch.arange(adapter.num_train_timesteps, dtype=torch.float64)
        alpha, sigma = adapter.alpha_sigma(steps / (adapter.num_train_timesteps - 1))
        torch.testing.assert_close(alpha**2, adapter.alphas_cumprod, rtol=1e-12, atol=0)
        torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(alpha), rtol=1e-12, atol=0)
        assert 0.06 < float(alpha[-1]) < 0.07  # alpha(t = 1) > 0: x0_hat is defined on all of [0, 1]

    def test_alpha_sigma_is_continuous_and_strictly_decreasing_between_steps(self, adapter):
        t = torch.linspace(0, 1, 100_001, dtype=torch.float64)
        alpha, sigma = adapter.alpha_sigma(t)
        assert bool((alpha.diff() < 0).all()) and bool((sigma.diff() > 0).all())
        assert float(alpha.diff().abs().max()) < 1e-4  # no jumps at the integer steps

    def test_alpha_sigma_keeps_the_dtype_of_t_and_refuses_times_outside_the_unit_interval(self, adapter):
        alpha, sigma = adapter.alpha_sigma(torch.tensor(0.25, dtype=torch.float32))
        assert (alpha.dtype, sigma.dtype, alpha.shape) == (torch.float32, torch.float32, ())
        with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
            adapter.alpha_sigma(torch.tensor([0.5, 1.5]))

    def test_unet_is_fed_the_fractional_timestep(self, adapter):
        z_t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
        step = 1 / (adapter.num_train_timesteps - 1)
        lower, middle, upper = (
            adapter.predict_epsilon(z_t, torch.tensor(t), UNCONDITIONAL, 1.0)
            for t in (500 * step, 500.5 * step, 501 * step)
        )
        assert not torch.equal(middle, lower) and not torch.equal(middle, upper)
        timestep = torch.tensor([500.5])
        expected = adapter.unet(z_t, timestep, encoder_hidden_states=adapter.encode_prompt("")).sample
        torch.testing.assert_close(middle, expected, rtol=1e-6, atol=1e-6)


class TestPredictions:
    @pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
    def test_x0_and_epsilon_from_the_raw_unet_output(self, model_dirs, prediction_type):
        adapter = StableDiffusionAdapter.from_pretrained(model_dirs[prediction_type])
        z_t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
        t = torch.tensor(0.3)
        x0_hat, eps_hat = adapter.predict_x0_and_epsilon(z_t, t, UNCONDITIONAL, 1.0)
        alpha, sigma = adapter.alpha_sigma(t)
        timestep = adapter.training_timestep(t).float().reshape(1)
        output = adapter.unet(z_t, timestep, encoder_hidden_states=adapter.encode_prompt("")).sample
        if prediction_type == "epsilon":
            torch.testing.assert_close(eps_hat, output, rtol=1e-6, atol=1e-6)
        else:
            # x0 = alpha * z_t - sigma * v: the other way round from the adapter's eps = alpha * v + sigma * z_t.
            torch.testing.assert_close(x0_hat, alpha * z_t - sigma * output, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(alpha * x0_hat + sigma * eps_hat, z_t, rtol=1e-5, atol=1e-5)

    def test_guidance_mixes_prompt_and_empty_prompt_predictions(self, model_dirs):
        adapter = StableDiffusionAdapter.from_pretrained(model_dirs["v_prediction"], prompt=PROMPT)
        z_t = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(3))
        t = torch.tensor(0.6)
        condition = adapter.prepare_condition(make_image())
        unconditional, conditional, guided = (
            adapter.predict_epsilon(z_t, t, condition, scale) for scale in (0.0, 1.0, 2.5)
        )
        assert not torch.allclose(conditional, unconditional)
        torch.testing.assert_close(guided, unconditional + 2.5 * (conditional - unconditional), rtol=1e-5, atol=1e-5)

        no_prompt = adapter.load_condition(b"", IMAGE_SIZE, IMAGE_SIZE)
        assert no_prompt == UNCONDITIONAL and adapter.prompt == PROMPT  # the decoder side does not touch the prompt
        torch.testing.assert_close(
            adapter.predict_epsilon(z_t, t, no_prompt, 1.0), unconditional, rtol=1e-6, atol=1e-6
        )
        assert torch.equal(
            adapter.predict_epsilon(z_t, t, no_prompt, 2.5), adapter.predict_epsilon(z_t, t, no_prompt, 1.0)
        )

    def test_too_long_or_non_text_prompt_is_refused(self, adapter):
        with pytest.raises(ValueError, match="tokens long, more than the 32 the text encoder takes"):
            adapter.set_prompt(" ".join(["cat"] * 40))
        with pytest.raises(ValueError, match="the prompt must be a string, got 42"):
            adapter.set_prompt(42)  # what `--option prompt=42` would give
        assert adapter.prompt == ""


class TestLatents:
    def test_latent_shape_and_deterministic_encode_decode(self, adapter):
        assert adapter.latent_shape(32, 48) == (4, 4, 6)
        image = make_image(32, 48)
        latent = adapter.encode_image(image)
        assert latent.shape == (1, 4, 4, 6) and latent.dtype == torch.float32
        assert torch.equal(adapter.encode_image(image), latent)
        expected = adapter.vae.encode(2 * image - 1).latent_dist.mean * adapter.vae.config.scaling_factor
        torch.testing.assert_close(latent, expected)
        decoded = adapter.decode_latent(latent)
        assert decoded.shape == (1, 3, 32, 48) and decoded.dtype == torch.float32
        assert 0 <= float(decoded.min()) and float(decoded.max()) <= 1

    @pytest.mark.parametrize("size", [(30, 32), (32, 36), (0, 32)])
    def test_sizes_the_vae_cannot_take_are_refused(self, adapter, size):
        with pytest.raises(ValueError, match="positive multiples of 8"):
            adapter.latent_shape(*size)


class TestCodec:
    @pytest.mark.parametrize(
        ("prediction_type", "prompt", "guidance_scale"),
        [("epsilon", "", 1.0), ("v_prediction", PROMPT, 2.0)],
    )
    def test_decoder_reproduces_the_encoder_latent_and_reconstruction(
        self, model_dirs, prediction_type, prompt, guidance_scale
    ):
        encoder_side = StableDiffusionAdapter.from_pretrained(model_dirs[prediction_type], prompt=prompt)
        image = make_image()
        result = encode(
            image,
            encoder_side,
            stop_step=[3, 6],
            schedule=DiffCSchedule(num_steps=6),
            guidance_scale=guidance_scale,
            simulator=ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2),
            progress=False,
        )
        decoder_side = StableDiffusionAdapter.from_pretrained(model_dirs[prediction_type])  # prompt from the stream
        expected_side_info = b"\x00" + prompt.encode() if prompt else b""  # format 0: raw UTF-8
        for point in result.points:
            decoded = decode(point.stream, decoder_side, progress=False)
            assert torch.equal(decoded.latent, point.latent)
            assert decoded.condition.side_info == result.condition.side_info == expected_side_info
            assert decoded.stream.encoding_guidance_scale == guidance_scale

            own_reconstruction = encoder_side.decode_latent(
                denoise(
                    point.latent, point.t, encoder_side, result.condition, guidance_scale, num_steps=2, progress=False
                )
            )
            reconstruction = decompress(point.stream, decoder_side, num_denoise_steps=2, progress=False)
            assert torch.equal(reconstruction, own_reconstruction)
            assert reconstruction.shape == image.shape
        assert result.points[0].kl_bits < result.points[1].kl_bits

    def test_prompt_bytes_are_in_the_stream_and_counted(self, model_dirs):
        image = make_image()
        schedule = DiffCSchedule(num_steps=4)
        streams = {
            prompt: encode(
                image,
                StableDiffusionAdapter.from_pretrained(model_dirs["epsilon"], prompt=prompt),
                stop_step=0,
                schedule=schedule,
                progress=False,
            ).points[0]
            for prompt in ("", PROMPT)
        }
        side_info = read_stream(streams[PROMPT].stream).side_info
        assert side_info == b"\x00" + PROMPT.encode()  # short prompts are sent as they are
        assert read_stream(streams[""].stream).side_info == b""
        assert len(streams[PROMPT].stream) - len(streams[""].stream) == len(side_info)
        assert streams[PROMPT].bpp == 8 * len(streams[PROMPT].stream) / IMAGE_SIZE**2

    def test_stream_of_another_model_is_refused(self, model_dirs, adapter):
        stream = encode(
            make_image(),
            adapter,
            stop_step=1,
            schedule=DiffCSchedule(num_steps=2),
            simulator=ChunkedPFRSimulator(max_chunk_bits=8, padding_bits=2),
            progress=False,
        )
        other_model = StableDiffusionAdapter.from_pretrained(model_dirs["v_prediction"])  # same weights
        assert other_model.fingerprint() != adapter.fingerprint()
        assert StableDiffusionAdapter.from_pretrained(model_dirs["epsilon"]).fingerprint() == adapter.fingerprint()
        with pytest.raises(StreamError, match="made by another 'sd' model"):
            decode(stream.points[0].stream, other_model, progress=False)


class TestSideInformation:
    def test_long_prompt_is_deflated_and_restored(self, model_dirs):
        prompt = " ".join(["cat"] * 24)
        encoder_side = StableDiffusionAdapter.from_pretrained(model_dirs["epsilon"], prompt=prompt)
        condition = encoder_side.prepare_condition(make_image())
        side_info = condition.side_info
        assert side_info[0] == 1 and len(side_info) < len(prompt) // 4
        decoder_side = StableDiffusionAdapter.from_pretrained(model_dirs["epsilon"])
        decoded = decoder_side.load_condition(side_info, IMAGE_SIZE, IMAGE_SIZE)
        assert decoded.side_info == side_info and torch.equal(decoded.value, condition.value)
        assert decoder_side.prompt == ""  # a condition is a value: loading one leaves the adapter as it was
        assert decoder_side.load_condition(b"", IMAGE_SIZE, IMAGE_SIZE) == UNCONDITIONAL

    @pytest.mark.parametrize(
        ("side_info", "message"),
        [
            (b"\x07cat", "unknown prompt format 7"),
            (b"\x00", "must be 1-4096 bytes"),
            (b"\x00\xff\xfe", "not UTF-8"),
            (b"\x01\xff\xff\xff", "corrupt compressed prompt"),
            (b"\x01" + deflate(b"a cat a cat a cat")[:-2], "truncated"),
            (b"\x01" + deflate(b"a cat a cat a cat") + b"\x00", "trailing bytes"),
            (b"\x01" + deflate(b"a" * (2 * MAX_PROMPT_BYTES)), "exceeds 4096 bytes"),
        ],
    )
    def test_bad_side_information_is_a_stream_error(self, adapter, side_info, message):
        with pytest.raises(StreamError, match=message):
            adapter.load_condition(side_info, IMAGE_SIZE, IMAGE_SIZE)
