"""Streamed activity statistics over a data set, and the noise-robustness curve."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from directionkit._validation import check_choice, check_int, parameter_error
from directionkit.adapter import Interventions, ModelAdapter
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import check_labels_fit, evaluate, unit_coords
from directionkit.metrics import ClassConditionalSums, JointHistogram, UnitMoments, UnitRange
from directionkit.metrics._information import bin_edges


def _recorded(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str]
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Per batch: the sites' activity side by side ``(B, units)``, labels, n_classes."""
    for x, y in batches:
        out = adapter.run(x, record=list(names))
        check_labels_fit(y, out.logits.shape[-1], batches.func)
        yield np.concatenate([out.activations[n] for n in names], axis=1), y, out.logits.shape[-1]


def unit_moments(adapter: ModelAdapter, batches: Batches, names: Sequence[str]) -> UnitMoments:
    """Mean and variance of every unit of ``names`` over ``batches``, streamed."""
    moments = UnitMoments(sum(adapter.sites[n].n_units for n in names))
    for acts, _, _ in _recorded(adapter, batches, names):
        moments.update(acts)
    return moments


def _split(
    values: np.ndarray, adapter: ModelAdapter, names: Sequence[str]
) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for name in names:
        out[name] = values[start : start + adapter.sites[name].n_units]
        start += adapter.sites[name].n_units
    return out


def unit_means(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per site, each unit's mean activity over ``batches`` (the mean-ablation values)."""
    return _split(np.asarray(unit_moments(adapter, batches, names).mean), adapter, names)


def activation_statistics(
    adapter: ModelAdapter,
    data: Any,
    *,
    n_bins: int = 16,
    binning: Literal["equal-width", "equal-frequency"] = "equal-width",
    batch_size: int | None = None,
) -> xr.Dataset:
    """Class means, selectivity, mutual information and unit mean/sd, streamed.

    Parameters
    ----------
    adapter : ModelAdapter
    data : (X, y) tuple or iterable of (x, y) batches
        The paper measures selectivity on the test set.
    n_bins, binning :
        Discretisation of activity for the mutual information (see
        :func:`directionkit.mutual_information`).  ``"equal-width"`` streams in two
        passes (range, then histogram) and never holds the raw activity;
        ``"equal-frequency"`` needs exact order statistics, so it holds the spatially
        reduced activity ``(examples, units)`` in memory.
    batch_size : int, optional

    Returns
    -------
    xarray.Dataset
        ``class_mean (unit, class)``, ``selectivity``, ``mutual_info``, ``unit_mean``,
        ``unit_std`` (all ``(unit,)``), with unit coordinates ``site`` and ``unit_index``.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> adapter = NumpyMLPAdapter.random(n_in=4, hidden=(5,), n_classes=3, seed=0)
    >>> X, y = np.random.default_rng(0).normal(size=(60, 4)), np.tile([0, 1, 2], 20)
    >>> stats = activation_statistics(adapter, (X, y), n_bins=4)
    >>> sorted(stats.data_vars)
    ['class_mean', 'mutual_info', 'selectivity', 'unit_mean', 'unit_std']
    """
    func = "activation_statistics"
    n_bins = check_int(n_bins, "n_bins", func, minimum=2)
    check_choice(binning, "binning", func, ("equal-width", "equal-frequency"))
    batches = Batches(data, batch_size, func)
    names = list(adapter.sites)
    n_units = sum(s.n_units for s in adapter.sites.values())
    moments, span = UnitMoments(n_units), UnitRange(n_units)
    sums: ClassConditionalSums | None = None
    held: list[tuple[np.ndarray, np.ndarray]] = []
    for acts, y, n_classes in _recorded(adapter, batches, names):
        sums = sums or ClassConditionalSums(n_units, n_classes)
        sums.update(acts, y)
        moments.update(acts)
        span.update(acts)
        if binning == "equal-frequency":
            held.append((acts, y))
    assert sums is not None
    if binning == "equal-frequency":
        edges = bin_edges(np.concatenate([a for a, _ in held]), n_bins=n_bins, binning=binning)
    else:
        edges = span.equal_width_edges(n_bins)
    histogram = JointHistogram(edges, sums.counts.size)
    second_pass = held or ((a, y) for a, y, _ in _recorded(adapter, batches, names))
    for acts, y in second_pass:
        histogram.update(acts, y)
    coords = unit_coords(adapter.sites)
    return xr.Dataset(
        {
            "class_mean": (("unit", "class"), sums.class_mean()),
            "selectivity": ("unit", sums.selectivity()),
            "mutual_info": ("unit", histogram.mutual_information()),
            "unit_mean": ("unit", np.asarray(moments.mean)),
            "unit_std": ("unit", np.asarray(moments.std())),
        },
        coords={**coords, "class": np.arange(sums.counts.size)},
        attrs={"n_bins": n_bins, "binning": binning},
    )


def noise_curve(
    adapter: ModelAdapter,
    data: Any,
    train_data: Any,
    scales: Sequence[float] | np.ndarray = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0),
    repeats: int = 10,
    seed: int = 0,
    *,
    batch_size: int | None = None,
) -> xr.DataArray:
    """Accuracy with N(0, (s * sd_unit)^2) noise added to every unit of every site.

    Parameters
    ----------
    adapter : ModelAdapter
    data : (X, y) tuple or iterable of (x, y) batches
        The data the accuracy is measured on.
    train_data : (X, y) tuple or iterable of (x, y) batches
        The data each unit's standard deviation ``sd_unit`` is measured on (the
        paper: the training set).  For conv sites it is the sd of the spatially
        averaged map; the noise itself is drawn independently for every element.
    scales : sequence of float >= 0
        The noise scales ``s``.
    repeats : int
        Independent noise draws per scale.
    seed : int
    batch_size : int, optional

    Returns
    -------
    xarray.DataArray
        ``noise_accuracy (repeat, noise_scale)``.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> adapter = NumpyMLPAdapter.random(n_in=4, hidden=(5,), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(50, 4)); y = adapter.predict(X)
    >>> curve = noise_curve(adapter, (X, y), (X, y), scales=[0.0, 100.0], repeats=2)
    >>> curve.sel(noise_scale=0.0).values.tolist()
    [1.0, 1.0]
    """
    func = "noise_curve"
    repeats = check_int(repeats, "repeats", func, minimum=1)
    seed = check_int(seed, "seed", func, minimum=0)
    grid = np.asarray(scales, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise parameter_error("scales", func, "a non-empty 1-d sequence of floats >= 0", scales)
    batches = Batches(data, batch_size, func)
    names = list(adapter.sites)
    std = _split(
        np.asarray(unit_moments(adapter, Batches(train_data, batch_size, func), names).std()),
        adapter,
        names,
    )
    iv = Interventions.noise(std, scales=np.tile(grid, repeats), seed=seed)
    accuracy = evaluate(adapter, batches, iv).accuracy.reshape(repeats, grid.size)
    return xr.DataArray(
        accuracy,
        dims=("repeat", "noise_scale"),
        coords={"repeat": np.arange(repeats), "noise_scale": grid},
        name="noise_accuracy",
        attrs={"seed": seed},
    )
