"""Chance accuracy, the margin above it, and the chance-corrected AUC, against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import InvalidDataError
from directionkit.metrics import chance_accuracy, chance_margin, near_chance


def test_chance_of_balanced_labels_is_k_over_c_and_bad_counts_are_refused() -> None:
    assert chance_accuracy([5] * 10) == pytest.approx(0.1)
    assert chance_accuracy([5] * 10, k=5) == pytest.approx(0.5)
    for bad in ([], [0, 0], [-1, 3], [[1, 2]]):
        with pytest.raises(InvalidDataError, match="chance_accuracy needs"):
            chance_accuracy(bad)


def _tail(correct: int, n: int, chance: float) -> float:
    """P(X >= correct) for X ~ Binomial(n, chance), summed exactly."""
    def log_pmf(k: int) -> float:
        return (
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(chance) + (n - k) * math.log1p(-chance)
        )  # fmt: skip

    return math.fsum(math.exp(log_pmf(k)) for k in range(correct, n + 1))


@pytest.mark.parametrize(
    ("chance", "n"), [(0.1, 100), (0.5, 40), (0.7, 100), (0.7, 10), (0.8833, 60), (0.1, 5000)]
)
def test_the_margin_is_the_binomial_tail_of_three_sigma_and_at_least_five_points(
    chance: float, n: int
) -> None:
    # brute force: the smallest count of correct examples a guesser reaches with
    # probability <= 0.00135, as an accuracy
    needed = next((c for c in range(n + 1) if _tail(c, n, chance) <= 0.00135), n + 1) / n
    assert chance_margin(chance, n) == pytest.approx(max(0.05, needed - chance), abs=1e-12)
    assert not near_chance(needed, chance, n) or needed - chance < 0.05
    assert near_chance(needed - 1 / n, chance, n)
    # on many examples the tail is three standard errors, as a normal has it
    if n >= 1000:
        assert chance_margin(chance, n) == pytest.approx(
            max(0.05, 3 * np.sqrt(chance * (1 - chance) / n)), abs=2 / n
        )


def test_a_perfect_model_on_imbalanced_labels_is_above_chance() -> None:
    # 60 of 60 right where 53 of 60 are one class: a guesser does that 0.06% of the time
    assert not near_chance(1.0, 53 / 60, 60)
    assert near_chance(1.0, 0.7, 10)  # 10 of 10 at 70% majority: 2.8% of guessers do
    assert near_chance(0.149, 0.1, 100_000) and not near_chance(0.151, 0.1, 100_000)
    # a model guessing the majority class at random rarely passes: simulated guessers
    rng = np.random.default_rng(0)
    n, chance = 200, 0.3
    guessed = rng.binomial(n, chance, size=20_000) / n
    passed = np.mean([not near_chance(a, chance, n) for a in guessed])
    assert passed < 0.005  # three standard errors: about 0.1% of pure guessers


def _curve(values: np.ndarray) -> xr.DataArray:
    fractions = np.linspace(0, 1, values.size)
    return xr.DataArray(values, dims="fraction", coords={"fraction": fractions})


def test_a_flat_curve_at_chance_is_nan_and_a_flat_curve_at_clean_is_one() -> None:
    assert float(dk.ablation_auc(_curve(np.full(5, 0.1)))) == pytest.approx(1.0)  # the paper's
    assert np.isnan(float(dk.ablation_auc(_curve(np.full(5, 0.1)), chance=0.1)))
    assert float(dk.ablation_auc(_curve(np.full(5, 0.9)), chance=0.1)) == pytest.approx(1.0)
    falling = np.array([0.9, 0.5, 0.1])  # straight down to chance: half the area
    assert float(dk.ablation_auc(_curve(falling), chance=0.1)) == pytest.approx(0.5)
