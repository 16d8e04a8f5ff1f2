"""The docstring examples (rules, positions, quoting) run as tests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import comparators

MODULES = sorted(m.name for m in pkgutil.walk_packages(comparators.__path__, prefix="comparators."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
