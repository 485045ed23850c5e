"""The examples in both packages' docstrings run and print what they show (sirfp_adapter's
examples that need a user's model and data are marked ``+SKIP`` where they stand)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: what each package needs beyond the core, and its modules left out (with why)
PACKAGES = {
    "mewcp": {"needs": (), "left_out": {"mewcp.__main__"}},  # __main__ runs the CLI on import
    # the Triton kernel imports triton, absent on CPU machines
    "sirfp_adapter": {"needs": ("torch", "torch_pruning"), "left_out": {"sirfp_adapter._triton_js"}},
}
#: modules whose examples are the front door: they must have some
FRONT_DOORS = {"mewcp": (("mewcp.solve", "mewcp.solvers.greedy"), 5),
               "sirfp_adapter": (("sirfp_adapter.criteria", "sirfp_adapter.plan"), 3)}


def _missing(package: str) -> list[str]:
    return [m for m in PACKAGES[package]["needs"] if importlib.util.find_spec(m) is None]


def _modules() -> list[object]:
    params: list[object] = []
    for package, spec in PACKAGES.items():
        if missing := _missing(package):
            params.append(pytest.param(package, marks=pytest.mark.skip(reason=f"needs {', '.join(missing)}")))
            continue
        path = importlib.import_module(package).__path__
        params += sorted(info.name for info in pkgutil.walk_packages(path, prefix=f"{package}.")
                         if info.name not in spec["left_out"])
    return params


@pytest.mark.parametrize("name", _modules())
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("package", list(FRONT_DOORS))
def test_the_front_doors_have_examples(package: str) -> None:
    if missing := _missing(package):
        pytest.skip(f"needs {', '.join(missing)}")
    names, least = FRONT_DOORS[package]
    attempted = sum(doctest.testmod(importlib.import_module(n), optionflags=FLAGS, verbose=False).attempted
                    for n in names)
    assert attempted >= least
