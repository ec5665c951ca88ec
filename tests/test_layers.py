"""The arrows point one way: codecs use backbones, backbones use models and pipelines, nothing below imports the
CLI, and the evaluation reaches codecs only through the `Codec` interface. Checked on every import statement of the
package (module level and inside functions alike)."""

import ast
from pathlib import Path

import pytest


PACKAGE = Path(__file__).resolve().parents[1] / "cod_diffc"
CODECS = ("cod_diffc.codecs", "cod_diffc.diffc", "cod_diffc.ddcm", "cod_diffc.onestep")
FORBIDDEN = {
    "cod_diffc.backbones": (*CODECS, "cod_diffc.cli", "cod_diffc.evaluation", "cod_diffc.training"),
    "cod_diffc.codecs": (*CODECS[1:], "cod_diffc.pipelines", "cod_diffc.cli"),
    "cod_diffc.models": (*CODECS, "cod_diffc.backbones", "cod_diffc.cli"),
    "cod_diffc.pipelines": (*CODECS, "cod_diffc.backbones", "cod_diffc.cli"),
    "cod_diffc.evaluation": ("cod_diffc.cli", *CODECS[1:]),  # codecs only by interface
    "cod_diffc.training": ("cod_diffc.cli",),
    **{  # each codec package is a sibling of the others, on backbones and codecs/ only
        codec: (
            *(other for other in CODECS[1:] if other != codec),
            "cod_diffc.pipelines",
            "cod_diffc.models",
            "cod_diffc.cli",
        )
        for codec in CODECS[1:]
    },
}


def imported_modules(path: Path, package: str) -> set[str]:
    """Absolute names of every module `path` imports, relative imports resolved against its `package`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer):
    folder = PACKAGE / layer.split(".")[1]
    assert folder.is_dir()
    violations = []
    for path in sorted(folder.rglob("*.py")):
        package = ".".join(["cod_diffc", *path.relative_to(PACKAGE).parent.parts])
        for name in imported_modules(path, package):
            if name.startswith(FORBIDDEN[layer]):
                violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not violations, "\n".join(violations)


def test_the_check_sees_relative_and_nested_imports(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("from ..diffc import codec\ndef f():\n    from cod_diffc.cli import main\n")
    assert imported_modules(source, "cod_diffc.ddcm") == {"cod_diffc.diffc", "cod_diffc.cli"}
