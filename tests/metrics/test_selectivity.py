"""Class means and selectivity against a brute-force loop, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from directionkit import class_mean, class_selectivity
from directionkit.errors import DirectionKitError, InvalidDataError


def brute_force(acts: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[list, list]:
    """Class means and the index with plain Python loops, straight from eq. 1."""
    means, index = [], []
    for u in range(acts.shape[1]):
        row = []
        for c in range(n_classes):
            values = [acts[i, u] for i in range(len(labels)) if labels[i] == c]
            row.append(sum(values) / len(values))
        means.append(row)
        top = max(row)
        rest = (sum(row) - top) / (n_classes - 1)
        index.append(0.0 if top + rest == 0 else (top - rest) / (top + rest))
    return means, index


def test_selectivity_and_class_means_equal_a_brute_force_loop() -> None:
    rng = np.random.default_rng(0)
    acts = np.maximum(rng.normal(size=(200, 7)), 0)
    acts[:, 3] = 0.0  # a dead unit
    labels = rng.integers(0, 5, 200)
    means, index = brute_force(acts, labels, 5)
    np.testing.assert_allclose(class_mean(acts, labels).values, means, rtol=1e-12)
    np.testing.assert_allclose(class_selectivity(acts, labels).values, index, rtol=1e-12)
    assert class_selectivity(acts, labels).values[3] == 0.0


def test_unit_coordinates_are_carried_through_and_dims_named() -> None:
    acts = xr.DataArray(
        np.abs(np.random.default_rng(1).normal(size=(6, 3))),
        dims=("example", "unit"),
        coords={"site": ("unit", ["a", "a", "b"]), "unit_index": ("unit", [0, 1, 0])},
    )
    labels = [0, 1, 2, 0, 1, 2]
    sel = class_selectivity(acts, labels)
    assert sel.dims == ("unit",) and sel.name == "selectivity"
    assert list(sel["site"].values) == ["a", "a", "b"]
    means = class_mean(acts.transpose("unit", "example"), labels)  # any dim order
    assert means.dims == ("unit", "class") and list(means["class"].values) == [0, 1, 2]


def test_negative_activity_is_shifted_or_refused() -> None:
    acts = np.array([[-1.0, 1.0], [1.0, 2.0], [-1.0, 3.0], [1.0, 4.0]])
    labels = [0, 1, 0, 1]
    # unit 0: class means (-1, 1) -> shifted to (0, 2) -> index 1; unit 1 untouched
    np.testing.assert_allclose(class_selectivity(acts, labels).values, [1.0, (3 - 2) / (3 + 2)])
    with pytest.raises(InvalidDataError, match="Unit 0 has a negative class mean"):
        class_selectivity(acts, labels, negative="error")


@pytest.mark.parametrize(
    ("acts", "labels", "kwargs", "match"),
    [
        (np.ones((3, 2, 2)), [0, 1, 0], {}, r"2-d array with dims \('example', 'unit'\)"),
        (xr.DataArray(np.ones((3, 2)), dims=("sample", "unit")), [0, 1, 0], {}, "must have dims"),
        (np.ones((3, 2)), [0, 1], {}, "3 examples but 2 labels"),
        (np.ones((3, 2)), [0, 1, 5], {"n_classes": 3}, r"must lie in \[0, 3\).*Got 5"),
        (np.ones((3, 2)), [0, -1, 1], {}, "Got -1"),
        (np.ones((3, 2)), [0.0, 1.5, 1.0], {}, "integer class indices"),
        (np.array([[1.0, np.nan], [0, 0], [1, 1]]), [0, 1, 1], {}, "must be finite. Got nan"),
        (np.array([[1.0, np.inf], [0, 0], [1, 1]]), [0, 1, 1], {}, "must be finite. Got inf"),
        (np.ones((0, 2)), [], {}, "empty"),
        (np.ones((3, 2)), [0, 2, 2], {}, r"classes \[1\] have none"),
        (np.ones((3, 2)), [0, 0, 0], {}, "at least 2 classes"),
        (np.ones((3, 2)), [0, 1, 1], {"negative": "clip"}, "'negative' parameter"),
    ],
)
def test_bad_input_gives_a_clear_error(acts, labels, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DirectionKitError, match=match):
        class_selectivity(acts, labels, **kwargs)
