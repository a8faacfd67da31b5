"""Streamed activity statistics over a data set, and the noise-robustness curve."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.adapter import Interventions, ModelAdapter, SupportsElementRecording
from directionkit.errors import DirectionKitWarning, InvalidDataError, UnsupportedModelError
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import (
    check_labels_fit,
    evaluate,
    find_sites,
    top_k,
    unit_coords,
)
from directionkit.experiments._progress import ProgressCallback, Tracker
from directionkit.metrics import ClassConditionalSums, JointHistogram, UnitMoments, UnitRange
from directionkit.metrics._binning import bin_edges
from directionkit.metrics._selectivity import selectivity_from_means


def _recorded(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str], tracker: Tracker | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Per batch: the sites' activity side by side ``(B, units)``, labels, n_classes."""
    for x, y in batches:
        out = adapter.run(x, record=list(names))
        check_labels_fit(y, out.logits.shape[-1], batches.func)
        if tracker is not None:
            tracker.advance(y.shape[0])
        yield np.concatenate([out.activations[n] for n in names], axis=1), y, out.logits.shape[-1]


def unit_moments(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str], tracker: Tracker | None = None
) -> UnitMoments:
    """Mean and variance of every unit of ``names`` over ``batches``, streamed."""
    moments = UnitMoments(sum(adapter.sites[n].n_units for n in names))
    for acts, _, _ in _recorded(adapter, batches, names, tracker):
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
    adapter: ModelAdapter, batches: Batches, names: Sequence[str], tracker: Tracker | None = None
) -> dict[str, np.ndarray]:
    """Per site, each unit's mean activity over ``batches`` (the mean-ablation values)."""
    moments = unit_moments(adapter, batches, names, tracker)
    return _split(np.asarray(moments.mean), adapter, names)


def _elements(adapter: ModelAdapter, x: Any, names: Sequence[str]) -> Mapping[str, np.ndarray]:
    """One batch's unreduced activity ``(B, *site.shape)`` per site."""
    if isinstance(adapter, SupportsElementRecording):
        return adapter.record_elements(x, list(names))
    for name in names:
        site = adapter.sites[name]
        if site.kind == "conv" or (site.shape is not None and len(site.shape) > 1):
            raise UnsupportedModelError(
                f"{type(adapter).__name__} cannot record site {name!r} element by element (it "
                "has no record_elements method), which per-element means and the sd over a "
                "map's elements need. Use ablate_to='channel-mean' and "
                "noise_sd='spatial-mean' with this adapter, or give it record_elements()."
            )
    return adapter.run(x, record=list(names)).activations  # dense: elements are the units


