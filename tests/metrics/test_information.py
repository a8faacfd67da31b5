"""Mutual information against scikit-learn on an independently computed discretisation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from directionkit import mutual_information
from directionkit.errors import DirectionKitError
from directionkit.metrics import bin_edges


def equal_width_bins(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Bins of one unit, written independently: floor((x - min) / width), top edge inclusive."""
    lo, hi = x.min(), x.max()
    if hi == lo:
        return np.zeros(x.size, int)
    edges = [lo + k * (hi - lo) / n_bins for k in range(1, n_bins)]
    return np.array([sum(v >= e for e in edges) for v in x])


def equal_frequency_bins(x: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin = how many of the order statistics sorted[ceil(k n / B)] are <= x."""
    ordered = sorted(x)
    n = len(x)
    cuts = [ordered[min(math.ceil(k * n / n_bins), n - 1)] for k in range(1, n_bins)]
    return np.array([sum(v >= c for c in cuts) for v in x])


@pytest.mark.parametrize("binning", ["equal-width", "equal-frequency"])
@pytest.mark.parametrize("n_bins", [2, 5, 16])
def test_mutual_information_equals_sklearn_on_the_same_bins(binning, n_bins) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(n_bins)
    labels = rng.integers(0, 4, 300)
    acts = np.column_stack(
        [
            labels + rng.normal(0, 0.5, 300),  # informative
            rng.normal(size=300),  # not
            np.maximum(rng.normal(size=300), 0),  # ReLU-like, many ties at 0
            np.full(300, 2.0),  # constant
        ]
    )
    binner = equal_width_bins if binning == "equal-width" else equal_frequency_bins
    expected = [mutual_info_score(labels, binner(acts[:, u], n_bins)) / np.log(2) for u in range(4)]
    got = mutual_information(acts, labels, n_bins=n_bins, binning=binning)
    np.testing.assert_allclose(got.values, expected, atol=1e-12)
    assert got.values[3] == 0.0 and got.name == "mutual_info"
    assert got.values[0] > 0.5 > got.values[1]


def test_bin_edges_are_documented_order_statistics() -> None:
    x = np.arange(10.0)[:, None]
    np.testing.assert_array_equal(bin_edges(x, 5, "equal-frequency"), [[2.0, 4.0, 6.0, 8.0]])
    np.testing.assert_allclose(bin_edges(x, 3, "equal-width"), [[3.0, 6.0]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_bins": 1}, "'n_bins' parameter of mutual_information must be an int >= 2. Got 1"),
        ({"binning": "log"}, "'binning' parameter of mutual_information"),
    ],
)
def test_bad_parameters(kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DirectionKitError, match=match):
        mutual_information(np.ones((4, 2)), [0, 1, 0, 1], **kwargs)


def test_bad_data() -> None:
    with pytest.raises(DirectionKitError, match="finite"):
        mutual_information(np.array([[np.nan], [1.0]]), [0, 1])
    with pytest.raises(DirectionKitError, match="2 examples but 3 labels"):
        mutual_information(np.ones((2, 1)), [0, 1, 1])
