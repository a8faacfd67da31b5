"""The paper's old import path, ``directionkit.experiments.paper``, still works and warns."""

from __future__ import annotations

import importlib
import warnings

import pytest

import directionkit.paper as paper

MOVED = "directionkit.experiments.paper is deprecated: import"


@pytest.mark.parametrize("name", paper.__all__)
def test_every_public_name_is_forwarded_with_a_deprecation_warning(name: str) -> None:
    old = importlib.import_module("directionkit.experiments.paper")
    with pytest.warns(DeprecationWarning, match=MOVED):
        forwarded = getattr(old, name)
    assert forwarded is getattr(paper, name)


def test_from_import_of_the_old_path_warns_and_gives_the_new_objects() -> None:
    with pytest.warns(DeprecationWarning, match=MOVED) as caught:
        from directionkit.experiments.paper import EXPERIMENTS, reproduce
    assert reproduce is paper.reproduce and EXPERIMENTS is paper.EXPERIMENTS
    # (each name may warn twice: the import system looks it up before the import does)
    assert {str(w.message) for w in caught} == {
        f"{MOVED} EXPERIMENTS from directionkit.paper instead.",
        f"{MOVED} reproduce from directionkit.paper instead.",
    }
    assert {w.filename for w in caught} == {__file__}  # the importing line, for each


def test_an_unknown_name_is_an_attribute_error_and_no_warning() -> None:
    old = importlib.import_module("directionkit.experiments.paper")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
            old.no_such_name  # noqa: B018
