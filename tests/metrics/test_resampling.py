"""Bootstrap intervals and permutation p-values against brute force and scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from scipy import stats

from directionkit.metrics._resampling import (
    EXACT_UP_TO,
    bootstrap_interval,
    permutation_p_value,
    rank_correlation,
)


def _brute_force_p(x: np.ndarray, y: np.ndarray) -> float:
    """Every pairing of y with x, rho by scipy: the share at least as extreme."""
    observed = abs(stats.spearmanr(x, y).statistic)
    rhos = [abs(stats.spearmanr(x, y[list(p)]).statistic) for p in
            itertools.permutations(range(len(y)))]  # fmt: skip
    return float(np.mean(np.asarray(rhos) >= observed - 1e-12))


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_exact_p_equals_enumeration_with_scipy_rho(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(3):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        assert permutation_p_value(x, y) == pytest.approx(_brute_force_p(x, y))


def test_exact_p_with_ties_equals_enumeration() -> None:
    x = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 4.0])
    y = np.array([0.5, 0.2, 0.2, 0.9, 1.0, 1.0])
    assert permutation_p_value(x, y) == pytest.approx(_brute_force_p(x, y))


def test_a_perfect_order_of_six_has_the_exact_p_not_zero() -> None:
    # the t approximation gives 0 here; the exact two-sided p is 2 of 720 orderings
    assert permutation_p_value(np.arange(6), np.arange(6) ** 2) == pytest.approx(2 / 720)
    assert permutation_p_value(np.arange(6), -np.arange(6.0)) == pytest.approx(2 / 720)


def test_random_permutations_agree_with_scipy_permutation_test() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=25)
    y = 0.4 * x + rng.normal(size=25)
    ours = permutation_p_value(x, y, permutations=20_000)
    ref = stats.permutation_test(
        (x, y), lambda a, b: stats.spearmanr(a, b).statistic, permutation_type="pairings",
        n_resamples=20_000, random_state=2,
    ).pvalue  # fmt: skip
    assert ours == pytest.approx(ref, abs=0.01)


def test_rank_correlation_is_scipys_and_drops_nan_pairs() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=30), rng.normal(size=30)
    y[4] = np.nan
    keep = np.isfinite(y)
    assert rank_correlation(x, y) == pytest.approx(stats.spearmanr(x[keep], y[keep]).statistic)
    assert math.isnan(rank_correlation([1, 2], [1, 2]))
    assert math.isnan(permutation_p_value([1, 2, 3], [4, 4, 4]))


def test_bootstrap_interval_is_the_percentile_interval_of_a_hand_loop() -> None:
    values = np.random.default_rng(4).normal(size=40)
    low, high = bootstrap_interval(np.mean, values, resamples=500, seed=7)
    rng = np.random.default_rng(7)
    means = [values[rng.integers(0, 40, 40)].mean() for _ in range(500)]
    assert (low, high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert low < values.mean() < high


def test_unpaired_bootstrap_draws_each_arm_on_its_own() -> None:
    a, b = np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0])
    low, high = bootstrap_interval(lambda p, q: q.mean() - p.mean(), a, b, paired=False)
    assert 7.0 <= low < high <= 19.0
    with pytest.raises(ValueError, match="same length"):
        bootstrap_interval(lambda p, q: 0.0, a, b)


def test_an_interval_of_mostly_undefined_resamples_is_nan() -> None:
    def undefined_unless_three_ones(v: np.ndarray) -> float:
        return float(v.sum()) if v.sum() >= 3 else math.nan  # rare among resamples

    low, high = bootstrap_interval(undefined_unless_three_ones, np.array([0.0, 0.0, 0.0, 1.0]))
    assert math.isnan(low) and math.isnan(high)
    low, high = bootstrap_interval(lambda v: float(v.sum()), np.array([0.0, 0.0, 0.0, 1.0]))
    assert not math.isnan(low)


@settings(max_examples=40, deadline=None)
@given(hs.lists(hs.tuples(hs.floats(-5, 5), hs.floats(-5, 5)), min_size=3, max_size=12))
def test_permutation_p_is_a_probability_and_symmetric(pairs: list[tuple[float, float]]) -> None:
    x, y = np.array(pairs).T
    p = permutation_p_value(x, y, permutations=500)
    if math.isnan(p):
        assert math.isnan(rank_correlation(x, y))
        return
    assert 0 < p <= 1
    exact = len(pairs) <= EXACT_UP_TO  # random permutations differ between the two calls
    assert permutation_p_value(y, x, permutations=500) == pytest.approx(
        p, abs=1e-12 if exact else 0.15
    )


@settings(max_examples=30, deadline=None)
@given(hs.lists(hs.floats(-100, 100), min_size=2, max_size=30))
def test_the_interval_of_a_mean_lies_within_the_data(values: list[float]) -> None:
    low, high = bootstrap_interval(np.mean, values, resamples=200)
    assert min(values) - 1e-9 <= low <= high <= max(values) + 1e-9
