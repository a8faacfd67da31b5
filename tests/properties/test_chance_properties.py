"""Properties of chance accuracy and the chance-corrected AUC (hypothesis), against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import directionkit as dk
from directionkit.metrics import chance_accuracy


def _best_constant_accuracy(labels: np.ndarray, n_classes: int, k: int) -> float:
    """Brute force: the best accuracy of any constant top-k prediction (a set of k classes)."""
    return max(
        float(np.isin(labels, guess).mean())
        for guess in itertools.combinations(range(n_classes), k)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), min_size=1, max_size=60),
    st.integers(1, 3),
)
def test_chance_is_the_best_constant_predictions_accuracy(labels: list[int], k: int) -> None:
    y = np.asarray(labels)
    n_classes = 6
    counts = np.bincount(y, minlength=n_classes)
    assert chance_accuracy(counts, k) == pytest.approx(_best_constant_accuracy(y, n_classes, k))


def _curve(values: np.ndarray) -> xr.DataArray:
    fractions = np.linspace(0, 1, values.size)
    return xr.DataArray(values, dims="fraction", coords={"fraction": fractions})


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12),
    st.floats(0.0, 0.9),
)
def test_the_corrected_auc_maps_clean_to_one_and_chance_to_zero(
    values: list[float], chance: float
) -> None:
    curve = np.asarray(values)
    clean = curve[0]
    assume(clean > 1e-6)  # the paper's AUC (so ours) is undefined at 0 (and underflows near it)
    got = float(dk.ablation_auc(_curve(curve), chance=chance))
    if clean <= chance:
        assert np.isnan(got)  # no room above chance: nothing to normalise by
        return
    # brute force: the trapezoid rule over the affinely mapped accuracies
    mapped = (curve - chance) / (clean - chance)
    f = np.linspace(0, 1, curve.size)
    want = float(np.sum((mapped[1:] + mapped[:-1]) / 2 * np.diff(f)))
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    # and it is the paper's AUC moved by the same affine map
    paper = float(dk.ablation_auc(_curve(curve)))
    assert got == pytest.approx((paper * clean - chance) / (clean - chance), rel=1e-9, abs=1e-9)
