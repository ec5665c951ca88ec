"""The diffusers contracts `CodPipeline` claims: the canonical `__call__` arguments, the time convention of its
scheduler and transformer, and the model hooks that `enable_model_cpu_offload` relies on."""

import pytest
import torch
from accelerate.hooks import ModelHook, add_hook_to_module, remove_hook_from_module
from diffusers import FlowMatchEulerDiscreteScheduler

from test_pipeline_cod import make_image, tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


def test_latents_replace_the_generators_draw(pipe):
    image = make_image()
    noise = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(5))
    from_latents = pipe(image, num_inference_steps=2, latents=noise, output_type="pt").images
    from_generator = pipe(
        image, num_inference_steps=2, generator=torch.Generator().manual_seed(5), output_type="pt"
    ).images
    assert torch.equal(from_latents, from_generator)
    with pytest.raises(ValueError, match=r"latents must have shape \(1, 3, 64, 96\)"):
        pipe(image, num_inference_steps=1, latents=torch.zeros(1, 3, 32, 32))


def test_num_images_per_prompt_gives_that_many_reconstructions_per_image(pipe):
    images = [make_image(seed=0), make_image(seed=1)]
    out = pipe(images, num_inference_steps=2, num_images_per_prompt=3, output_type="pt").images
    assert out.shape == (6, 3, 64, 96)
    # One noise for all six: the three of an image are equal, the two images differ.
    noise = torch.randn(1, 3, 64, 96).repeat(6, 1, 1, 1)
    same_noise = pipe(images, num_inference_steps=2, num_images_per_prompt=3, latents=noise, output_type="pt").images
    assert torch.equal(same_noise[0], same_noise[2]) and not torch.equal(same_noise[0], same_noise[3])
    with pytest.raises(ValueError, match="num_images_per_prompt"):
        pipe(images, num_images_per_prompt=0)


def test_a_foreign_flow_scheduler_is_refused_by_name(pipe):
    original = pipe.scheduler
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    try:
        with pytest.raises(ValueError, match="CodFlowMatchScheduler.*FlowMatchEulerDiscreteScheduler"):
            pipe(make_image(), num_inference_steps=2)
    finally:
        pipe.scheduler = original


def test_the_transformer_refuses_timesteps_scaled_by_1000(pipe):
    sample = torch.randn(1, 3, 64, 96)
    condition = torch.zeros(1, pipe.transformer.config.hidden_size, 4, 6)
    with pytest.raises(ValueError, match=r"sigma in \[0, 1\].*1000"):
        pipe.transformer(sample, torch.tensor([999.0]), condition)
    assert pipe.transformer(sample, torch.tensor([1.0]), condition).sample.shape == sample.shape


class CountingHook(ModelHook):
    """Counts the calls accelerate's offload hooks would see (their `pre_forward` moves the module on-device)."""

    def __init__(self):
        self.calls = 0

    def pre_forward(self, module, *args, **kwargs):
        self.calls += 1
        return args, kwargs


def test_offload_hooks_see_the_condition_codec_and_are_released_after_a_call(pipe, monkeypatch):
    hooks = {name: CountingHook() for name in ("condition_codec", "transformer")}
    for name, hook in hooks.items():
        add_hook_to_module(getattr(pipe, name), hook)
    released = []
    monkeypatch.setattr(pipe, "maybe_free_model_hooks", lambda: released.append(True))
    try:
        pipe(make_image(), num_inference_steps=1)
        codes = pipe.compress(make_image())
        pipe.decompress(codes, num_inference_steps=1)
    finally:
        for name in hooks:
            remove_hook_from_module(getattr(pipe, name))
    assert hooks["condition_codec"].calls >= 3  # encode (twice) and the decompress of the .cod file
    assert hooks["transformer"].calls >= 2
    assert len(released) == 2  # after __call__ and after decode, as diffusers pipelines do


def test_enable_model_cpu_offload_runs_on_this_machine_or_says_why(pipe):
    """On a machine without an accelerator diffusers refuses offloading (there is nothing to offload to)."""
    if torch.cuda.is_available():
        offloaded = tiny_pipeline()
        offloaded.enable_model_cpu_offload()
        reference = pipe(make_image(), num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
        result = offloaded(make_image(), num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images[0]
        assert result.size == reference.size
    else:
        with pytest.raises((RuntimeError, ValueError)):
            tiny_pipeline().enable_model_cpu_offload()
