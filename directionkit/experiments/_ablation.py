"""Cumulative ablation curves and single-unit importance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from directionkit._utils.choices import ABLATE_TO
from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.adapter import Interventions, LinearChain, ModelAdapter, SupportsLinearChain
from directionkit.errors import InvalidParameterError
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import (
    evaluate,
    find_sites,
    scope_sites,
    site_offsets,
    top_k,
    unit_coords,
)
from directionkit.experiments._incremental import incremental_accuracy, single_unit_scores
from directionkit.experiments._progress import ProgressCallback, Tracker


def check_fractions(fractions: int | Sequence[float] | np.ndarray, func: str) -> np.ndarray:
    """The ablation fractions ``fractions`` stands for, sorted, or an error naming ``func``."""
    if isinstance(fractions, int | np.integer) and not isinstance(fractions, bool):
        return np.linspace(0.0, 1.0, check_int(fractions, "fractions", func, minimum=2))
    values = np.asarray(fractions, dtype=np.float64) if not isinstance(fractions, bool) else None
    if (
        values is None
        or values.ndim != 1
        or values.size == 0
        or not np.all(np.isfinite(values))
        or np.any((values < 0) | (values > 1))
        or np.unique(values).size != values.size
    ):
        raise parameter_error(
            "fractions", func, "an int >= 2 or a 1-d array of distinct values in [0, 1]", fractions
        )
    return np.sort(values)


def check_auc_fractions(fractions: int | Sequence[float] | np.ndarray, func: str) -> np.ndarray:
    """:func:`check_fractions`, and both ends 0 and 1 among them: the ablation AUC is the
    area over [0, 1] normalised by the accuracy at 0.

    Examples
    --------
    >>> check_auc_fractions([0.5, 1.0], "analyze")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidParameterError: The 'fractions' parameter of analyze must ...
    """
    grid = check_fractions(fractions, func)
    if grid[0] != 0.0 or grid[-1] != 1.0:
        raise parameter_error(
            "fractions", func, "an int >= 2 or fractions that include 0 and 1 (the ablation "
            "AUC spans [0, 1] and is normalised by the accuracy at 0)", fractions,
        )  # fmt: skip
    return grid


def n_clamped(fraction: float, n_units: int) -> int:
    """How many units are clamped at ``fraction``: round(f * n), halves rounded up.

    Examples
    --------
    >>> [n_clamped(f, 10) for f in (0.0, 0.25, 0.5, 1.0)]
    [0, 3, 5, 10]
    """
    return int(np.floor(fraction * n_units + 0.5))


def _chain_for(
    adapter: ModelAdapter,
    names: Sequence[str],
    method: str,
    fills: Mapping[str, Any] | None = None,
) -> LinearChain | None:
    """The adapter's :class:`LinearChain` covering ``names``, unless ``method`` rules it out.

    None when the general path is to be used; an error when ``method="incremental"`` was
    asked for and the model is not a plain ReLU MLP.  The chain's sites are flat dense
    activations, so a per-element clamp value is a per-unit one there; a clamp value of
    any other shape means the definitions differ and the general path is used.
    """
    chain = adapter.linear_chain() if isinstance(adapter, SupportsLinearChain) else None
    if chain is not None and not all(n in chain.site_layers for n in names):
        chain = None
    if (
        chain is not None
        and fills is not None
        and not all(np.shape(fills[n]) == (adapter.sites[n].n_units,) for n in names)
    ):
        chain = None
    if method == "incremental" and chain is None:
        raise InvalidParameterError(
            "method='incremental' needs an adapter whose model is a plain ReLU MLP (it must "
            f"implement linear_chain()); {type(adapter).__name__} does not describe one."
        )
    return None if method == "general" else chain


def ablation_curve(
    adapter: ModelAdapter,
    data: Any,
    scope: str = "all",
    orderings: int = 10,
    fractions: int | Sequence[float] | np.ndarray = 21,
    ablate_to: Literal["zero", "mean", "channel-mean"] = "zero",
    seed: int = 0,
    *,
    means: Mapping[str, Any] | None = None,
    train_data: Any = None,
    batch_size: int | None = None,
    method: Literal["auto", "general", "incremental"] = "auto",
    accuracy: Literal["top1", "top5"] = "top1",
    progress: ProgressCallback | None = None,
) -> xr.Dataset:
    """Accuracy as growing random subsets of a scope's units are clamped.

    Parameters
    ----------
    adapter : ModelAdapter
        The model, e.g. ``directionkit.adapters.torch.TorchAdapter(model)``.
    data : (X, y) tuple or iterable of (x, y) batches
        Evaluated data; the paper uses the training set for corrupted-label models.
    scope : str
        ``"all"`` (every site), a site name, or ``"last:K"`` (the sites of the last K
        layers; a residual block is one layer).
    orderings : int
        Number of seeded random orderings of the scope's units.
    fractions : int or array of floats in [0, 1]
        Points of the curve: a count (evenly spaced from 0 to 1) or the fractions.
        At fraction ``f`` the first ``round(f * n)`` units of an ordering are clamped.
    ablate_to : {"zero", "mean", "channel-mean"}
        Clamp value: 0 (the paper's choice for its curves); ``"mean"``, each element's
        own mean activity (paper A.1: "means were calculated independently for each
        element of the feature map"; on dense units the unit's mean); or
        ``"channel-mean"``, one mean per unit, broadcast over a conv map's elements.
        Means come from ``means``, else from ``train_data`` (one of them is required;
        pass ``train_data=data`` to measure them on the evaluated data); the attr
        ``means_from`` says which.
    seed : int
        Seed of the orderings.
    means : mapping of str to array, optional
        Per-site clamp values: ``(n_units,)`` or element templates of the site's
        activation shape (see :meth:`Interventions.mean_ablate`).
    train_data : (X, y) tuple or iterable of (x, y) batches, optional
        Where the means are measured when ``means`` is not given (the paper: the
        training set).
    batch_size : int, optional
        Batch size when ``data`` is an ``(X, y)`` tuple.
    accuracy : {"top1", "top5"}
        Top-1, or top-5 as the paper uses for ImageNet.
    method : {"auto", "general", "incremental"}
        ``"general"`` evaluates every curve point as an intervention through the
        adapter (M-batched).  ``"incremental"`` needs an adapter that describes its
        model as a :class:`~directionkit.adapter.LinearChain` (a plain ReLU MLP): along
        each ordering only the newly clamped units' weights are subtracted from the next
        layer (see :mod:`directionkit.experiments._incremental`), in the model's dtype.
        ``"auto"`` picks incremental when possible.
    progress : callable, optional
        Called as ``progress(done, total)`` as the work advances (example-rows; see
        :mod:`directionkit.experiments._progress`), e.g. to drive a progress bar.

    Returns
    -------
    xarray.Dataset
        ``ablation_accuracy (scope, ordering, fraction)`` and ``ablation_order (scope,
        ordering, rank)``: the index along the model's ``unit`` dim (all sites in order)
        of the unit clamped at each rank, so any point can be recomputed by hand.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> adapter = NumpyMLPAdapter.random(n_in=4, hidden=(6,), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(30, 4)); y = adapter.predict(X)
    >>> curve = ablation_curve(adapter, (X, y), orderings=2, fractions=3)
    >>> curve["ablation_accuracy"].sel(fraction=0.0).values.tolist()
    [[1.0, 1.0]]
    """
    func = "ablation_curve"
    check_choice(ablate_to, "ablate_to", func, ABLATE_TO)
    k = top_k(accuracy, func)
    check_choice(method, "method", func, ("auto", "general", "incremental"))
    orderings = check_int(orderings, "orderings", func, minimum=1)
    seed = check_int(seed, "seed", func, minimum=0)
    grid = check_fractions(fractions, func)
    batches = Batches(data, batch_size, func)
    find_sites(adapter, batches)
    sites = adapter.sites
    names = scope_sites(sites, scope, func)
    offsets = site_offsets(sites)
    # the scope's units as global indices along `unit`
    units = np.concatenate([offsets[n] + np.arange(sites[n].n_units) for n in names])
    width = int(offsets[names[-1]] + sites[names[-1]].n_units)  # up to the scope's last unit
    order, ablated = _orderings(units, orderings, grid, seed, width)
    masks = {n: ablated[:, offsets[n] : offsets[n] + sites[n].n_units] for n in names}
    tracker = Tracker(progress)
    tracker.plan(batches.n_examples, rows=ablated.shape[0], passes=1)
    means_from = None
    if ablate_to != "zero":
        means_from = "means" if means is not None else "train_data"
        means = _scope_means(
            adapter, names, scope, ablate_to, means, train_data, batch_size, tracker
        )
    fills = None if means is None or ablate_to == "zero" else {n: means[n] for n in names}
    chain = _chain_for(adapter, names, method, fills)
    if chain is not None:
        values = incremental_accuracy(
            chain, batches, names, ablated, offsets,
            {n: sites[n].n_units for n in names}, fills, grid.size, k, tracker,
        ).reshape(orderings, grid.size)  # fmt: skip
    else:
        if fills is None:
            iv = Interventions.zero_ablate(sites, masks)
        else:
            iv = Interventions.mean_ablate(sites, masks, fills)
        values = evaluate(adapter, batches, iv, k, tracker).accuracy.reshape(orderings, grid.size)
    attrs: dict[str, Any] = {"ablate_to": ablate_to, "seed": seed, "accuracy": accuracy}
    if means_from is not None:
        attrs["means_from"] = means_from
    return xr.Dataset(
        {
            "ablation_accuracy": (("scope", "ordering", "fraction"), values[None]),
            "ablation_order": (("scope", "ordering", "rank"), order[None]),
        },
        coords={
            "scope": [scope],
            "ordering": np.arange(orderings),
            "fraction": grid,
            "rank": np.arange(units.size),
        },
        attrs=attrs,
    )


def _orderings(
    units: np.ndarray, orderings: int, grid: np.ndarray, seed: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random orders of ``units`` (``(ordering, rank)``), and the mask of each curve point
    (``(ordering * fraction, width)``): the first ``n_clamped(fraction)`` of its order."""
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(units) for _ in range(orderings)])
    ablated = np.zeros((orderings * grid.size, width), dtype=bool)
    for o in range(orderings):
        for f, fraction in enumerate(grid):
            ablated[o * grid.size + f, order[o, : n_clamped(fraction, units.size)]] = True
    return order, ablated


