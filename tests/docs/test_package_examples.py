"""The examples in the package docstrings of the codec and backbone layers run as written."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["cod_diffc.backbones", "cod_diffc.codecs", "cod_diffc.diffc", "cod_diffc.ddcm"])
def test_package_docstring_example_runs(module):
    results = doctest.testmod(importlib.import_module(module))
    assert results.attempted > 0 and results.failed == 0
