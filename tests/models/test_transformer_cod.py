"""Unit tests of `CodTransformer2DModel` on tiny configurations of both heads."""

import math

import pytest
import torch

from cod_diffc.models.transformer_cod import CodAttention, CodAttnProcessor, CodTransformer2DModel


TINY_CONFIGS = {
    "pixel": {
        "in_channels": 3,
        "patch_size": 4,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "num_layers": 2,
        "num_head_layers": 1,
        "head_type": "pixel",
        "head_hidden_size": 8,
        "head_mlp_ratio": 2,
        "head_dct_frequencies": 4,
    },
    "latent": {
        "in_channels": 4,
        "patch_size": 2,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "num_layers": 2,
        "num_head_layers": 1,
        "head_type": "latent",
    },
}


def build_model(head_type: str, seed: int = 0, **overrides) -> CodTransformer2DModel:
    """A tiny model whose weights are redrawn at random, so that its output is not the zero of a fresh model."""
    torch.manual_seed(seed)
    model = CodTransformer2DModel(**{**TINY_CONFIGS[head_type], **overrides})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim == 2:
                parameter.copy_(noise / math.sqrt(parameter.shape[1]))
            elif "norm" in name:
                parameter.copy_(1 + 0.1 * noise)
            else:
                parameter.copy_(0.1 * noise)
    return model.eval()


