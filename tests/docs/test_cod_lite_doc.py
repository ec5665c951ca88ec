"""docs/cod_lite.md works as written: its Python example runs on a CoD-Lite converted by its own command (the tiny
reference checkpoint of `$COD_DIFFC_LITE_REFERENCE_DIR` in the released file's place), and every variant it lists is
one `cod-diffc convert` takes."""

import re

import pytest
import torch
from markdown_blocks import DOCS, fenced_blocks
from safetensors.torch import load_file

from cod_diffc.cli import main
from cod_diffc.conversion.cod_lite_releases import RELEASED_CHECKPOINTS


PAGE = DOCS / "cod_lite.md"


def test_the_variant_table_is_what_convert_takes():
    listed = re.findall(r"^\| `(cod-lite-[\w.]+)` \| `(\w+\.pt)`", PAGE.read_text(), re.M)
    assert dict(listed) == {variant: checkpoint.hub_file for variant, checkpoint in RELEASED_CHECKPOINTS.items()}


@pytest.mark.conformance
def test_the_python_example_runs_on_a_converted_model(cod_lite_official_dir, tmp_path, monkeypatch):
    checkpoint = tmp_path / "CoD_Lite_pretrain.pt"
    torch.save({"state_dict": load_file(cod_lite_official_dir / "tiny_pretrain_state_dict.safetensors")}, checkpoint)
    config = cod_lite_official_dir / "tiny_config_pretrain.json"
    monkeypatch.chdir(tmp_path)
    # The page's first command, with the tiny model's config (the released file needs none).
    assert (
        main(
            [
                "convert",
                "CoD_Lite_pretrain.pt",
                "--variant",
                "cod-lite-pretrain",
                "-o",
                "cod-lite",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    (example,) = fenced_blocks(PAGE, "python")
    namespace: dict = {}
    exec(compile(example, "docs/cod_lite.md", "exec"), namespace)
    assert namespace["reconstruction"].shape == (1, 3, 128, 192)
    assert namespace["cod_file"][:4] == (192).to_bytes(2, "little") + (128).to_bytes(2, "little")
