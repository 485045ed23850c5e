"""The examples in mewcp's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mewcp

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(mewcp.__path__, prefix="mewcp.") if not info.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_front_door_has_examples() -> None:
    attempted = sum(doctest.testmod(importlib.import_module(n), verbose=False).attempted
                    for n in ("mewcp.solve", "mewcp.solvers.greedy"))
    assert attempted >= 5
