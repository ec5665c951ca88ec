import numpy as np
import PIL.Image
import pytest
import torch
from accelerate import init_empty_weights

from cod_diffc import NAMED_CONFIGS, CodPipeline


def tiny_pipeline(name="cod-pixel-tiny"):
    torch.manual_seed(0)
    pipe = CodPipeline.from_named_config(name)
    # Fresh CoD models output exactly zero (zero-initialised heads); give them random outputs for the tests.
    with torch.no_grad():
        for parameter in pipe.transformer.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
        for parameter in pipe.condition_codec.parameters():
            if parameter.abs().sum() == 0:
                parameter.normal_(0, 0.02)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_image(height=64, width=96, seed=0):
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def pixel_pipe():
    return tiny_pipeline()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cod-pixel-xl", 897_063_843), ("cod-latent-xl", 853_553_232), ("cod-latent-64bits-xl", 987_165_776)],
)
def test_released_sizes_have_the_released_parameter_counts(name, expected):
    config = NAMED_CONFIGS[name]
    with init_empty_weights():
        from cod_diffc import CodConditionCodec, CodTransformer2DModel

        codec = CodConditionCodec(**config.condition_codec)
        transformer = CodTransformer2DModel(**config.transformer)
    total = sum(p.numel() for p in codec.parameters()) + sum(p.numel() for p in transformer.parameters())
    assert total == expected