def _scope_means(
    adapter: ModelAdapter, names: list[str], scope: str, ablate_to: str,
    means: Mapping[str, Any] | None, train_data: Any, batch_size: int | None,
    tracker: Tracker,
) -> Mapping[str, Any]:
    """The clamp values of every site of the scope: given, or measured on ``train_data``."""
    func = "ablation_curve"
    if means is None:
        if train_data is None:
            raise parameter_error(
                "train_data", func, f"given (or means=) when ablate_to={ablate_to!r}: the "
                "paper's means are over the training set; pass train_data=data to use the "
                "evaluated data", None,
            )  # fmt: skip
        source = Batches(train_data, batch_size, func)
        tracker.plan(source.n_examples)
        means = clamp_values(adapter, source, names, ablate_to, tracker)
    missing = [n for n in names if n not in means]
    if missing:
        raise InvalidParameterError(
            f"The 'means' parameter of {func} must give clamp values for every site of "
            f"scope {scope!r}; missing: {missing}."
        )
    return means


def clamp_values(
    adapter: ModelAdapter,
    batches: Batches,
    names: Sequence[str],
    ablate_to: str,
    tracker: Tracker | None = None,
) -> dict[str, np.ndarray]:
    """The mean-ablation values of ``names`` over ``batches``.

    ``"mean"``: per-element means (templates of each site's activation shape);
    ``"channel-mean"``: one mean per unit (a conv map's mean over examples and space).
    """
    from directionkit.experiments._statistics import element_statistics, unit_means

    if ablate_to == "mean":
        return element_statistics(adapter, batches, names, tracker)[0]
    return unit_means(adapter, batches, names, tracker)


