"""Module paths that moved in the new layout (issue 24) still resolve, with a warning that
names the new home; the object is the one the new home holds."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("directionkit.store", "open_activations", "directionkit.results"),
    ("directionkit.store", "write_zarr", "directionkit.results"),
    ("directionkit.store", "Analysis", "directionkit.api"),
    ("directionkit.store", "open", "directionkit.api"),
    ("directionkit.plots", "plot_analysis", "directionkit.report.plots"),
    ("directionkit.plots", "compare_noise_curves", "directionkit.report.plots"),
    ("directionkit.compare", "Comparison", "directionkit.report"),
    ("directionkit.compare", "compare", "directionkit.report"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_an_old_path_warns_and_gives_the_same_object(old: str, name: str, new: str) -> None:
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=f"import {name} from {new}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_an_old_path_refuses_a_name_it_never_had() -> None:
    module = importlib.import_module("directionkit.store")
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_the_package_keeps_its_compare_function_when_the_old_module_is_imported() -> None:
    import directionkit as dk

    importlib.import_module("directionkit.compare")
    assert callable(dk.compare) and dk.compare.__name__ == "compare"


def test_an_old_path_keeps_its_own_names_and_is_no_package() -> None:
    """``__all__`` is the old module's (a star import gives what it gave), and the path is
    no package: a home's ``__path__`` is never forwarded."""
    module = importlib.import_module("directionkit.store")
    assert "Analysis" in module.__all__ and "open" in module.__all__
    assert "read_analysis" not in module.__all__
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("directionkit.store._atomic")
    with pytest.warns(DeprecationWarning):
        namespace: dict[str, object] = {}
        exec("from directionkit.store import *", namespace)
    assert namespace["open"] is importlib.import_module("directionkit.api").open