def element_statistics(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str], tracker: Tracker | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per site: the mean of every element, and each unit's sd over all its elements.

    Streams over ``batches`` (the training data, for the paper's definitions).

    Returns
    -------
    element_mean : dict of str to ndarray of shape ``site.shape`` (e.g. ``(C, H, W)``)
        Each element's mean over the examples: the paper's A.1 mean-ablation values
        ("means were calculated independently for each element of the feature map").
    map_std : dict of str to ndarray of shape (n_units,)
        Each unit's population sd over every element of its map and every example (for a
        dense unit: its sd over the examples): the noise scale ``sd_unit``.

    Examples
    --------
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(2,), n_classes=2, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(10, 3)); y = np.zeros(10, int)
    >>> mean, std = element_statistics(net, Batches((X, y)), ["hidden0"])
    >>> mean["hidden0"].shape, std["hidden0"].shape
    ((2,), (2,))
    """
    moments: dict[str, UnitMoments] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for x, y in batches:
        acts = _elements(adapter, x, names)
        if tracker is not None:
            tracker.advance(np.shape(y)[0])
        for name in names:
            a = np.asarray(acts[name], np.float64)
            shapes.setdefault(name, a.shape[1:])
            if a.shape[1:] != shapes[name]:
                raise InvalidDataError(
                    f"Site {name!r} has activations of shape {a.shape[1:]} in one batch and "
                    f"{shapes[name]} in another; per-element statistics need one input size."
                )
            if name not in moments:
                moments[name] = UnitMoments(int(np.prod(shapes[name])))
            moments[name].update(a.reshape(a.shape[0], -1))
    if not moments or any(m.count == 0 for m in moments.values()):
        raise InvalidDataError(f"The data of {batches.func} hold no examples.")
    element_mean, map_std = {}, {}
    for name in names:
        site, shape, mom = adapter.sites[name], shapes[name], moments[name]
        mean = np.asarray(mom.mean, np.float64).reshape(shape)
        m2 = np.asarray(mom.m2, np.float64).reshape(shape)
        axis = site.unit_axis_in(len(shape))
        mean_u = np.moveaxis(mean, axis, 0).reshape(site.n_units, -1)
        m2_u = np.moveaxis(m2, axis, 0).reshape(site.n_units, -1)
        centre = mean_u.mean(axis=1, keepdims=True)  # every element has the same count
        total = (m2_u + mom.count * (mean_u - centre) ** 2).sum(axis=1)
        element_mean[name] = mean
        map_std[name] = np.sqrt(total / (mom.count * mean_u.shape[1]))
    return element_mean, map_std


def activation_statistics(
    adapter: ModelAdapter,
    data: Any,
    *,
    n_bins: int = 16,
    binning: Literal["equal-width", "equal-frequency"] = "equal-width",
    batch_size: int | None = None,
    classes: Literal["present", "all"] = "present",
    progress: ProgressCallback | None = None,
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
    classes : {"present", "all"}
        The classes of class means and selectivity: those the data hold examples of
        (``"present"``, the default: a class without one gets NaN class means, is left
        out of the selectivity index, and a warning names it), or every class of the
        model's output (``"all"``: a class without an example is an error).  The mutual
        information is over the classes present either way (an absent class adds
        nothing to it).
    progress : callable, optional
        Called as ``progress(done, total)`` as the work advances (example-rows; see
        :mod:`directionkit.experiments._progress`), e.g. to drive a progress bar.

    Returns
    -------
    xarray.Dataset
        ``class_mean (unit, class)``, ``selectivity``, ``mutual_info``, ``unit_mean``,
        ``unit_std`` (all ``(unit,)``), with unit coordinates ``site`` and ``unit_index``;
        ``attrs["n_classes"]`` (the model's), ``attrs["classes_present"]`` (how many the
        data hold) and ``attrs["classes_missing"]`` (which are absent).

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
    check_choice(classes, "classes", func, ("present", "all"))
    batches = Batches(data, batch_size, func)
    find_sites(adapter, batches)
    tracker = Tracker(progress)
    tracker.plan(batches.n_examples, passes=1 if binning == "equal-frequency" else 2)
    names = list(adapter.sites)
    n_units = sum(s.n_units for s in adapter.sites.values())
    moments, span = UnitMoments(n_units), UnitRange(n_units)
    sums: ClassConditionalSums | None = None
    held: list[tuple[np.ndarray, np.ndarray]] = []
    for acts, y, n_classes in _recorded(adapter, batches, names, tracker):
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
    second_pass = held or ((a, y) for a, y, _ in _recorded(adapter, batches, names, tracker))
    for acts, y in second_pass:
        histogram.update(acts, y)
    coords = unit_coords(adapter.sites)
    missing = np.flatnonzero(sums.counts == 0)
    means = sums.class_mean(classes)  # "all" refuses a missing class
    attrs: dict[str, Any] = {
        "n_bins": n_bins, "binning": binning, "n_classes": int(sums.counts.size),
        "classes_present": int(sums.counts.size - missing.size),
        "classes_missing": [int(c) for c in missing],
    }  # fmt: skip
    if missing.size:
        listed = ", ".join(str(int(c)) for c in missing[:20]) + (", ..." if missing.size > 20
                                                                  else "")  # fmt: skip
        note = (
            f"the data hold no example of {missing.size} of the model's {sums.counts.size} "
            f"classes ({listed}): class means are NaN for them, and selectivity is over the "
            f"{sums.counts.size - missing.size} classes present"
        )
        attrs["classes_note"] = note
        warnings.warn(f"directionkit: {note}.", DirectionKitWarning, stacklevel=3)
    if sums.counts.size - missing.size >= 2:
        selectivity = selectivity_from_means(means)
    else:  # one class: the index is undefined, not 0
        selectivity = np.full(means.shape[0], np.nan)
        attrs["selectivity_note"] = "selectivity is undefined with fewer than 2 classes present"
    return xr.Dataset(
        {
            "class_mean": (("unit", "class"), means),
            "selectivity": ("unit", selectivity),
            "mutual_info": ("unit", histogram.mutual_information()),
            "unit_mean": ("unit", np.asarray(moments.mean)),
            "unit_std": ("unit", np.asarray(moments.std())),
        },
        coords={**coords, "class": np.arange(sums.counts.size)},
        attrs=attrs,
    )


def check_scales(scales: Any, name: str, func: str) -> np.ndarray:
    """Noise scales as a float array, or an error naming ``name`` of ``func``."""
    try:
        grid = np.asarray(scales, dtype=np.float64)
    except (TypeError, ValueError):
        grid = np.empty(0)
    if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
        raise parameter_error(name, func, "a non-empty 1-d sequence of floats >= 0", scales)
    return grid


def noise_curve(
    adapter: ModelAdapter,
    data: Any,
    train_data: Any,
    scales: Sequence[float] | np.ndarray = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0),
    repeats: int = 10,
    seed: int = 0,
    *,
    batch_size: int | None = None,
    accuracy: Literal["top1", "top5"] = "top1",
    noise_sd: Literal["map", "spatial-mean"] = "map",
    progress: ProgressCallback | None = None,
) -> xr.DataArray:
    """Accuracy with N(0, (s * sd_unit)^2) noise added to every unit of every site.

    Parameters
    ----------
    adapter : ModelAdapter
    data : (X, y) tuple or iterable of (x, y) batches
        The data the accuracy is measured on.
    train_data : (X, y) tuple or iterable of (x, y) batches
        The data each unit's standard deviation ``sd_unit`` is measured on (the
        paper: the training set).  The noise itself is drawn independently for every
        element of a conv map.
    scales : sequence of float >= 0
        The noise scales ``s``.
    repeats : int
        Independent noise draws per scale.
    seed : int
    batch_size : int, optional
    accuracy : {"top1", "top5"}
        Top-1, or top-5 as the paper uses for ImageNet.
    noise_sd : {"map", "spatial-mean"}
        ``sd_unit`` of a conv map.  ``"map"`` (default): the sd over every element of
        the map and every training example -- the paper normalises by "the empirical
        variance of the unit's activations across the training set", and a conv unit is
        a whole feature map, so its activations are all of the map's elements (one sd
        per map; the paper names per-element statistics only for mean-ablation, A.1).
        ``"spatial-mean"``: the sd of the map's spatial average over the examples
        (smaller, so conv noise is relatively weaker; directionkit 0.x's definition).
        Both agree on dense units.
    progress : callable, optional
        Called as ``progress(done, total)`` as the work advances (example-rows; see
        :mod:`directionkit.experiments._progress`), e.g. to drive a progress bar.

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
    k = top_k(accuracy, func)
    check_choice(noise_sd, "noise_sd", func, ("map", "spatial-mean"))
    repeats = check_int(repeats, "repeats", func, minimum=1)
    seed = check_int(seed, "seed", func, minimum=0)
    grid = check_scales(scales, "scales", func)
    batches = Batches(data, batch_size, func)
    train_batches = Batches(train_data, batch_size, func)
    find_sites(adapter, batches)
    tracker = Tracker(progress)
    tracker.plan(train_batches.n_examples)
    tracker.plan(batches.n_examples, rows=repeats * grid.size)
    names = list(adapter.sites)
    if noise_sd == "map":
        std = element_statistics(adapter, train_batches, names, tracker)[1]
    else:
        moments = unit_moments(adapter, train_batches, names, tracker)
        std = _split(np.asarray(moments.std()), adapter, names)
    iv = Interventions.noise(std, scales=np.tile(grid, repeats), seed=seed)
    values = evaluate(adapter, batches, iv, k, tracker).accuracy.reshape(repeats, grid.size)
    return xr.DataArray(
        values,
        dims=("repeat", "noise_scale"),
        coords={"repeat": np.arange(repeats), "noise_scale": grid},
        name="noise_accuracy",
        attrs={"seed": seed, "accuracy": accuracy, "noise_sd": noise_sd},
    )