def unit_importance(
    adapter: ModelAdapter,
    data: Any,
    sites: Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
    method: Literal["auto", "general", "incremental"] = "auto",
    accuracy: Literal["top1", "top5"] = "top1",
    max_units: int | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> xr.Dataset:
    """Change in mean loss and accuracy when each unit alone is clamped to zero.

    Parameters
    ----------
    adapter : ModelAdapter
    data : (X, y) tuple or iterable of (x, y) batches
    sites : sequence of str, optional
        Sites whose units are measured; default every site.
    batch_size : int, optional
    method : {"auto", "general", "incremental"}
        ``"general"``: one intervention row per unit through the adapter.
        ``"incremental"`` (plain ReLU MLPs, see :class:`~directionkit.adapter.LinearChain`):
        clamping one unit is a rank-1 change of the next layer's pre-activation, so the
        layers before the site run once.  ``"auto"`` picks incremental when possible.
    accuracy : {"top1", "top5"}
        The accuracy of ``importance_accuracy``: top-1, or top-5 (the paper's ImageNet).
    max_units : int, optional
        Measure at most this many units (one intervention each over the data): with
        more, a random sample stratified by site, each site getting its share of
        ``max_units`` (and at least one unit), drawn with ``seed``; the others
        are NaN and ``attrs["sampled"]`` says how many were measured.  None: every unit.
        Ignored on the incremental path, which measures every unit at little cost.
    seed : int
        Seed of the sample.
    progress : callable, optional
        Called as ``progress(done, total)`` as the work advances (example-rows; see
        :mod:`directionkit.experiments._progress`), e.g. to drive a progress bar.

    Returns
    -------
    xarray.Dataset
        ``importance_loss (unit)``: mean cross-entropy (nats) with the unit clamped minus
        without; ``importance_accuracy (unit)``: accuracy with minus without (so an
        important unit has a positive ``importance_loss`` and a negative
        ``importance_accuracy``).  Unit coordinates ``site`` and ``unit_index``.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> adapter = NumpyMLPAdapter.random(n_in=4, hidden=(5,), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(20, 4)); y = adapter.predict(X)
    >>> unit_importance(adapter, (X, y))["importance_loss"].sizes["unit"]
    5
    """
    func = "unit_importance"
    check_choice(method, "method", func, ("auto", "general", "incremental"))
    k = top_k(accuracy, func)
    batches = Batches(data, batch_size, func)
    find_sites(adapter, batches)
    chosen = list(adapter.sites) if sites is None else [
        scope_sites(adapter.sites, s, func)[0] for s in sites
    ]  # fmt: skip
    if max_units is not None:
        max_units = check_int(max_units, "max_units", func, minimum=1)
    seed = check_int(seed, "seed", func, minimum=0)
    subset = {n: adapter.sites[n] for n in chosen}
    chain = _chain_for(adapter, chosen, method)
    measured = {n: np.arange(s.n_units) for n, s in subset.items()}
    total = sum(s.n_units for s in subset.values())
    attrs: dict[str, Any] = {"accuracy": accuracy}
    if chain is None and max_units is not None and total > max_units:
        measured = sample_units({n: s.n_units for n, s in subset.items()}, max_units, seed)
        count = sum(len(v) for v in measured.values())
        attrs["sampled"] = (
            f"{count} of {total} units, stratified by site (seed {seed}); the others are NaN. "
            "Pass importance_units='all' (analyze) or max_units=None for every unit."
        )
    loss, hits = [], []
    tracker = Tracker(progress)
    if chain is None:
        tracker.plan(batches.n_examples)  # the clean pass
    for name in chosen:
        tracker.plan(batches.n_examples, rows=len(measured[name]))
    if chain is not None:
        for name in chosen:
            unit_loss, unit_correct, clean_loss, clean_correct, n = single_unit_scores(
                chain, batches, name, k, tracker
            )
            loss.append((unit_loss - clean_loss) / n)
            hits.append((unit_correct - clean_correct) / n)
    else:
        clean = evaluate(adapter, batches, None, k, tracker)
        for name in chosen:
            n_units = subset[name].n_units
            site_loss, site_hits = np.full(n_units, np.nan), np.full(n_units, np.nan)
            units = measured[name]
            if len(units):
                eye = np.eye(n_units, dtype=bool)[units]
                scores = evaluate(
                    adapter, batches, Interventions.zero_ablate(adapter.sites, {name: eye}), k,
                    tracker,
                )
                site_loss[units] = scores.mean_loss - clean.mean_loss[0]
                site_hits[units] = scores.accuracy - clean.accuracy[0]
            loss.append(site_loss)
            hits.append(site_hits)
    return xr.Dataset(
        {
            "importance_loss": ("unit", np.concatenate(loss)),
            "importance_accuracy": ("unit", np.concatenate(hits)),
        },
        coords=unit_coords(subset),
        attrs=attrs,
    )


def sample_units(units: Mapping[str, int], budget: int, seed: int) -> dict[str, np.ndarray]:
    """A random sample of about ``budget`` units, stratified by site.

    Each site gets its share ``floor(budget * n_site / n_total)`` of the budget, and at
    least one unit (so the total may exceed ``budget`` by up to one per site), drawn
    without replacement with ``seed``; indices sorted.

    Examples
    --------
    >>> picked = sample_units({"a": 100, "b": 300, "c": 4}, budget=40, seed=0)
    >>> {name: len(idx) for name, idx in picked.items()}
    {'a': 9, 'b': 29, 'c': 1}
    """
    total = sum(units.values())
    rng = np.random.default_rng(seed)
    picked = {}
    for name, n in units.items():
        share = max(1, budget * n // total)
        picked[name] = np.sort(rng.choice(n, size=min(n, share), replace=False))
    return picked
