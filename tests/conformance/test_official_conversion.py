"""`cod-diffc convert` and `cod_diffc.conversion.official` on the official key lists and tiny checkpoints.

The released key lists (`keys_<variant>.tsv`) must convert one to one onto models built from the released configs; the
tiny checkpoints must convert through the command, taking the EMA weights and refusing any checkpoint with one key
renamed, removed or reshaped, naming that key.
"""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cod_diffc import CodConditionCodec, CodTransformer2DModel
from cod_diffc.conversion.official import (
    CODEC_PREFIX,
    EMA_PREFIX,
    CheckpointConversionError,
    check_against_model,
    convert_state_dict,
    extract_ema_denoiser,
    load_official_weights,
    map_key,
    official_init_args_to_kwargs,
)

from conformance_helpers import VARIANTS


pytestmark = pytest.mark.conformance


def read_key_list(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """A `keys_<variant>.tsv` as meta tensors of the listed shapes (checkpoint names) and its `# TOTAL` numel."""
    tensors, total = {}, None
    for line in path.read_text().splitlines()[1:]:  # the first line is the column header
        columns = line.split("\t")
        if columns[0] == "# TOTAL":
            total = int(columns[-1])
        else:
            tensors[columns[0]] = torch.empty(json.loads(columns[1]), device="meta")
    assert total is not None, f"{path.name} has no '# TOTAL' row"
    return tensors, total


def numel(tensors) -> int:
    return sum(tensor.numel() for tensor in tensors)


def test_folder_holds_known_variants_only(cod_official_dir):
    paths = cod_official_dir.glob("tiny_*_io.safetensors")
    found = {path.name[len("tiny_") : -len("_io.safetensors")] for path in paths}
    assert found, f"no tiny_<variant>_io.safetensors in {cod_official_dir}"
    assert found <= set(VARIANTS), f"variants `cod-diffc convert` does not know: {sorted(found - set(VARIANTS))}"


def test_released_key_lists_convert_one_to_one(cod_official_dir, variant):
    key_list = cod_official_dir / f"keys_{variant}.tsv"
    if not key_list.is_file():
        pytest.skip(f"no {key_list.name} in {cod_official_dir}")
    checkpoint, total = read_key_list(key_list)
    init_args = json.loads((cod_official_dir / f"config_{variant}.json").read_text())["denoiser_init_args"]
    kwargs = official_init_args_to_kwargs(init_args)  # the released codec constants
    with torch.device("meta"):
        models = {
            "condition_codec": CodConditionCodec(**kwargs["condition_codec"]),
            "transformer": CodTransformer2DModel(**kwargs["transformer"]),
        }

    converted = convert_state_dict(extract_ema_denoiser(checkpoint))
    for component, model in models.items():
        check_against_model(converted[component], model, component)  # no key left over or missing, every shape
    assert numel(checkpoint.values()) == total
    assert sum(numel(model.parameters()) for model in models.values()) == total
    # The codec's parts, as the official state dict splits them.
    codec = models["condition_codec"]
    for part, official_part in [("encoder", "encoder"), ("codebook", "bottleneck"), ("decoder", "decoder")]:
        prefix = f"{EMA_PREFIX}{CODEC_PREFIX}{official_part}."
        official_numel = numel(tensor for key, tensor in checkpoint.items() if key.startswith(prefix))
        assert numel(getattr(codec, part).parameters()) == official_numel, part


def test_library_defaults_are_the_released_pixel_model(cod_official_dir):
    key_list = cod_official_dir / "keys_pixel.tsv"
    if not key_list.is_file():
        pytest.skip(f"no {key_list.name} in {cod_official_dir}")
    _, total = read_key_list(key_list)
    with torch.device("meta"):
        defaults = [CodConditionCodec(), CodTransformer2DModel()]
    assert sum(numel(model.parameters()) for model in defaults) == total


def test_convert_reports_the_tiny_parameter_count(converted, converted_pipelines, tiny_config):
    _, printed = converted
    expected = tiny_config["param_count_ema_denoiser"]
    assert f"{expected:,} denoiser parameters" in printed
    pipe = converted_pipelines["f32"]
    assert numel(pipe.transformer.parameters()) + numel(pipe.condition_codec.parameters()) == expected


def test_converted_weights_are_the_ema_ones(converted_pipelines, tiny_state_dict_path):
    # The checkpoint also holds decoys: online weights (`denoiser.*`) and training heads (`diffusion_trainer.*`).
    checkpoint = load_file(tiny_state_dict_path)
    pipe = converted_pipelines["f32"]
    ours = {name: getattr(pipe, name).state_dict() for name in ("condition_codec", "transformer")}
    decoys_differ = False
    for key, tensor in checkpoint.items():
        if not key.startswith(EMA_PREFIX):
            continue
        official_key = key[len(EMA_PREFIX) :]
        component, our_key = map_key(official_key)
        assert torch.equal(ours[component][our_key], tensor), key
        online = checkpoint.get(f"denoiser.{official_key}")
        decoys_differ |= online is not None and not torch.equal(online, tensor)
    assert decoys_differ, "the online weights equal the EMA ones: the test could not tell them apart"


def test_nested_layouts_load_and_foreign_keys_are_refused(converted_pipelines, tiny_state_dict_path):
    checkpoint = load_file(tiny_state_dict_path)
    pipe = converted_pipelines["f32"]
    models = {name: copy.deepcopy(getattr(pipe, name)) for name in ("condition_codec", "transformer")}
    load_official_weights({"state_dict": checkpoint}, models)  # a Lightning checkpoint
    load_official_weights({"module": checkpoint}, models)  # a DeepSpeed one
    with pytest.raises(CheckpointConversionError, match=f"no '{EMA_PREFIX}"):
        load_official_weights({"foo.bar": torch.zeros(1)}, models)
    with pytest.raises(CheckpointConversionError, match="no mapping: extra_module.weight"):
        load_official_weights({**checkpoint, f"{EMA_PREFIX}extra_module.weight": torch.zeros(1)}, models)


def pick_key(checkpoint: dict[str, torch.Tensor], in_codec: bool) -> str:
    """A checkpoint key of the EMA codec or transformer: the middle one in sorted order."""
    keys = [key for key in checkpoint if key.startswith(EMA_PREFIX)]
    keys = sorted(key for key in keys if key.startswith(EMA_PREFIX + CODEC_PREFIX) == in_codec)
    return keys[len(keys) // 2]


@pytest.mark.parametrize("in_codec", [True, False], ids=["codec_key", "transformer_key"])
@pytest.mark.parametrize("change", ["renamed", "removed", "reshaped"])
def test_a_checkpoint_with_one_key_changed_is_refused_naming_it(
    convert, tiny_state_dict_path, variant, change, in_codec, tmp_path
):
    checkpoint = load_file(tiny_state_dict_path)
    key = pick_key(checkpoint, in_codec)
    tensor = checkpoint.pop(key)
    if change == "renamed":
        renamed = f"{key}_renamed"
        checkpoint[renamed] = tensor
        named = renamed[len(EMA_PREFIX) :]  # as the official code names it, or with the prefix
    elif change == "removed":
        named = map_key(key[len(EMA_PREFIX) :])[1]  # the parameter that nothing fills, in our naming
    else:
        checkpoint[key] = tensor.reshape(1, *tensor.shape)  # same numel, other shape
        named = key
    path = tmp_path / f"{change}.safetensors"
    save_file(checkpoint, path)

    status, _, error = convert(path, variant, tmp_path / "pipeline")

    assert status == 2
    assert named in error
    assert not (tmp_path / "pipeline").exists()
