"""`CodTransformer2DModel` against the official CoD denoiser (reference data in `shared/reference/cod_official/`).

The official network runs on t (0 = noise) and predicts x0 - eps; ours takes sigma = 1 - t and predicts eps - x0,
so every velocity is compared with its negation.
"""

import copy
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from cod_diffc.models.transformer_cod import CodTransformer2DModel, dct_positional_features


KEY_MAP_PATH = Path(__file__).resolve().parents[2] / "third_party" / "cod_official" / "key_map_transformer.tsv"
CHECKPOINT_PREFIX = "ema_denoiser."
CODEC_PREFIX = "y_embedder."
VARIANTS = ["pixel", "latent", "latent_64bits"]
TOLERANCES = {"f32": 5e-5, "f64": 1e-9}


def load_key_map() -> list[tuple[str, str]]:
    rows = []
    for line in KEY_MAP_PATH.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        pattern, replacement = line.split("\t")
        rows.append((pattern, replacement))
    return rows


def map_official_key(key: str, key_map: list[tuple[str, str]]) -> str | None:
    """Applies the first row whose pattern fully matches `key` (prefix already stripped)."""
    for pattern, replacement in key_map:
        match = re.fullmatch(pattern, key)
        if match is not None:
            return match.expand(replacement)
    return None


def official_transformer_keys(keys: list[str]) -> list[str]:
    """The EMA denoiser keys outside the condition codec, prefix stripped."""
    stripped = [key[len(CHECKPOINT_PREFIX) :] for key in keys if key.startswith(CHECKPOINT_PREFIX)]
    return [key for key in stripped if not key.startswith(CODEC_PREFIX)]


def transformer_kwargs(config: dict) -> dict:
    """`CodTransformer2DModel` arguments for an official config (`config_*.json` or `tiny_config_*.json`)."""
    init_args = config["denoiser_init_args"]
    kwargs = {
        "in_channels": init_args["in_channels"],
        "patch_size": init_args["patch_size"],
        "hidden_size": init_args["hidden_size"],
        "num_attention_heads": init_args["num_groups"],
        "num_layers": init_args["num_cond_blocks"],
        "num_head_layers": init_args["num_blocks"] - init_args["num_cond_blocks"],
        "head_type": "latent" if config["latent"] else "pixel",
    }
    if not config["latent"]:
        kwargs["head_hidden_size"] = init_args["hidden_size_x"]
        kwargs["head_mlp_ratio"] = init_args.get("nerf_mlpratio", 4)  # 4 is the official class default
    return kwargs


def read_released_keys(path: Path) -> tuple[dict[str, tuple[int, ...]], int]:
    """`keys_*.tsv` as {key: shape} and the `# TOTAL` parameter count."""
    shapes, total = {}, None
    for line in path.read_text().splitlines()[1:]:
        columns = line.split("\t")
        if columns[0] == "# TOTAL":
            total = int(columns[-1])
        else:
            shapes[columns[0]] = tuple(json.loads(columns[1]))
    return shapes, total


def assert_one_to_one(official_shapes: dict[str, tuple[int, ...]], ours: dict[str, tuple[int, ...]]) -> None:
    key_map = load_key_map()
    mapped = {}
    for key, shape in official_shapes.items():
        our_key = map_official_key(key, key_map)
        assert our_key is not None, f"no key-map row matches {key}"
        assert our_key in ours, f"{key} maps to {our_key}, which the model does not have"
        assert our_key not in mapped, f"{key} and {mapped.get(our_key)} both map to {our_key}"
        assert ours[our_key] == shape, f"{key} -> {our_key}: shape {shape} vs {ours[our_key]}"
        mapped[our_key] = key
    assert set(ours) == set(mapped), f"model keys no official key maps to: {sorted(set(ours) - set(mapped))}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_key_map_matches_released_checkpoint(reference_dir, variant):
    folder = reference_dir / "cod_official"
    config = json.loads((folder / f"config_{variant}.json").read_text())
    official, total = read_released_keys(folder / f"keys_{variant}.tsv")
    codec_numel = sum(torch.Size(shape).numel() for key, shape in official.items() if ".y_embedder." in key)
    transformer_shapes = {key: official[CHECKPOINT_PREFIX + key] for key in official_transformer_keys(list(official))}

    with torch.device("meta"):
        model = CodTransformer2DModel(**transformer_kwargs(config))
    ours = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}

    assert_one_to_one(transformer_shapes, ours)
    assert sum(parameter.numel() for parameter in model.parameters()) == total - codec_numel


