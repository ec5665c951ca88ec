"""What the package declares and where it runs: supported ranges, the tested versions, extras, a plain source copy."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from cod_diffc.optional_dependencies import EXTRA_OF_MODULE, MissingDependencyError, require


ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONSTRAINTS = dict(
    line.split("==")
    for line in (ROOT / "constraints.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower().replace("_", "-")


def test_dependencies_are_ranges_and_the_tested_versions_are_constraints():
    dependencies = PYPROJECT["project"]["dependencies"]
    assert not [requirement for requirement in dependencies if "==" in requirement]
    names = {requirement_name(requirement) for requirement in dependencies}
    assert {"torch", "torchvision", "compressai", "diffusers"} <= names
    assert {"torch": "2.14.1", "torchvision": "0.29.1", "compressai": "1.2.8"}.items() <= CONSTRAINTS.items()


def test_readme_and_ci_install_with_the_constraints():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start") :]
    first, second = re.findall(r"```bash\n(.*?)```", quick_start, flags=re.DOTALL)[:2]
    for command in (first, second):
        assert "pip install -c constraints.txt" in command
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == second.strip()  # CI runs exactly it


def test_only_some_users_need_the_extras():
    core = {requirement_name(requirement) for requirement in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    for module, extra in EXTRA_OF_MODULE.items():
        assert module not in core
        assert module in {requirement_name(requirement) for requirement in extras[extra]}
    assert "cod-diffc[all]" in extras["test"]


def test_a_missing_optional_package_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(
        MissingDependencyError, match=r'RD plots needs the `matplotlib` package: .*"cod-diffc\[plots\]"'
    ):
        require("matplotlib", "RD plots")


def test_a_plain_copy_of_the_tree_imports_without_installation():
    """No package metadata (a working tree copied to a GPU machine, PYTHONPATH=.): the version comes from pyproject."""
    script = (
        "import importlib.metadata as metadata\n"
        "def not_installed(name):\n"
        "    raise metadata.PackageNotFoundError(name)\n"
        "metadata.version = not_installed\n"
        "import cod_diffc, cod_diffc.diffc, cod_diffc.ddcm\n"
        "print(cod_diffc.__version__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == PYPROJECT["project"]["version"] + "+source"