def test_reconstruction_is_deterministic_with_a_seeded_generator(pixel_pipe):
    image = make_image()
    first = pixel_pipe(image, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np")
    second = pixel_pipe(image, num_inference_steps=2, generator=torch.Generator().manual_seed(1), output_type="np")
    other = pixel_pipe(image, num_inference_steps=2, generator=torch.Generator().manual_seed(2), output_type="np")
    assert np.array_equal(first.images, second.images)
    assert not np.array_equal(first.images, other.images)


@pytest.mark.parametrize("size", [(64, 64), (64, 96), (128, 64)])
def test_output_types_and_shapes(pixel_pipe, size):
    height, width = size
    image = make_image(height, width)
    generator = torch.Generator().manual_seed(0)
    pil = pixel_pipe(image, num_inference_steps=1, generator=generator).images
    array = pixel_pipe(image, num_inference_steps=1, generator=generator.manual_seed(0), output_type="np").images
    tensor = pixel_pipe(image, num_inference_steps=1, generator=generator.manual_seed(0), output_type="pt").images
    latent = pixel_pipe(image, num_inference_steps=1, generator=generator.manual_seed(0), output_type="latent").images
    assert pil[0].size == (width, height)
    assert array.shape == (1, height, width, 3) and array.dtype == np.float32  # diffusers' convention
    assert tensor.shape == (1, 3, height, width) and 0 <= tensor.min() and tensor.max() <= 1
    np.testing.assert_array_equal(array, tensor.permute(0, 2, 3, 1).numpy())
    assert latent.shape == (1, 3, height, width) and latent.min() < 0  # the sample in [-1, 1] space, not decoded
    np.testing.assert_array_equal(np.asarray(pil[0]), pixel_pipe.quantize_uint8(latent)[0])  # the release's rounding


def test_dict_and_tuple_outputs_are_equal(pixel_pipe):
    image = make_image()
    as_dict = pixel_pipe(image, num_inference_steps=1, generator=torch.Generator().manual_seed(0), output_type="np")
    (as_tuple,) = pixel_pipe(
        image, num_inference_steps=1, generator=torch.Generator().manual_seed(0), output_type="np", return_dict=False
    )
    assert np.array_equal(as_dict.images, as_tuple)


def test_one_step_reconstruction_is_the_closed_form(pixel_pipe):
    image = make_image()
    images = pixel_pipe.preprocess(image)
    condition = pixel_pipe.condition_codec.decode_indices(pixel_pipe.condition_indices(images))
    null_condition = pixel_pipe.condition_codec.null_condition(64, 96)
    noise = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    sample = pixel_pipe.sample(noise, condition, null_condition, num_inference_steps=1, guidance_scale=3.0)
    velocity = pixel_pipe.transformer(noise, torch.ones(1), condition).sample
    torch.testing.assert_close(sample, noise - velocity, atol=0, rtol=0)


def test_standalone_codec_round_trip_and_byte_count(pixel_pipe):
    images = [make_image(seed=0), make_image(seed=1)]
    files = pixel_pipe.compress(images)
    codec = pixel_pipe.condition_codec
    assert [len(f) for f in files] == [4 + codec.bytes_per_image(64, 96)] * 2
    decoded = pixel_pipe.decompress(
        files, num_inference_steps=2, generator=torch.Generator().manual_seed(3), output_type="np"
    )
    direct = pixel_pipe(images, num_inference_steps=2, generator=torch.Generator().manual_seed(3), output_type="np")
    assert np.array_equal(decoded.images, direct.images)


def test_released_rate_is_128_bytes_at_512_pixels():
    config = NAMED_CONFIGS["cod-pixel-xl"].condition_codec
    with init_empty_weights():
        from cod_diffc import CodConditionCodec

        codec = CodConditionCodec(**config)
    assert codec.bytes_per_image(512, 512) == 128
    assert codec.bits_per_image(512, 512) / (512 * 512) == pytest.approx(0.0039, abs=1e-4)


def test_bad_cod_files_are_rejected(pixel_pipe):
    (cod_file,) = pixel_pipe.compress(make_image())
    with pytest.raises(ValueError, match="truncated"):
        pixel_pipe.decompress(cod_file[:-1])
    with pytest.raises(ValueError, match="at least 4 bytes"):
        pixel_pipe.decompress(cod_file[:3])
    (other_size,) = pixel_pipe.compress(make_image(64, 64))
    with pytest.raises(ValueError, match="one image size"):
        pixel_pipe.decompress([cod_file, other_size])


def test_bad_inputs_are_rejected(pixel_pipe):
    with pytest.raises(ValueError, match="3 channels|channel"):
        pixel_pipe(torch.rand(1, 1, 64, 64), num_inference_steps=1)
    with pytest.raises(ValueError, match="multiple"):
        pixel_pipe(make_image(48, 64), num_inference_steps=1)
    with pytest.raises(ValueError, match="output_type"):
        pixel_pipe(make_image(), num_inference_steps=1, output_type="jpeg")
    with pytest.raises(ValueError, match=r"\[0, 1\]|range"):
        pixel_pipe(torch.full((1, 3, 64, 64), 2.0), num_inference_steps=1)


def test_mismatched_components_are_rejected(pixel_pipe):
    latent = CodPipeline.from_named_config("cod-latent-tiny")
    with pytest.raises(ValueError, match="vae"):
        CodPipeline(pixel_pipe.transformer, pixel_pipe.condition_codec, pixel_pipe.scheduler, vae=latent.vae)
    with pytest.raises(ValueError, match="vae"):
        CodPipeline(latent.transformer, latent.condition_codec, latent.scheduler)
    with pytest.raises(ValueError, match="unknown CoD configuration"):
        CodPipeline.from_named_config("cod-pixel-huge")
    with pytest.raises(ValueError, match="sd-vae-ft-ema"):
        CodPipeline.from_named_config("cod-latent-xl")


@pytest.mark.parametrize("name", ["cod-pixel-tiny", "cod-latent-tiny"])
def test_save_and_load_round_trip(tmp_path, name):
    pipe = tiny_pipeline(name)
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "transformer" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = CodPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.default_guidance_scale == pipe.config.default_guidance_scale
    image = make_image(64, 64)
    ours = pipe(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    theirs = loaded(image, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    torch.testing.assert_close(loaded.transformer.state_dict(), pipe.transformer.state_dict(), rtol=0, atol=0)
    # the same weights; CPU kernels chosen by module state may differ in the last bit
    np.testing.assert_allclose(ours.images, theirs.images, rtol=0, atol=1e-6)


def test_callback_on_step_end_sees_every_step_and_may_replace_the_sample(pixel_pipe):
    image, seen = make_image(), []

    def zero_the_last_sample(pipe, index, sigma, tensors):
        seen.append((index, float(sigma), sorted(tensors)))
        return {"latents": torch.zeros_like(tensors["latents"])} if index == 2 else {}

    output = pixel_pipe(
        image,
        num_inference_steps=3,
        output_type="pt",
        callback_on_step_end=zero_the_last_sample,
        callback_on_step_end_tensor_inputs=["latents", "condition"],
    )
    sigmas = pixel_pipe.scheduler.timesteps.tolist()
    assert seen == [(index, sigma, ["condition", "latents"]) for index, sigma in enumerate(sigmas)]
    torch.testing.assert_close(output.images, torch.full_like(output.images, 0.5))  # the zero sample, decoded
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs may name latents, condition, got noise"):
        pixel_pipe(
            image,
            num_inference_steps=1,
            callback_on_step_end=zero_the_last_sample,
            callback_on_step_end_tensor_inputs=["noise"],
        )


def test_a_latent_pipeline_without_its_vae_says_so():
    pipe = CodPipeline.from_named_config("cod-latent-tiny")
    pipe.set_progress_bar_config(disable=True)
    pipe.vae = None
    with pytest.raises(ValueError, match="works in a VAE's latent space .* but the pipeline has no vae"):
        pipe(make_image(), num_inference_steps=1)
    with pytest.raises(ValueError, match="in_channels=4 needs a vae"):
        CodPipeline(pipe.transformer, pipe.condition_codec, pipe.scheduler, vae=None)


def test_the_old_names_of_compress_and_decompress_still_work_with_a_warning(pixel_pipe):
    image = make_image()
    with pytest.warns(FutureWarning, match="CodPipeline.encode is deprecated: use CodPipeline.compress"):
        (cod_file,) = pixel_pipe.encode(image)
    assert cod_file == pixel_pipe.compress(image)[0]
    with pytest.warns(FutureWarning, match="CodPipeline.decode is deprecated: use CodPipeline.decompress"):
        old = pixel_pipe.decode(
            cod_file, num_inference_steps=1, output_type="pt", generator=torch.Generator().manual_seed(0)
        )
    new = pixel_pipe.decompress(
        cod_file, num_inference_steps=1, output_type="pt", generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(old.images, new.images)
