"""Uncertainty by resampling: bootstrap intervals and permutation p-values.

Small populations (a handful of networks, eleven layers) are where the t approximation
of a rank correlation's p-value fails (it gives p = 0 at |rho| = 1, where the exact
two-sided p for n = 6 is 2/720) and where an interval says more than a point estimate.
These functions are pure numpy and seeded, so a stored result can be recomputed to the
last digit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from directionkit.metrics._correlation import _average_ranks

__all__ = [
    "CONFIDENCE",
    "EXACT_UP_TO",
    "bootstrap_interval",
    "permutation_p_value",
    "rank_correlation",
]

#: The confidence level of every interval.
CONFIDENCE = 0.95
#: Up to this many pairs, a permutation p-value enumerates every permutation (8! = 40,320).
EXACT_UP_TO = 8
_PERMUTATIONS = 20_000
_RESAMPLES = 2_000


def _pairs(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"x and y differ in length ({a.size} and {b.size})")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _centred_ranks(values: np.ndarray) -> np.ndarray:
    return _average_ranks(values) - (values.size + 1) / 2


def rank_correlation(x: Any, y: Any) -> float:
    """Spearman's rho of the finite pairs of ``x`` and ``y`` (NaN for fewer than 3 pairs
    or a constant input).

    Examples
    --------
    >>> rank_correlation([1, 2, 3, 4], [10, 20, 40, 30])
    0.8
    >>> rank_correlation([1, 2, 3], [5, 5, 5])
    nan
    """
    a, b = _pairs(x, y)
    if a.size < 3:
        return math.nan
    ra, rb = _centred_ranks(a), _centred_ranks(b)
    denominator = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    if denominator == 0:
        return math.nan
    return float(np.clip((ra * rb).sum() / denominator, -1.0, 1.0))


def permutation_p_value(
    x: Any, y: Any, *, permutations: int = _PERMUTATIONS, seed: int = 0
) -> float:
    """Two-sided permutation p-value of Spearman's rho between ``x`` and ``y``.

    The share of pairings of ``y`` with ``x`` whose |rho| is at least the observed one:
    over every permutation when there are at most :data:`EXACT_UP_TO` finite pairs (the
    exact p), otherwise over ``permutations`` random ones, counting the observed pairing
    (``(hits + 1) / (permutations + 1)``, never 0).  Ties keep their average ranks.

    Parameters
    ----------
    x, y : array-like of float
        Paired values; pairs with a NaN are dropped.
    permutations : int, default 20000
        Random permutations for more than :data:`EXACT_UP_TO` pairs.
    seed : int, default 0
        Seed of the random permutations.

    Returns
    -------
    float
        NaN for fewer than 3 pairs or a constant input.

    Examples
    --------
    >>> round(permutation_p_value([1, 2, 3, 4, 5, 6], [2, 4, 6, 8, 10, 12]), 5)  # 2 / 6!
    0.00278
    >>> permutation_p_value([1, 2, 3], [1, 2, 3])  # 2 of 6 orderings are as extreme
    0.3333333333333333
    """
    a, b = _pairs(x, y)
    n = int(a.size)
    observed = rank_correlation(a, b)
    if math.isnan(observed):
        return math.nan
    ra, rb = _centred_ranks(a), _centred_ranks(b)
    scale = math.sqrt(float((ra**2).sum() * (rb**2).sum()))
    if n <= EXACT_UP_TO:
        shuffled = rb[np.array(list(itertools.permutations(range(n))), dtype=np.int64)]
        exact = True
    else:
        rng = np.random.default_rng(seed)
        shuffled = rng.permuted(np.tile(rb, (permutations, 1)), axis=1)
        exact = False
    rhos = shuffled @ ra / scale
    hits = int(np.sum(np.abs(rhos) >= abs(observed) - 1e-12))
    return hits / len(rhos) if exact else (hits + 1) / (len(rhos) + 1)


def bootstrap_interval(
    statistic: Callable[..., float],
    *samples: Sequence[Any] | np.ndarray,
    paired: bool = True,
    resamples: int = _RESAMPLES,
    level: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*samples)``.

    Each resample draws the items of each sample with replacement: the same indices for
    every sample when ``paired`` (the samples are columns of one table, e.g. x and y of a
    correlation), independent ones otherwise (e.g. two arms of a comparison).  The
    interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the
    statistic over resamples, ignoring resamples where it is undefined (NaN); it is
    ``(nan, nan)`` when more than half are.

    Parameters
    ----------
    statistic : callable
        ``statistic(*resampled) -> float``; each argument is a numpy array.
    *samples : array-like
        Items along the first axis.
    paired : bool, default True
        Resample all samples with the same indices (they must be equally long).
    resamples : int, default 2000
    level : float, default 0.95
    seed : int, default 0

    Returns
    -------
    tuple of float
        ``(low, high)``.

    Examples
    --------
    >>> low, high = bootstrap_interval(np.mean, np.arange(100.0))
    >>> 43 < low < 49.5 < high < 56
    True
    >>> bootstrap_interval(lambda a, b: a.mean() - b.mean(), [1.0, 1.0], [0.0, 0.0],
    ...                    paired=False)
    (1.0, 1.0)
    """
    arrays = [np.asarray(s) for s in samples]
    if not arrays or any(a.shape[0] == 0 for a in arrays):
        return math.nan, math.nan
    if paired and len({a.shape[0] for a in arrays}) != 1:
        raise ValueError("paired samples must have the same length")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):
        if paired:
            index = rng.integers(0, arrays[0].shape[0], arrays[0].shape[0])
            drawn = [a[index] for a in arrays]
        else:
            drawn = [a[rng.integers(0, a.shape[0], a.shape[0])] for a in arrays]
        values[i] = statistic(*drawn)
    finite = values[np.isfinite(values)]
    if finite.size * 2 < resamples:
        return math.nan, math.nan
    tail = (1.0 - level) / 2
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)
