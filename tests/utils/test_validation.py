"""Label checks: labels stored as floats are class indices when whole, refused otherwise."""

from __future__ import annotations

import numpy as np
import pytest

import directionkit as dk
from directionkit._utils.validation import check_labels, integral_labels
from directionkit.errors import InvalidDataError
from directionkit.testing import NumpyMLPAdapter


def test_whole_floats_become_int64_and_anything_else_is_named() -> None:
    got = integral_labels(np.array([2.0, 0.0, 1.0], np.float32), "f")
    assert got.dtype == np.int64 and got.tolist() == [2, 0, 1]
    for bad, shown in (([0.0, 1.5], "Got 1.5 at example 1"), ([np.nan, 1.0], "Got nan"),
                       ([1.0, np.inf], "Got inf at example 1")):  # fmt: skip
        with pytest.raises(InvalidDataError, match=shown):
            integral_labels(np.array(bad), "f")
    with pytest.raises(InvalidDataError, match="dtype <U1"):
        integral_labels(np.array(["a"]), "f")
    assert check_labels(np.array([1.0, 0.0]), 2, "f") == (pytest.approx([1, 0]), 2)


def _model_and_data() -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(6, 8)), rng.normal(size=(8, 3))]
    adapter = NumpyMLPAdapter(weights, [np.zeros(8), np.zeros(3)])
    x = rng.normal(size=(40, 6)).astype(np.float32)
    return adapter, x, rng.integers(0, 3, 40)


@pytest.mark.parametrize("batched", [False, True])
def test_analyze_takes_float_labels_as_the_integers_they_hold(batched: bool) -> None:
    adapter, x, y = _model_and_data()

    def data(labels: np.ndarray) -> object:
        if batched:
            return [(x[:25], labels[:25]), (x[25:], labels[25:])]
        return (x, labels)

    kwargs = {"metrics": ["statistics", "ablation"], "orderings": 2, "fractions": 3,
              "progress": False}  # fmt: skip
    as_float = dk.analyze(adapter, data(y.astype(np.float32)), **kwargs)
    as_int = dk.analyze(adapter, data(y), **kwargs)
    assert float(as_float["accuracy"]) == float(as_int["accuracy"])
    np.testing.assert_array_equal(as_float["ablation_accuracy"], as_int["ablation_accuracy"])
    np.testing.assert_array_equal(as_float["class_mean"], as_int["class_mean"])
    bad = y.astype(np.float64)
    bad[7] = 0.5
    with pytest.raises(InvalidDataError, match=r"'labels' of analyze .* Got 0\.5 at example 7"):
        dk.analyze(adapter, data(bad), **kwargs)