def test_released_parameter_counts():
    # The released totals minus codec encoder, VQ codebook and codec decoder (README parameter table).
    with torch.device("meta"):
        pixel = CodTransformer2DModel()
        latent = CodTransformer2DModel(
            in_channels=4, patch_size=2, num_layers=22, num_head_layers=6, head_type="latent"
        )
    assert sum(p.numel() for p in pixel.parameters()) == 897_063_843 - 28_708_224 - 2_048 - 148_695_552
    assert sum(p.numel() for p in latent.parameters()) == 853_553_232 - 28_708_224 - 2_048 - 148_695_552


@pytest.fixture(scope="module", params=VARIANTS)
def official(request, reference_dir):
    """(variant, our model with the tiny EMA weights loaded, reference io tensors)."""
    variant = request.param
    folder = reference_dir / "cod_official"
    config = json.loads((folder / f"tiny_config_{variant}.json").read_text())
    model = CodTransformer2DModel(**transformer_kwargs(config))

    key_map = load_key_map()
    path = folder / f"tiny_{variant}_state_dict.safetensors"
    with safe_open(path, "pt") as checkpoint:
        state_dict = {
            map_official_key(key, key_map): checkpoint.get_tensor(CHECKPOINT_PREFIX + key)
            for key in official_transformer_keys(list(checkpoint.keys()))
        }
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    return variant, model, load_file(folder / f"tiny_{variant}_io.safetensors")


def test_key_map_matches_tiny_state_dict(official, reference_dir):
    variant, model, _ = official
    with safe_open(reference_dir / "cod_official" / f"tiny_{variant}_state_dict.safetensors", "pt") as checkpoint:
        shapes = {
            key: tuple(checkpoint.get_slice(CHECKPOINT_PREFIX + key).get_shape())
            for key in official_transformer_keys(list(checkpoint.keys()))
        }
    assert_one_to_one(shapes, {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()})


def model_and_inputs(official, dtype_name: str):
    """The model in the working dtype, x_t (3, Cin, Hs, Ws) and sigma = 1 - t (3,)."""
    _, model, io = official
    if dtype_name == "f32":
        return model, io["x_t_f32"], 1 - io["t_f32"]
    t = io["t_f64"].view(-1, 1, 1, 1)
    noisy = t * io["x0_f64"] + (1 - t) * io["eps_f64"]  # official convention: t = 1 is data
    return copy.deepcopy(model).double(), noisy, 1 - io["t_f64"]


@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
@pytest.mark.parametrize("condition_name, velocity_name", [("cond_map", "v_cond"), ("null_map", "v_null")])
def test_velocity_matches_official(official, dtype_name, condition_name, velocity_name):
    _, _, io = official
    model, noisy, sigma = model_and_inputs(official, dtype_name)
    condition = io[f"{condition_name}_{dtype_name}"].repeat(3, 1, 1, 1)
    expected = -io[f"{velocity_name}_{dtype_name}"]

    with torch.no_grad():
        sample = model(noisy, sigma, condition).sample

    assert sample.dtype == expected.dtype
    assert expected.abs().max() > 0.1  # the reference is not trivial
    torch.testing.assert_close(sample, expected, atol=TOLERANCES[dtype_name], rtol=0)


@pytest.mark.parametrize("dtype_name", ["f32", "f64"])
def test_intermediates_match_official(official, dtype_name):
    variant, _, io = official
    model, noisy, sigma = model_and_inputs(official, dtype_name)
    condition = io[f"cond_map_{dtype_name}"].repeat(3, 1, 1, 1)
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
    if variant == "pixel":
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
        for name, tensor in io.items()
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
    if variant == "pixel":
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
            tensor, expected[name], atol=TOLERANCES[dtype_name], rtol=0, msg=lambda m, name=name: f"{name}: {m}"
        )