def dummy_inputs(model: CodTransformer2DModel, batch_size: int = 2, height: int = 8, width: int = 12, seed: int = 0):
    config = model.config
    generator = torch.Generator().manual_seed(seed)
    grid = (height // config.patch_size, width // config.patch_size)
    return {
        "hidden_states": torch.randn(batch_size, config.in_channels, height, width, generator=generator),
        "timestep": torch.rand(batch_size, generator=generator),
        "condition": torch.randn(batch_size, config.hidden_size, *grid, generator=generator),
    }


@pytest.fixture(params=["pixel", "latent"])
def head_type(request):
    return request.param


@torch.no_grad()
def test_save_load_round_trip(head_type, tmp_path):
    model = build_model(head_type)
    inputs = dummy_inputs(model)
    model.save_pretrained(tmp_path)
    loaded = CodTransformer2DModel.from_pretrained(tmp_path).eval()

    public_config = {name: value for name, value in model.config.items() if not name.startswith("_")}
    assert {name: value for name, value in loaded.config.items() if not name.startswith("_")} == public_config
    torch.testing.assert_close(loaded(**inputs).sample, model(**inputs).sample, atol=0, rtol=0)


@torch.no_grad()
def test_forward_is_deterministic(head_type):
    model = build_model(head_type)
    inputs = dummy_inputs(model)
    torch.testing.assert_close(model(**inputs).sample, model(**inputs).sample, atol=0, rtol=0)


@torch.no_grad()
def test_dict_and_tuple_outputs_are_equal(head_type):
    model = build_model(head_type)
    inputs = dummy_inputs(model)
    output_tuple = model(**inputs, return_dict=False)
    assert isinstance(output_tuple, tuple) and len(output_tuple) == 1
    torch.testing.assert_close(output_tuple[0], model(**inputs).sample, atol=0, rtol=0)


@pytest.mark.parametrize("height, width", [(8, 8), (8, 12), (12, 4), (4, 16), (16, 8)])
@torch.no_grad()
def test_output_shape_matches_input(head_type, height, width):
    model = build_model(head_type)
    inputs = dummy_inputs(model, batch_size=3, height=height, width=width)
    sample = model(**inputs).sample
    assert sample.shape == inputs["hidden_states"].shape
    assert torch.isfinite(sample).all()


@torch.no_grad()
def test_fresh_model_outputs_zero(head_type):
    torch.manual_seed(0)
    model = CodTransformer2DModel(**TINY_CONFIGS[head_type])
    sample = model(**dummy_inputs(model)).sample
    assert torch.equal(sample, torch.zeros_like(sample))


@torch.no_grad()
def test_timestep_is_sigma_and_converted_to_flow_time(head_type):
    model = build_model(head_type)
    inputs = dummy_inputs(model)
    seen = []
    handle = model.time_proj.register_forward_hook(lambda module, args, output: seen.append(args[0]))
    model(**inputs)
    handle.remove()
    # The official network runs on t = 1 - sigma.
    torch.testing.assert_close(seen[0], 1 - inputs["timestep"], atol=0, rtol=0)


@torch.no_grad()
def test_scalar_timestep_broadcasts_to_the_batch(head_type):
    model = build_model(head_type)
    inputs = dummy_inputs(model)
    per_sample = model(**{**inputs, "timestep": torch.full((2,), 0.3)}).sample
    torch.testing.assert_close(model(**{**inputs, "timestep": 0.3}).sample, per_sample, atol=0, rtol=0)
    torch.testing.assert_close(model(**{**inputs, "timestep": torch.tensor(0.3)}).sample, per_sample, atol=0, rtol=0)


@torch.no_grad()
def test_batch_elements_are_independent(head_type):
    model = build_model(head_type)
    inputs = dummy_inputs(model, batch_size=3)
    batched = model(**inputs).sample
    single = model(**{name: value[1:2] for name, value in inputs.items()}).sample
    torch.testing.assert_close(single, batched[1:2], atol=1e-5, rtol=0)


def test_rope_positions_depend_on_the_grid_only_through_linspace():
    model = build_model("latent")
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    frequencies = model.config.rope_theta ** (-4 * torch.arange(head_dim // 4, dtype=torch.float64) / head_dim)
    scale = model.config.rope_position_scale

    for grid_height, grid_width in [(3, 5), (7, 2), (4, 4)]:
        cos, sin = model.rope(grid_height, grid_width, device=torch.device("cpu"), dtype=torch.float64)
        assert cos.shape == sin.shape == (grid_height * grid_width, head_dim // 2)
        rows, cols = torch.meshgrid(torch.arange(grid_height), torch.arange(grid_width), indexing="ij")
        x = torch.linspace(0, scale, grid_width, dtype=torch.float64)[cols.flatten()]  # (L,)
        y = torch.linspace(0, scale, grid_height, dtype=torch.float64)[rows.flatten()]  # (L,)
        # pair 2k turns by x * f_k, pair 2k + 1 by y * f_k
        expected = torch.stack([x[:, None] * frequencies, y[:, None] * frequencies], dim=-1).flatten(1)
        torch.testing.assert_close(cos, torch.cos(expected), atol=1e-12, rtol=0)
        torch.testing.assert_close(sin, torch.sin(expected), atol=1e-12, rtol=0)
        # the grid spans [0, scale] on both axes whatever its size
        last_angles = torch.stack([scale * frequencies, scale * frequencies], dim=-1).flatten()
        torch.testing.assert_close(torch.cos(last_angles), cos[-1], atol=1e-12, rtol=0)


def test_rope_follows_float64_and_is_at_least_float32():
    model = build_model("latent")
    cos64, _ = model.rope(2, 3, device=torch.device("cpu"), dtype=torch.float64)
    cos16, _ = model.rope(2, 3, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert cos64.dtype == torch.float64
    assert cos16.dtype == torch.float32


def test_gradient_checkpointing_gives_the_same_gradients(head_type):
    model = build_model(head_type).train()
    inputs = dummy_inputs(model)

    def gradients():
        model.zero_grad(set_to_none=True)
        model(**inputs).sample.pow(2).mean().backward()
        return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}

    reference = gradients()
    model.enable_gradient_checkpointing()
    assert model.is_gradient_checkpointing
    checkpointed = gradients()

    assert reference.keys() == checkpointed.keys()
    assert reference["blocks.0.attn.to_qkv.weight"].abs().max() > 0
    for name, gradient in reference.items():
        torch.testing.assert_close(checkpointed[name], gradient, atol=1e-6, rtol=1e-5, msg=name)


@torch.no_grad()
def test_float64_model_runs_in_float64(head_type):
    model = build_model(head_type).double()
    inputs = {name: value.double() for name, value in dummy_inputs(model).items()}
    assert model(**inputs).sample.dtype == torch.float64


@torch.no_grad()
def test_python_float_timestep_keeps_float64_precision():
    model = build_model("latent").double()
    inputs = {name: value.double() for name, value in dummy_inputs(model).items()}
    sigma = 0.1 + 1e-12  # not representable in float32
    expected = model(**{**inputs, "timestep": torch.tensor(sigma, dtype=torch.float64)}).sample
    torch.testing.assert_close(model(**{**inputs, "timestep": sigma}).sample, expected, atol=0, rtol=0)


@torch.no_grad()
def test_bfloat16_model_is_close_to_float32(head_type, tmp_path):
    model = build_model(head_type)
    model.save_pretrained(tmp_path)
    half = CodTransformer2DModel.from_pretrained(tmp_path, torch_dtype=torch.bfloat16).eval()
    assert half.time_embed.linear_1.weight.dtype == torch.float32  # `_keep_in_fp32_modules`
    assert half.token_embed.weight.dtype == torch.bfloat16

    inputs = dummy_inputs(model)
    half_inputs = {**inputs, "hidden_states": inputs["hidden_states"].bfloat16()}
    half_inputs["condition"] = inputs["condition"].bfloat16()
    sample = half(**half_inputs).sample
    assert sample.dtype == torch.bfloat16
    torch.testing.assert_close(sample.float(), model(**inputs).sample, atol=0.1, rtol=0.05)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_size": 33}, "divisible by `num_attention_heads`"),
        ({"hidden_size": 36, "num_attention_heads": 2}, "divisible by 4"),
        ({"head_type": "video"}, "head_type"),
        ({"timestep_freq_dim": 255}, "timestep_freq_dim"),
        ({"num_layers": 0}, "num_layers"),
        ({"num_head_layers": -1}, "num_head_layers"),
        ({"patch_size": 0}, "patch_size"),
        ({"mlp_ratio": 0.0}, "mlp_ratio"),
    ],
)
def test_invalid_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        CodTransformer2DModel(**{**TINY_CONFIGS["latent"], **overrides})


# case -> (replacement inputs built from the valid (B=2, Cin=4, 8x12, patch 2) inputs, expected message)
INVALID_INPUTS = {
    "wrong_channels": (lambda inputs: {"hidden_states": torch.randn(2, 5, 8, 12)}, "hidden_states"),
    "not_4d": (lambda inputs: {"hidden_states": torch.randn(2, 4, 8)}, "hidden_states"),
    "size_not_divisible": (lambda inputs: {"hidden_states": torch.randn(2, 4, 8, 11)}, "divisible by the patch"),
    "condition_channels": (lambda inputs: {"condition": inputs["condition"][:, :16]}, "condition"),
    "condition_grid": (lambda inputs: {"condition": inputs["condition"][..., :5]}, "condition"),
    "condition_batch": (lambda inputs: {"condition": inputs["condition"][:1]}, "condition"),
    "timestep_batch": (lambda inputs: {"timestep": torch.rand(3)}, "timestep"),
    "timestep_2d": (lambda inputs: {"timestep": torch.rand(2, 1)}, "timestep"),
}


@pytest.mark.parametrize("case", list(INVALID_INPUTS))
def test_invalid_inputs_raise(case):
    model = build_model("latent")
    inputs = dummy_inputs(model)
    make_override, message = INVALID_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        model(**{**inputs, **make_override(inputs)})


class CountingAttnProcessor(CodAttnProcessor):
    """The default computation, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, attn, hidden_states, rotary_emb):
        self.calls += 1
        return super().__call__(attn, hidden_states, rotary_emb)


@torch.no_grad()
def test_attention_runs_through_diffusers_processors_and_backends(head_type):
    model = build_model(head_type)
    inputs = dummy_inputs(model)
    expected = model(**inputs).sample
    attention_layers = [module for module in model.modules() if isinstance(module, CodAttention)]
    processors = model.attn_processors
    assert len(processors) == len(attention_layers) > 0
    assert all(isinstance(processor, CodAttnProcessor) for processor in processors.values())

    counting = CountingAttnProcessor()
    model.set_attn_processor(counting)
    assert torch.equal(model(**inputs).sample, expected)
    assert counting.calls == len(attention_layers)

    model.set_default_attn_processor()
    model.set_attention_backend("native")
    assert {type(processor) for processor in model.attn_processors.values()} == {CodAttnProcessor}
    assert all(str(p._attention_backend) == "AttentionBackendName.NATIVE" for p in model.attn_processors.values())
    assert torch.equal(model(**inputs).sample, expected)
    model.reset_attention_backend()
