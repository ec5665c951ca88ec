"""The packages that export names lazily (cod_diffc/lazy_exports.py): every exported name resolves, unknown names
are AttributeErrors, and importing the package imports none of the heavy modules."""

import importlib
import subprocess
import sys

import pytest


PACKAGES = ["cod_diffc", "cod_diffc.backbones", "cod_diffc.codecs", "cod_diffc.diffc"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_and_is_listed(package):
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_importing_the_packages_stays_light():
    heavy = {"torch", "diffusers", "compressai"}
    script = f"import sys; [__import__(name) for name in {PACKAGES!r}]; print(sorted({heavy!r} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
