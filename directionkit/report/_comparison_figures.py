"""Figures of several analyses overlaid (:func:`directionkit.compare`): ablation and
noise curves, one band per model, and per-unit distributions.

Each function takes a :class:`~directionkit.Comparison` and returns a
:class:`matplotlib.figure.Figure`; :meth:`Comparison.figures` draws every one the
analyses allow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.report._drawing import (
    _LABELS,
    _band,
    _chance_line,
    _coordinate,
    _literal,
    _noise_axis,
    n_classes,
)

if TYPE_CHECKING:
    from directionkit.report._compare import Comparison


# -- several analyses overlaid (directionkit.compare) -------------------------------------
def _model_colors(comparison: Comparison) -> list[Any]:
    """One colour per model: a viridis ramp in the ``by`` order, else the default cycle."""
    from matplotlib import colormaps

    n = len(comparison.analyses)
    if comparison.by is None:
        return [f"C{i % 10}" for i in range(n)]
    ramp = colormaps["viridis"]
    colors: list[Any] = [None] * n
    for rank, i in enumerate(comparison.order()):
        colors[int(i)] = ramp(0.9 * rank / max(n - 1, 1))
    return colors


def _comparison_chance(ax: Axes, comparison: Comparison) -> None:
    classes = {n_classes(ds) for ds in comparison.analyses.values()} - {None}
    if len(classes) == 1:
        _chance_line(ax, next(iter(comparison.analyses.values())))


def _model_bands(
    ax: Axes, comparison: Comparison, x: np.ndarray, curves: xr.DataArray,
    suffix: Callable[[int], str] = lambda i: "",
) -> None:
    """One band (mean ± sd over the first dim) per model that has data, in the ``by`` order.

    ``curves`` is ``(model, samples, x)``; points a model lacks (NaN) are left out.
    """
    colors = _model_colors(comparison)
    labels = [_literal(label) for label in comparison.labels()]  # legend text, never math
    for i in comparison.order():
        samples = np.asarray(curves.isel(model=int(i)).values, dtype=np.float64)
        ok = ~np.all(np.isnan(samples), axis=0)
        if not ok.any():
            continue
        _band(ax, x[ok], samples[:, ok], color=colors[i], label=labels[i] + suffix(int(i)),
              gid=f"model:{comparison.dataset['model'].values[i]}", marker="o",
              markersize=2.5)  # fmt: skip


def compare_ablation_curves(comparison: Comparison, scope: str = "all") -> Figure:
    """Ablation curves of several models in one axes (Fig. 1 of the paper).

    One line per model (mean over orderings) with a band of ± one sd over orderings;
    the legend gives each model's label (and ``by`` value) and its AUC.  With
    ``by``, colours follow its order on a viridis ramp.

    Parameters
    ----------
    comparison : directionkit.Comparison
    scope : str
        The scope drawn (a value of the ``scope`` coordinate).

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its model lines have ``gid`` ``"model:<label>"``.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> runs = {f"seed {s}": dk.analyze(net, (X, y), metrics=["ablation"], orderings=2,
    ...                                 fractions=5, seed=s, progress=False) for s in (0, 1)}
    >>> fig = compare_ablation_curves(dk.compare(runs))
    >>> [line.get_gid() for line in fig.axes[0].lines]
    ['model:seed 0', 'model:seed 1']
    """
    ds = comparison.dataset
    if "ablation_accuracy" not in ds:
        raise InvalidDataError("compare_ablation_curves needs 'ablation_accuracy' in some model.")
    scopes = [str(s) for s in ds["scope"].values]
    if scope not in scopes:
        raise InvalidParameterError(
            f"The 'scope' parameter of compare_ablation_curves must be one of {scopes}. "
            f"Got {scope!r} instead."
        )
    curves = ds["ablation_accuracy"].sel(scope=scope)
    fractions = _coordinate(curves, "fraction").astype(np.float64)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    auc = ds["ablation_auc"].sel(scope=scope).values if "ablation_auc" in ds else None

    def with_auc(i: int) -> str:
        return "" if auc is None or np.isnan(auc[i]) else f" (AUC {float(auc[i]):.3f})"

    _model_bands(ax, comparison, fractions, curves, with_auc)
    _comparison_chance(ax, comparison)
    ax.set_xlabel("fraction of units ablated")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Cumulative ablation, scope {_literal(scope)} (mean ± sd over orderings)",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=7)
    return fig


def compare_noise_curves(comparison: Comparison) -> Figure:
    """Noise curves of several models in one axes (Fig. 2 of the paper).

    One line per model (mean over repeats, band ± one sd), log x axis (symmetric-log
    when the clean scale 0 is present), colours as in
    :func:`compare_ablation_curves`.

    Parameters
    ----------
    comparison : directionkit.Comparison

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its model lines have ``gid`` ``"model:<label>"``.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> runs = {f"seed {s}": dk.analyze(net, (X, y), train_data=(X, y), metrics=["noise"],
    ...                                 noise_scales=[0, 1], noise_repeats=2, seed=s,
    ...                                 progress=False) for s in (0, 1)}
    >>> compare_noise_curves(dk.compare(runs)).axes[0].get_xscale()
    'symlog'
    """
    ds = comparison.dataset
    if "noise_accuracy" not in ds:
        raise InvalidDataError("compare_noise_curves needs 'noise_accuracy' in some model.")
    accuracy = ds["noise_accuracy"]
    scales = _coordinate(accuracy, "noise_scale").astype(np.float64)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    _model_bands(ax, comparison, scales, accuracy)
    _noise_axis(ax, scales)
    _comparison_chance(ax, comparison)
    ax.set_xlabel("noise scale (\N{MULTIPLICATION SIGN} each unit's sd on the training data)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Noise added to every unit (mean ± sd over repeats)", fontsize=10)
    ax.legend(fontsize=7)
    return fig


def compare_distributions(comparison: Comparison, variable: str = "selectivity") -> Figure:
    """Distributions of a per-unit measure over all units, one step histogram per model.

    Shared bins over every model's finite values (Fig. 6 of the paper compares
    selectivity and mutual information with and without batch norm this way); the
    legend gives each model's number of units and median.

    Parameters
    ----------
    comparison : directionkit.Comparison
    variable : {"selectivity", "mutual_info"}

    Returns
    -------
    matplotlib.figure.Figure
        One axes.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> a = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    >>> compare_distributions(dk.compare({"a": a})).axes[0].get_xlabel()
    'class selectivity'
    """
    if variable not in ("selectivity", "mutual_info"):
        raise InvalidParameterError(
            "The 'variable' parameter of compare_distributions must be 'selectivity' or "
            f"'mutual_info'. Got {variable!r} instead."
        )
    values = {
        label: np.asarray(ds[variable].values, dtype=np.float64)
        for label, ds in comparison.analyses.items()
        if variable in ds.data_vars
    }
    if not values:
        raise InvalidDataError(f"compare_distributions: no model has {variable!r}.")
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()])
    edges: np.ndarray = (
        np.histogram_bin_edges(finite, bins=25) if finite.size else np.linspace(0.0, 1.0, 26)
    )
    colors = _model_colors(comparison)
    labels = [_literal(label) for label in comparison.labels()]  # legend text, never math
    names = list(comparison.analyses)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i in comparison.order():
        name = names[int(i)]
        if name not in values:
            continue
        part = values[name][np.isfinite(values[name])]
        median = float(np.median(part)) if part.size else math.nan
        ax.hist(part, bins=edges.tolist(), histtype="step", linewidth=1.5, color=colors[i],
                density=True, gid=f"model:{name}",
                label=f"{labels[i]} (n={part.size}, median {median:.3f})")  # fmt: skip
    ax.set_xlabel(_LABELS[variable])
    ax.set_ylabel("density over units")
    ax.set_title(f"{_LABELS[variable].capitalize()}: distribution over all units", fontsize=10)
    ax.legend(fontsize=7)
    return fig
