"""Properties of the baseline measures: what ReLU's positive homogeneity leaves unchanged,
and the flatness' end point, on random networks and rescalings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directionkit.experiments import baseline_measures
from directionkit.testing import NumpyMLPAdapter

INVARIANT = ("parameter_count", "log_frobenius_product", "log_spectral_product",
             "log_path_norm", "output_margin", "spectral_margin")  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    scales=st.lists(st.floats(0.1, 10.0), min_size=3, max_size=3),
)
def test_rescaling_a_layer_and_unscaling_the_next_changes_no_invariant_measure(
    seed: int, hidden: list[int], scales: list[float]
) -> None:
    net = NumpyMLPAdapter.random(n_in=3, hidden=tuple(hidden), n_classes=3, seed=seed)
    X = np.random.default_rng(seed + 1).normal(size=(40, 3))
    y = np.random.default_rng(seed + 2).integers(0, 3, 40)
    weights, biases = list(net.weights), list(net.biases)
    for layer, c in zip(range(len(hidden)), scales, strict=False):
        weights[layer] = weights[layer] * c  # layer `layer` times c ...
        biases[layer] = biases[layer] * c
        weights[layer + 1] = weights[layer + 1] / c  # ... and the next over c: same function
    scaled = NumpyMLPAdapter(weights, biases)
    a = baseline_measures(net, (X, y), weightwatcher=False)
    b = baseline_measures(scaled, (X, y), weightwatcher=False)
    for name in INVARIANT:
        assert float(b[name]) == pytest.approx(float(a[name]), rel=1e-7, abs=1e-9), name


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), width=st.integers(2, 8))
def test_flatness_is_positive_and_its_sigma_keeps_the_drop_allowed(seed: int, width: int) -> None:
    net = NumpyMLPAdapter.random(n_in=3, hidden=(width,), n_classes=3, seed=seed)
    X = np.random.default_rng(seed).normal(size=(60, 3))
    measures = baseline_measures(net, (X, net.predict(X)), seed=seed, weightwatcher=False)
    flatness = float(measures["pacbayes_mag_flatness"])
    assert flatness > 0 and not np.isnan(flatness)
    assert float(measures["output_margin"]) >= 0  # labels are the predictions
