"""Figures of an analysis, drawn as in Morcos et al. (2018).

Every function takes an :class:`~directionkit.Analysis` or its
:class:`xarray.Dataset` and returns a :class:`matplotlib.figure.Figure`, built
directly (never through ``pyplot``): no global state, no interactive backend, and
nothing left open to close, so it works the same in scripts, notebooks and on
headless machines.  Save one with ``fig.savefig("name.png")``.  A function whose
variable is missing raises :class:`~directionkit.errors.InvalidDataError` naming it
and the metric that makes it; :func:`plot_analysis` draws every figure whose variables are present.

=================================  =======================================  =======
function                           variables                                paper
=================================  =======================================  =======
:func:`ablation_curves`            ``ablation_accuracy``, ``ablation_auc``  Fig. 1
:func:`noise_curve`                ``noise_accuracy``                       Fig. 2
:func:`selectivity_histograms`     ``selectivity``, ``mutual_info``         Fig. 6
:func:`selectivity_vs_importance`  ``selectivity``, ``importance_*``        Fig. 7
:func:`selectivity_vs_weight_l1`   ``selectivity``, ``weight_l1``           Fig. A3
:func:`selectivity_by_depth`       ``selectivity``                          Fig. A2
=================================  =======================================  =======

Examples
--------
>>> import directionkit as dk
>>> from directionkit.testing import example_model
>>> from directionkit.report.plots import plot_analysis
>>> net, X, y = example_model()
>>> result = dk.analyze(net, (X, y), orderings=2, fractions=5, progress=False)
>>> sorted(plot_analysis(result))  # no noise curve: analyze was given no train_data
['ablation_curves', 'selectivity_by_depth', 'selectivity_histograms',
 'selectivity_vs_importance', 'selectivity_vs_weight_l1']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.report._drawing import (
    _IMPORTANCE,
    _LABELS,
    _band,
    _chance_line,
    _coordinate,
    _literal,
    _noise_axis,
    _site_scatter,
    _variable,
    as_dataset,
    site_groups,
    site_label,
)

if TYPE_CHECKING:
    from directionkit.results import HoldsDataset


__all__ = [
    "ablation_curves",
    "noise_curve",
    "population_ablation_curves",
    "plot_analysis",
    "selectivity_by_depth",
    "selectivity_histograms",
    "selectivity_vs_importance",
    "selectivity_vs_weight_l1",
]


def ablation_curves(analysis: HoldsDataset | xr.Dataset) -> Figure:
    """Accuracy as a growing fraction of units is ablated (Fig. 1 of the paper).

    One line per scope: the mean over orderings of ``ablation_accuracy (scope,
    ordering, fraction)``, with a band of ± one sd over orderings; the legend gives
    each scope's ``ablation_auc`` when present, and a dashed line marks chance: the
    stored ``chance_accuracy`` (the best constant prediction's), else 1 / the number of
    classes when that is known.

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
        Needs ``ablation_accuracy``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; its scope lines have ``gid`` ``"scope:<name>"``, the chance line
        ``"chance"``.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["ablation"], scopes=["all", "hidden1"],
    ...                     orderings=2, fractions=5, progress=False)
    >>> fig = ablation_curves(result)
    >>> [line.get_gid() for line in fig.axes[0].lines]
    ['scope:all', 'scope:hidden1', 'chance']
    """
    ds = as_dataset(analysis, "ablation_curves")
    curves = _variable(ds, "ablation_accuracy", "ablation_curves")
    auc: dict[str, float] = {}
    if "ablation_auc" in ds.data_vars and ds["ablation_auc"].dims == ("scope",):
        scopes = _coordinate(ds["ablation_auc"], "scope")
        auc = dict(zip(map(str, scopes), map(float, ds["ablation_auc"].values), strict=True))
    fractions = _coordinate(curves, "fraction").astype(np.float64)
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, scope in enumerate(_coordinate(curves, "scope")):
        label = _literal(scope) + (f" (AUC {auc[str(scope)]:.3f})" if str(scope) in auc else "")
        _band(ax, fractions, np.asarray(curves.isel(scope=i).values, dtype=np.float64),
              label=label, gid=f"scope:{scope}", marker="o", markersize=3)  # fmt: skip
    _chance_line(ax, ds)
    ax.set_xlabel("fraction of units ablated")
    ax.set_ylabel("accuracy")
    if fractions.size and fractions.min() >= 0 and fractions.max() <= 1:
        ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Cumulative ablation (mean ± sd over orderings)")
    ax.legend(fontsize=8, title="scope", title_fontsize=8)
    return fig


def population_ablation_curves(analysis: HoldsDataset | xr.Dataset, scope: str = "all") -> Figure:
    """One cumulative ablation curve per model of a population (a sweep's root).

    The mean over orderings of ``ablation_accuracy (model, scope, ordering, fraction)`` at
    ``scope`` (the first scope when there is no such one), one line per model; a model
    flagged ``near_chance`` is drawn dashed and grey, its label saying so.  Up to 12
    models get a legend beside the axes (never over the curves); more are coloured by
    their AUC, with a colour bar.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> ds = xr.Dataset(
    ...     {"ablation_accuracy": (("model", "scope", "ordering", "fraction"),
    ...                            np.array([[[[0.9, 0.5, 0.1]]], [[[0.2, 0.2, 0.2]]]])),
    ...      "near_chance": ("model", [False, True])},
    ...     coords={"model": ["a", "b"], "scope": ["all"], "fraction": [0.0, 0.5, 1.0]})
    >>> [line.get_gid() for line in population_ablation_curves(ds).axes[0].lines]
    ['model:a', 'model:b']
    """
    ds = as_dataset(analysis, "population_ablation_curves")
    curves = ds["ablation_accuracy"]
    if curves.dims != ("model", "scope", "ordering", "fraction"):
        raise InvalidDataError(
            "population_ablation_curves needs ablation_accuracy with dims (model, scope, "
            f"ordering, fraction). Got {curves.dims}."
        )
    scopes = [str(s) for s in _coordinate(curves, "scope")]
    chosen = scopes.index(scope) if scope in scopes else 0
    mean = np.asarray(curves.isel(scope=chosen).mean("ordering").values, dtype=np.float64)
    fractions = _coordinate(curves, "fraction").astype(np.float64)
    models = [str(m) for m in _coordinate(curves, "model")]
    flagged = (
        np.asarray(ds["near_chance"].values, dtype=bool)
        if "near_chance" in ds.data_vars and ds["near_chance"].dims == ("model",)
        else np.zeros(len(models), dtype=bool)
    )
    auc = mean.mean(axis=1)  # only to colour many models; not the stored AUC
    if "ablation_auc" in ds.data_vars and ds["ablation_auc"].dims == ("model", "scope"):
        auc = np.asarray(ds["ablation_auc"].isel(scope=chosen).values, dtype=np.float64)
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    many = len(models) > 12
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    finite = auc[np.isfinite(auc)]
    norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0.0, 1.0))
    for i, model in enumerate(models):
        style: dict[str, Any] = {"gid": f"model:{model}", "marker": "o", "markersize": 3}
        if flagged[i]:
            style |= {"linestyle": "--", "color": "0.6"}
        elif many and np.isfinite(auc[i]):
            style["color"] = colormaps["viridis"](norm(auc[i]))
        label = _literal(model) + (" (near chance)" if flagged[i] else "")
        ax.plot(fractions, mean[i], label=label, **style)
    ax.set_xlabel("fraction of units ablated")
    ax.set_ylabel("accuracy (the data each model was analysed on)")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Cumulative ablation per model, scope {_literal(scopes[chosen])} "
                 "(mean over orderings)")  # fmt: skip
    if many:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label="ablation AUC")
    else:
        ax.legend(fontsize=8, title="model", title_fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), borderaxespad=0)  # fmt: skip
    return fig


def noise_curve(analysis: HoldsDataset | xr.Dataset) -> Figure:
    """Accuracy as noise of growing scale is added to every unit (Fig. 2 of the paper).

    The mean of ``noise_accuracy (repeat, noise_scale)`` over repeats, with a band of
    ± one sd.  The x axis is logarithmic, as in the paper; a scale of 0 (the clean
    model) cannot sit on a log axis, so when present the axis is symmetric-log,
    linear between 0 and the smallest positive scale.

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
        Needs ``noise_accuracy``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes, x scale ``"log"`` or ``"symlog"``.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), train_data=(X, y), metrics=["noise"],
    ...                     noise_scales=[0.0, 0.5, 2.0], noise_repeats=2, progress=False)
    >>> noise_curve(result).axes[0].get_xscale()
    'symlog'
    """
    ds = as_dataset(analysis, "noise_curve")
    accuracy = _variable(ds, "noise_accuracy", "noise_curve")
    scales = _coordinate(accuracy, "noise_scale").astype(np.float64)
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    _band(ax, scales, np.asarray(accuracy.values, dtype=np.float64), marker="o",
          markersize=3, label="mean ± sd over repeats", gid="noise")  # fmt: skip
    _noise_axis(ax, scales)
    _chance_line(ax, ds)
    ax.set_xlabel("noise scale (\N{MULTIPLICATION SIGN} each unit's sd on the training data)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Noise added to every unit")
    ax.legend(fontsize=8)
    return fig


def selectivity_histograms(analysis: HoldsDataset | xr.Dataset) -> Figure:
    """Distributions of class selectivity and mutual information (Fig. 6 of the paper).

    One panel per variable present (``selectivity``, ``mutual_info``), one
    step-histogram per site overlaid on shared bins.

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
        Needs ``selectivity`` or ``mutual_info`` (both for two panels).

    Returns
    -------
    matplotlib.figure.Figure
        One axes per variable present.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    >>> [ax.get_xlabel() for ax in selectivity_histograms(result).axes]
    ['class selectivity', 'mutual information (bits)']
    """
    ds = as_dataset(analysis, "selectivity_histograms")
    names = [n for n in ("selectivity", "mutual_info") if n in ds.data_vars]
    if not names:
        _variable(ds, "selectivity", "selectivity_histograms")  # raises, naming it
    fig = Figure(figsize=(5 * len(names), 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        values = _variable(ds, name, "selectivity_histograms")
        finite = np.asarray(values.values, dtype=np.float64)
        edges = np.histogram_bin_edges(finite[np.isfinite(finite)], bins=20)
        for i, (site, mask) in enumerate(site_groups(values)):
            part = finite[mask]
            ax.hist(part[np.isfinite(part)], bins=edges, histtype="step", linewidth=1.5,
                    color=f"C{i % 10}", label=site_label(ds, site))  # fmt: skip
        ax.set_xlabel(_LABELS[name])
        ax.set_ylabel("units")
        ax.legend(fontsize=8, title="site", title_fontsize=8)
    fig.suptitle("Distribution over units")
    return fig


def selectivity_vs_importance(
    analysis: HoldsDataset | xr.Dataset, *, measures: Sequence[str] | None = None
) -> Figure:
    """Each unit's class selectivity against its ablation importance (Fig. 7).

    One scatter panel per site for each importance measure (a row of panels per
    measure); each title gives the site's Spearman rho
    (:func:`directionkit.metrics.spearman`), the figure title the rho over all units.

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
        Needs ``selectivity`` and the importance measures drawn.
    measures : sequence of str, optional
        Any of ``"importance_loss"`` (the paper's measure) and
        ``"importance_accuracy"``.  Default: those present.

    Returns
    -------
    matplotlib.figure.Figure
        ``len(measures) * n_sites`` axes.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics", "importance"],
    ...                     progress=False)
    >>> fig = selectivity_vs_importance(result, measures=["importance_loss"])
    >>> [ax.get_title().split()[0] for ax in fig.axes]
    ['hidden0', 'hidden1']
    """
    func = "selectivity_vs_importance"
    ds = as_dataset(analysis, func)
    if measures is None:
        chosen = [m for m in _IMPORTANCE if m in ds.data_vars] or [_IMPORTANCE[0]]
    elif isinstance(measures, str) or not measures or any(m not in _IMPORTANCE for m in measures):
        raise InvalidParameterError(
            f"The 'measures' parameter of {func} must be a non-empty sequence of "
            f"{_IMPORTANCE}. Got {measures!r} instead."
        )
    else:
        chosen = list(dict.fromkeys(measures))
    return _site_scatter(ds, "selectivity", chosen, func, "Selectivity vs importance")


def selectivity_vs_weight_l1(analysis: HoldsDataset | xr.Dataset) -> Figure:
    """Each unit's class selectivity against the L1 norm of its weights (Fig. A3).

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
        Needs ``selectivity`` and ``weight_l1``.

    Returns
    -------
    matplotlib.figure.Figure
        One scatter axes per site, Spearman rho in each title.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics", "weight_l1"],
    ...                     progress=False)
    >>> len(selectivity_vs_weight_l1(result).axes)
    2
    """
    func = "selectivity_vs_weight_l1"
    ds = as_dataset(analysis, func)
    return _site_scatter(ds, "selectivity", ["weight_l1"], func, "Selectivity vs weight L1 norm")


def selectivity_by_depth(analysis: HoldsDataset | xr.Dataset) -> Figure:
    """Class selectivity per site, in depth order (Fig. A2 of the paper).

    Every unit as a faint point, and each site's mean ± sd as an error bar; sites
    are in the order their units are laid out along ``unit`` (forward order).

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
        Needs ``selectivity``.

    Returns
    -------
    matplotlib.figure.Figure
        One axes; the x tick labels are the site names.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    >>> [t.get_text() for t in selectivity_by_depth(result).axes[0].get_xticklabels()]
    ['hidden0 · 6 units', 'hidden1 · 5 units']
    """
    ds = as_dataset(analysis, "selectivity_by_depth")
    selectivity = _variable(ds, "selectivity", "selectivity_by_depth")
    groups = site_groups(selectivity)
    values = np.asarray(selectivity.values, dtype=np.float64)
    jitter = np.random.default_rng(0)  # fixed: the same analysis draws the same figure
    fig = Figure(figsize=(max(4.0, 1.0 + 0.8 * len(groups)), 4), layout="constrained")
    ax = fig.add_subplot()
    means = []
    for depth, (_, mask) in enumerate(groups):
        part = values[mask][np.isfinite(values[mask])]
        ax.scatter(depth + jitter.uniform(-0.15, 0.15, part.size), part, s=8, alpha=0.35,
                   color=f"C{depth % 10}", edgecolors="none")  # fmt: skip
        mean = float(part.mean()) if part.size else math.nan
        sd = float(part.std()) if part.size else math.nan
        ax.errorbar(depth, mean, yerr=sd, fmt="o", color="black", capsize=4, markersize=5)
        means.append(mean)
    ax.plot(range(len(groups)), means, color="black", linewidth=1, gid="mean")
    labels = [site_label(ds, site) for site, _ in groups]
    ax.set_xticks(range(len(groups)), labels,
                  rotation=45 if len(groups) > 6 or any(" " in t for t in labels) else 0,
                  ha="right" if any(" " in t for t in labels) else "center")  # fmt: skip
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_xlabel("site (input → output)")
    ax.set_ylabel("class selectivity")
    ax.set_title("Selectivity by depth (mean ± sd per site)")
    return fig


#: Figure name -> (function, variables it needs, any one of which suffices when
#: ``any`` is set).  The names are the keys of :func:`plot_analysis` and the PNG names
#: of :func:`directionkit.report.write_report`.
FIGURES: dict[str, tuple[Callable[[xr.Dataset], Figure], tuple[str, ...], bool]] = {
    "ablation_curves": (ablation_curves, ("ablation_accuracy",), False),
    "noise_curve": (noise_curve, ("noise_accuracy",), False),
    "selectivity_histograms": (selectivity_histograms, ("selectivity", "mutual_info"), True),
    "selectivity_vs_importance": (selectivity_vs_importance, ("selectivity", "importance"), False),
    "selectivity_vs_weight_l1": (selectivity_vs_weight_l1, ("selectivity", "weight_l1"), False),
    "selectivity_by_depth": (selectivity_by_depth, ("selectivity",), False),
}


def _available(ds: xr.Dataset, needs: tuple[str, ...], any_of: bool) -> bool:
    def present(name: str) -> bool:
        if name == "importance":
            return any(m in ds.data_vars for m in _IMPORTANCE)
        return name in ds.data_vars

    return any(map(present, needs)) if any_of else all(map(present, needs))


def plot_analysis(analysis: HoldsDataset | xr.Dataset) -> dict[str, Figure]:
    """Every figure whose variables the analysis has.

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset

    Returns
    -------
    dict of str to matplotlib.figure.Figure
        Keyed by the drawing function's name (``"ablation_curves"``,
        ``"noise_curve"``, ``"selectivity_histograms"``,
        ``"selectivity_vs_importance"``, ``"selectivity_vs_weight_l1"``,
        ``"selectivity_by_depth"``), in that order; figures whose variables are
        missing are left out.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    >>> list(plot_analysis(result))
    ['selectivity_histograms', 'selectivity_by_depth']
    """
    ds = as_dataset(analysis, "plot_analysis")
    return {
        name: draw(ds)
        for name, (draw, needs, any_of) in FIGURES.items()
        if _available(ds, needs, any_of)
    }
