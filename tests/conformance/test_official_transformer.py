"""The transformer of each converted tiny checkpoint against the official CoD denoiser.

The official network runs on t (0 = noise) and predicts x0 - eps; ours takes sigma = 1 - t and predicts eps - x0,
so every velocity is compared with its negation. Inputs, outputs and tolerances: the reference folder and its README.
"""

import pytest
import torch

from cod_diffc.models.transformer_cod import CodTransformer2DModel, dct_positional_features

from conformance_helpers import ATOL, DTYPES


pytestmark = pytest.mark.conformance


def model_and_inputs(
    converted_pipelines, reference_io: dict[str, torch.Tensor], dtype_name: str
) -> tuple[CodTransformer2DModel, torch.Tensor, torch.Tensor]:
    """The converted transformer in the working dtype, x_t `(T, Cin, Hs, Ws)` and sigma = 1 - t `(T,)`."""
    if dtype_name == "f32":
        noisy, t = reference_io["x_t_f32"], reference_io["t_f32"]
    else:  # the README: build x_t in double from x0, eps and the exact t (t = 1 is data)
        t = reference_io["t_f64"]
        noisy = t.view(-1, 1, 1, 1) * reference_io["x0_f64"] + (1 - t.view(-1, 1, 1, 1)) * reference_io["eps_f64"]
    return converted_pipelines[dtype_name].transformer, noisy, 1 - t


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("condition_name, velocity_name", [("cond_map", "v_cond"), ("null_map", "v_null")])
def test_velocity_matches_official(converted_pipelines, reference_io, dtype_name, condition_name, velocity_name):
    model, noisy, sigma = model_and_inputs(converted_pipelines, reference_io, dtype_name)
    condition = reference_io[f"{condition_name}_{dtype_name}"].expand(len(sigma), -1, -1, -1)  # (T, C, h, w)
    expected = -reference_io[f"{velocity_name}_{dtype_name}"]

    with torch.no_grad():
        sample = model(noisy, sigma, condition).sample

    assert sample.dtype == expected.dtype
    assert expected.abs().max() > 0.1  # the reference is not trivial
    torch.testing.assert_close(sample, expected, atol=ATOL[dtype_name], rtol=0)


def test_guided_velocity_matches_official(converted_pipelines, reference_io, tiny_config):
    # `v_cfg_f32` = v_null + w (v_cond - v_null) with the folder's guidance scale w at every stored t (no window).
    model, noisy, sigma = model_and_inputs(converted_pipelines, reference_io, "f32")
    expand = (len(sigma), -1, -1, -1)
    with torch.no_grad():
        conditional = model(noisy, sigma, reference_io["cond_map_f32"].expand(*expand)).sample
        unconditional = model(noisy, sigma, reference_io["null_map_f32"].expand(*expand)).sample
    guided = unconditional + tiny_config["cfg_scale_used"] * (conditional - unconditional)
    torch.testing.assert_close(guided, -reference_io["v_cfg_f32"], atol=ATOL["f32"], rtol=0)


@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_intermediates_match_official(converted_pipelines, reference_io, dtype_name):
    model, noisy, sigma = model_and_inputs(converted_pipelines, reference_io, dtype_name)
    condition = reference_io[f"cond_map_{dtype_name}"].expand(len(sigma), -1, -1, -1)  # (T, C, h, w)
    is_pixel = model.config.head_type == "pixel"
    num_layers = model.config.num_layers
    patch_size = model.config.patch_size

    captured = {}

    def capture(name, take_input=False):
        def hook(module, args, output):
            captured[name] = args[0] if take_input else output

        return hook

    handles = [
        model.time_proj.register_forward_hook(capture("t_freq")),
        model.time_embed.register_forward_hook(capture("t_emb")),
        model.token_embed.register_forward_hook(capture("s_embed")),
        model.blocks[num_layers - 1].register_forward_hook(capture("backbone_out")),
        model.norm_out.register_forward_hook(capture("head_out", take_input=True)),
        model.proj_out.register_forward_hook(capture("final_out")),
    ]
    if is_pixel:
        handles.append(model.pixel_embed.register_forward_hook(capture("head_in", take_input=True)))
        handles.append(model.pixel_embed.register_forward_hook(capture("x_embed")))
    else:
        handles.append(model.head_embed.register_forward_hook(capture("x_embed")))
    with torch.no_grad():
        model(noisy, sigma, condition)
    for handle in handles:
        handle.remove()

    suffix = f"_{dtype_name}"
    expected = {
        name[len("dbg_") : -len(suffix)]: tensor
        for name, tensor in reference_io.items()
        if name.startswith("dbg_") and name.endswith(suffix)
    }
    actual = {
        "t_freq": captured["t_freq"],
        "t_emb": captured["t_emb"],
        "s_embed": captured["s_embed"],
        "backbone_out": captured["backbone_out"],
        "s": torch.nn.functional.silu(captured["t_emb"][:, None] + captured["backbone_out"]),
    }
    grid = condition.shape[-2:]
    actual["rope_cos"], actual["rope_sin"] = model.rope(*grid, device=noisy.device, dtype=noisy.dtype)
    if is_pixel:
        num_pixel_inputs = model.config.in_channels + model.config.head_hidden_size
        actual["dct"] = dct_positional_features(
            patch_size, model.config.head_dct_frequencies, device=noisy.device, dtype=noisy.dtype
        )
        actual["head_in_tok0"] = captured["head_in"][0, 0, :, :num_pixel_inputs]  # before the DCT is appended
        actual["x_embed_tok0"] = captured["x_embed"][0, 0]
        actual["head_out_tok0"] = captured["head_out"][0, 0]
        actual["final_out_tok0"] = captured["final_out"][0, 0]
    else:
        actual["x_embed"] = captured["x_embed"]
        actual["head_out"] = captured["head_out"]
        actual["final_out"] = captured["final_out"]

    assert set(actual) == set(expected)
    for name, tensor in actual.items():
        torch.testing.assert_close(
            tensor, expected[name], atol=ATOL[dtype_name], rtol=0, msg=lambda m, name=name: f"{name}: {m}"
        )
