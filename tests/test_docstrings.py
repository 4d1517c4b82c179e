"""Every example in the package's docstrings runs and prints what it says it prints."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bayesworker

MODULES = sorted(m.name for m in pkgutil.walk_packages(bayesworker.__path__, "bayesworker."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
