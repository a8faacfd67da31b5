"""Streamed statistics and noise curves against one-shot metrics and brute force."""

from __future__ import annotations

import numpy as np
import pytest

from directionkit.errors import DirectionKitError
from directionkit.experiments import activation_statistics, noise_curve
from directionkit.metrics import class_mean, class_selectivity, mutual_information
from directionkit.testing import NumpyMLPAdapter


@pytest.fixture
def problem() -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    net = NumpyMLPAdapter.random(n_in=5, hidden=(8, 6), n_classes=3, seed=1)
    x = np.random.default_rng(2).normal(size=(120, 5))
    return net, x, np.tile([0, 1, 2], 40)


@pytest.mark.parametrize("binning", ["equal-width", "equal-frequency"])
def test_streamed_statistics_equal_the_one_shot_metrics(problem, binning) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    stats = activation_statistics(net, (x, y), n_bins=5, binning=binning, batch_size=17)
    acts = np.concatenate(
        list(net.run(x, record=["hidden0", "hidden1"]).activations.values()), axis=1
    )
    np.testing.assert_allclose(stats["class_mean"], class_mean(acts, y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        stats["selectivity"], class_selectivity(acts, y), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        stats["mutual_info"], mutual_information(acts, y, n_bins=5, binning=binning), atol=1e-10
    )
    np.testing.assert_allclose(stats["unit_mean"], acts.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(stats["unit_std"], acts.std(0), rtol=1e-8, atol=1e-12)
    assert list(stats["site"].values) == ["hidden0"] * 8 + ["hidden1"] * 6
    assert list(stats["unit_index"].values) == [*range(8), *range(6)]


def test_noise_at_scale_zero_is_clean_and_large_noise_hurts(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, _ = problem
    y = net.predict(x)
    curve = noise_curve(net, (x, y), (x, y), scales=[0.0, 0.5, 50.0], repeats=3, seed=1)
    np.testing.assert_array_equal(curve.sel(noise_scale=0.0), 1.0)
    assert float(curve.sel(noise_scale=50.0).mean()) < 0.8
    again = noise_curve(net, (x, y), (x, y), scales=[0.0, 0.5, 50.0], repeats=3, seed=1)
    np.testing.assert_array_equal(curve, again)


def test_noise_curve_equals_brute_force(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, _ = problem
    y = net.predict(x)
    train = x[:60]
    curve = noise_curve(
        net, (x, y), (train, y[:60]), scales=[1.0], repeats=2, seed=3, batch_size=50
    )
    acts = net.run(train, record=["hidden0", "hidden1"]).activations
    sd = {n: a.std(0) for n, a in acts.items()}
    from directionkit.adapter import Interventions

    iv = Interventions.noise(sd, scales=[1.0, 1.0], seed=3)
    for row in range(2):
        hits = 0
        for b, start in enumerate(range(0, len(y), 50)):
            xb = x[start : start + 50]
            h = xb
            for i, (w, bias) in enumerate(zip(net.weights, net.biases, strict=True)):
                h = h @ w + bias
                if i < 2:
                    h = np.maximum(h, 0)
                    eps = iv.for_batch(b).standard_normal(f"hidden{i}", row, h.shape)
                    h = h + iv.noise_std[f"hidden{i}"][row] * eps
            hits += (h.argmax(1) == y[start : start + 50]).sum()
        assert curve.values[row, 0] == pytest.approx(hits / len(y))


def test_bad_noise_parameters_are_refused(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    with pytest.raises(DirectionKitError, match="'scales' parameter of noise_curve"):
        noise_curve(net, (x, y), (x, y), scales=[-1.0])
    with pytest.raises(DirectionKitError, match="'repeats' parameter"):
        noise_curve(net, (x, y), (x, y), repeats=0)
    with pytest.raises(DirectionKitError, match="'binning' parameter of activation_statistics"):
        activation_statistics(net, (x, y), binning="log")
