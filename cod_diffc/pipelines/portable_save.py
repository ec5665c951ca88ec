"""Saved pipelines that carry no path of the machine that saved them."""

import json
import os
from pathlib import Path


class PortableSaveMixin:
    """`save_pretrained` without the `_name_or_path` entries that diffusers copies into `model_index.json` and the
    components' `config.json` from the folder a model was loaded from (a path of the machine that saved it). Put it
    before `DiffusionPipeline` in the bases."""

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        super().save_pretrained(save_directory, **kwargs)
        for config_file in [Path(save_directory) / "model_index.json", *Path(save_directory).glob("*/config.json")]:
            config = json.loads(config_file.read_text())
            if config.pop("_name_or_path", None) is not None:
                config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
