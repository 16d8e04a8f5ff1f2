"""The docstring examples of every package (rules, checks, positions, decoding, quoting) run as tests."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cdc
import comparators
import migrate

MODULES = sorted(
    module.name
    for package in (cdc, comparators, migrate)
    for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0
