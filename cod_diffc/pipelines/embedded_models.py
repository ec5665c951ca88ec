"""The CoD models that ship inside the package, loadable by name: `CodPipeline.from_pretrained("cod-latent-small")`."""

from __future__ import annotations

from pathlib import Path


WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

EMBEDDED_MODELS: dict[str, Path] = {"cod-latent-small": WEIGHTS_DIR / "cod-latent-small"}
"""Name -> saved `CodPipeline` folder inside the package (model card: docs/model_card_cod_latent_small.md)."""

EMBEDDED_LATENT_DIFFUSION_MODELS: dict[str, Path] = {"ldm-small": WEIGHTS_DIR / "ldm-small"}
"""Name -> saved `LatentDiffusionPipeline` folder inside the package, the `ldm` backbone's models (model card:
docs/model_card_ldm_small.md)."""

DEFAULT_EMBEDDED_MODEL = "cod-latent-small"
"""The model `cod-diffc compress --backbone cod` uses when `--model` is not given."""

EMBEDDED_MODEL_FINGERPRINTS: dict[str, str] = {
    "80f05aeb9a5582b8": "the embedded model cod-latent-small (load it with --model cod-latent-small, in float32)",
    "7df081bdfda644c5": "the embedded model ldm-small (load it with --backbone ldm --model ldm-small, in float32)",
    "8432c163aded034c": (
        "the embedded model cod-pixel-small of cod_diffc 0.1, which this version no longer ships: decode with "
        "cod_diffc 0.1 (git revisions 160cca2 to 8247d2e), or with --model pointing at a saved copy of that model"
    ),
}
"""Fingerprint (hex, of the model loaded in float32, as `--backbone cod` does) -> what that model is and how to load
it, for every model that ships inside the package or did in an earlier release: a stream made with one names it."""


def resolve_embedded_model(name_or_path: str | Path, embedded: dict[str, Path] = EMBEDDED_MODELS) -> str | Path:
    """The package folder of an embedded model's name (one of `embedded`, by default the CoD models); anything else
    (a local folder, a hub id) unchanged.

    A local folder that happens to carry an embedded model's name wins, as local folders win over hub ids.

    Raises:
        `FileNotFoundError`: if the name is an embedded model's but its files are missing from this installation.
    """
    folder = embedded.get(str(name_or_path))
    if folder is None or Path(name_or_path).exists():
        return name_or_path
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"the embedded model {name_or_path} is missing from this installation ({folder})")
    return folder
