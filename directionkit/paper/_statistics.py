"""The statistics the paper's experiments report, each with its 95% interval.

Every function returns a flat mapping ``{key: estimate, key_ci: [low, high], key_n: n}``
(and ``key_p`` where a p-value belongs), the form :class:`~._rules.Claim` reads.  What
each interval resamples is stated beside it, and stored with the result:

- :func:`correlation`: pairs (networks, checkpoints or layers) with replacement; p by
  permutation (exact up to 8 pairs);
- :func:`difference`: networks within each arm (or pairs, when paired);
- :func:`mean`: the values;
- :func:`within_layer` and :func:`depth_trend`: networks, then units within each layer
  of each drawn network (a two-stage bootstrap), so that units of one layer of one
  network are never treated as independent of each other across networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from directionkit.metrics._resampling import (
    bootstrap_interval,
    permutation_p_value,
    rank_correlation,
)

__all__ = ["correlation", "depth_trend", "difference", "mean", "within_layer"]

Stats = dict[str, Any]
_TWO_STAGE_RESAMPLES = 1000


def _floats(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _pack(key: str, value: float, interval: tuple[float, float], n: int) -> Stats:
    return {key: float(value), f"{key}_ci": [float(interval[0]), float(interval[1])], f"{key}_n": n}


def correlation(key: str, x: Any, y: Any, *, seed: int = 0) -> Stats:
    """Spearman's rho of ``x`` and ``y``, its bootstrap interval over pairs, and its
    permutation p-value.

    Examples
    --------
    >>> s = correlation("rho", [1, 2, 3, 4, 5, 6], [1, 3, 2, 5, 4, 6])
    >>> round(s["rho"], 3), s["rho_n"], s["rho_p"] < 0.05
    (0.886, 6, True)
    """
    a, b = _floats(x), _floats(y)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    rho = rank_correlation(a, b)
    interval = (
        bootstrap_interval(rank_correlation, a, b, seed=seed)
        if a.size >= 3
        else (math.nan, math.nan)
    )
    out = _pack(key, rho, interval, int(a.size))
    out[f"{key}_p"] = permutation_p_value(a, b, seed=seed)
    return out


def _difference_of_means(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.mean() - b.mean())


def difference(key: str, a: Any, b: Any, *, paired: bool = False, seed: int = 0) -> Stats:
    """``mean(a) - mean(b)`` with its bootstrap interval (over networks of each arm, or
    over pairs when ``paired``); ``key_n`` is the smaller arm.

    Examples
    --------
    >>> s = difference("d", [0.9, 0.8, 0.85], [0.5, 0.6, 0.55])
    >>> round(s["d"], 3), s["d_n"], s["d_ci"][0] > 0
    (0.3, 3, True)
    """
    x, y = _floats(a), _floats(b)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if paired:
        if x.size != y.size:
            raise ValueError("paired arms must be equally long")
        diffs = x - y
        return mean(key, diffs, seed=seed)
    if not x.size or not y.size:
        return _pack(key, math.nan, (math.nan, math.nan), 0)
    interval = bootstrap_interval(_difference_of_means, x, y, paired=False, seed=seed)
    return _pack(key, _difference_of_means(x, y), interval, int(min(x.size, y.size)))


def mean(key: str, values: Any, *, seed: int = 0) -> Stats:
    """The mean of ``values`` with its bootstrap interval.

    Examples
    --------
    >>> s = mean("m", [1.0, 2.0, 3.0])
    >>> s["m"], s["m_n"]
    (2.0, 3)
    """
    v = _floats(values)
    v = v[np.isfinite(v)]
    if not v.size:
        return _pack(key, math.nan, (math.nan, math.nan), 0)
    return _pack(key, float(v.mean()), bootstrap_interval(np.mean, v, seed=seed), int(v.size))


def _percentiles(draws: np.ndarray) -> tuple[float, float]:
    """The 95% percentile interval of bootstrap draws; NaN when over half are undefined."""
    ok = draws[np.isfinite(draws)]
    if ok.size * 2 < draws.size:
        return math.nan, math.nan
    return float(np.quantile(ok, 0.025)), float(np.quantile(ok, 0.975))


def _groups(
    network: np.ndarray, layer: np.ndarray, keep: np.ndarray
) -> tuple[dict[Any, list[tuple[int, np.ndarray]]], int]:
    """``(position of the layer among all layers, indices of its kept units)`` for each
    layer of each network that has kept units, by network; and how many layers there are.
    A layer with no kept unit (all dead) is absent, and the others keep their position."""
    positions = {value: i for i, value in enumerate(sorted(set(layer.tolist())))}
    out: dict[Any, list[tuple[int, np.ndarray]]] = {}
    for net in dict.fromkeys(network.tolist()):
        layers = []
        for lay in sorted(set(layer[network == net].tolist())):
            index = np.flatnonzero((network == net) & (layer == lay) & keep)
            if index.size:
                layers.append((positions[lay], index))
        out[net] = layers
    return out, len(positions)


def within_layer(
    key: str,
    x: Any,
    y: Any,
    network: Sequence[Any],
    layer: Sequence[int],
    *,
    resamples: int = _TWO_STAGE_RESAMPLES,
    seed: int = 0,
) -> Stats:
    """The mean of Spearman's rho of ``x`` and ``y`` within each layer of each network.

    Layers with fewer than 3 usable units (or a constant measure) are left out.  The
    interval is a two-stage bootstrap: networks with replacement, then units with
    replacement within each layer of each drawn network.  Also stored:
    ``key_by_layer`` (the mean rho of each layer over networks) and ``key_layers`` (how
    many layer-network pairs entered the mean).  ``key_n`` is the number of networks.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=300)
    >>> net, lay = np.repeat([0, 1, 2], 100), np.tile(np.repeat([0, 1], 50), 3)
    >>> s = within_layer("r", x, x + 0.1 * rng.normal(size=300), net, lay, resamples=200)
    >>> s["r"] > 0.9, s["r_n"], s["r_layers"]
    (True, 3, 6)
    """
    a, b = _floats(x), _floats(y)
    net, lay = np.asarray(network), np.asarray(layer)
    groups, depth = _groups(net, lay, np.isfinite(a) & np.isfinite(b))

    def rho_of(index: np.ndarray) -> float:
        return rank_correlation(a[index], b[index]) if index.size >= 3 else math.nan

    point: dict[tuple[Any, int], float] = {}
    for n_key, layers in groups.items():
        for i, index in layers:
            point[(n_key, i)] = rho_of(index)
    finite = [v for v in point.values() if math.isfinite(v)]
    estimate = float(np.mean(finite)) if finite else math.nan
    rng = np.random.default_rng(seed)
    names = list(groups)
    draws = np.empty(resamples)
    for r in range(resamples):
        values = []
        for pick in rng.integers(0, len(names), len(names)):
            for _, index in groups[names[pick]]:
                drawn = index[rng.integers(0, index.size, index.size)]
                values.append(rho_of(drawn))
        values_a = np.asarray(values)
        values_a = values_a[np.isfinite(values_a)]
        draws[r] = values_a.mean() if values_a.size else math.nan
    interval = _percentiles(draws)
    out = _pack(key, estimate, interval, len(names))
    by_layer = []
    for i in range(depth):
        vals = [point[(n, i)] for n in names if (n, i) in point and math.isfinite(point[(n, i)])]
        by_layer.append(float(np.mean(vals)) if vals else math.nan)
    out[f"{key}_by_layer"] = by_layer
    out[f"{key}_layers"] = len(finite)
    return out


def depth_trend(
    key: str,
    values: Any,
    network: Sequence[Any],
    layer: Sequence[int],
    *,
    resamples: int = _TWO_STAGE_RESAMPLES,
    seed: int = 0,
) -> Stats:
    """Spearman's rho of layer depth and the layer's mean of ``values`` (the mean over the
    units of each network's layer, then over networks).

    The interval is the two-stage bootstrap of :func:`within_layer`; the p-value permutes
    the layer means over depths.  ``key_means`` holds the layer means; ``key_n`` the
    number of networks.

    Examples
    --------
    >>> net, lay = np.repeat([0, 1, 2], 40), np.tile(np.repeat([0, 1, 2, 3], 10), 3)
    >>> s = depth_trend("d", lay + np.random.default_rng(0).normal(size=120), net, lay,
    ...                 resamples=200)
    >>> s["d"], s["d_n"], len(s["d_means"])
    (1.0, 3, 4)
    """
    v = _floats(values)
    net, lay = np.asarray(network), np.asarray(layer)
    groups, depth = _groups(net, lay, np.isfinite(v))
    names = list(groups)

    def trend(per_network: list[list[tuple[int, np.ndarray]]]) -> tuple[float, list[float]]:
        sums, counts = np.zeros(depth), np.zeros(depth)
        for layers in per_network:
            for i, index in layers:
                sums[i] += v[index].mean()
                counts[i] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / counts
        return rank_correlation(np.arange(depth), means), means.tolist()

    estimate, means = trend([groups[n] for n in names])
    rng = np.random.default_rng(seed)
    draws = np.empty(resamples)
    for r in range(resamples):
        drawn = [
            [(i, idx[rng.integers(0, idx.size, idx.size)]) for i, idx in groups[names[pick]]]
            for pick in rng.integers(0, len(names), len(names))
        ]
        draws[r] = trend(drawn)[0]
    interval = _percentiles(draws)
    out = _pack(key, estimate, interval, len(names))
    out[f"{key}_p"] = permutation_p_value(np.arange(depth), means, seed=seed)
    out[f"{key}_means"] = [float(m) for m in means]
    return out
