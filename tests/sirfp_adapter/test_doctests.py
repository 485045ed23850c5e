"""The examples in sirfp_adapter's docstrings run and print what they show (examples
that need a user's model and data are marked ``+SKIP`` where they stand)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

import sirfp_adapter  # noqa: E402

#: the Triton kernel imports triton, absent on CPU machines
MODULES = sorted(info.name for info in pkgutil.walk_packages(sirfp_adapter.__path__, prefix="sirfp_adapter.")
                 if info.name != "sirfp_adapter._triton_js")


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_criteria_and_the_plan_have_running_examples() -> None:
    attempted = sum(doctest.testmod(importlib.import_module(n), verbose=False).attempted
                    for n in ("sirfp_adapter.criteria", "sirfp_adapter.plan"))
    assert attempted >= 3
