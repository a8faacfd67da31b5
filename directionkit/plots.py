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
>>> from directionkit.plots import plot_analysis
>>> net, X, y = example_model()
>>> result = dk.analyze(net, (X, y), orderings=2, fractions=5, progress=False)
>>> sorted(plot_analysis(result))  # no noise curve: analyze was given no train_data
['ablation_curves', 'selectivity_by_depth', 'selectivity_histograms',
 'selectivity_vs_importance', 'selectivity_vs_weight_l1']
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from directionkit._summary import site_text
from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.metrics import spearman
from directionkit.store import SCHEMA, Analysis

if TYPE_CHECKING:
    from directionkit.compare import Comparison

__all__ = [
    "ablation_curves",
    "compare_ablation_curves",
    "compare_distributions",
    "compare_noise_curves",
    "noise_curve",
    "population_ablation_curves",
    "plot_analysis",
    "selectivity_by_depth",
    "selectivity_histograms",
    "selectivity_vs_importance",
    "selectivity_vs_weight_l1",
]

#: The ``metrics`` entry of :func:`directionkit.analyze` that produces each variable.
_MADE_BY = {
    "ablation_accuracy": "ablation",
    "ablation_auc": "ablation",
    "noise_accuracy": "noise",
    "selectivity": "statistics",
    "mutual_info": "statistics",
    "importance_loss": "importance",
    "importance_accuracy": "importance",
    "weight_l1": "weight_l1",
}
_LABELS = {
    "selectivity": "class selectivity",
    "mutual_info": "mutual information (bits)",
    "importance_loss": "Δ loss when ablated",
    "importance_accuracy": "Δ accuracy when ablated",
    "weight_l1": "L1 norm of incoming weights",
}
_IMPORTANCE = ("importance_loss", "importance_accuracy")
_MAX_COLUMNS = 4
_TITLE_SIZE = 10
_RHO = "\N{GREEK SMALL LETTER RHO}"


# -- shared helpers ----------------------------------------------------------------------
def as_dataset(analysis: Analysis | xr.Dataset, func: str) -> xr.Dataset:
    """The Dataset of ``analysis`` (an :class:`Analysis` or a Dataset), else an error."""
    if isinstance(analysis, Analysis):
        return analysis.dataset
    if isinstance(analysis, xr.Dataset):
        return analysis
    raise InvalidDataError(
        f"{func} needs a directionkit.Analysis or an xarray.Dataset. "
        f"Got {type(analysis).__name__} instead."
    )


def _variable(ds: xr.Dataset, name: str, func: str) -> xr.DataArray:
    """Variable ``name`` with its schema dims, or an error saying how to get it."""
    if name not in ds.data_vars:
        made_by = _MADE_BY.get(name)
        hint = f" (made by analyze() with 'metrics' including {made_by!r})" if made_by else ""
        present = ", ".join(repr(str(v)) for v in ds.data_vars) or "none"
        raise InvalidDataError(
            f"{func} needs the variable {name!r}{hint}, which this analysis does not have. "
            f"Its variables are: {present}."
        )
    array = ds[name]
    expected = SCHEMA.get(name)
    if expected is not None and tuple(array.dims) != expected:
        extra = [d for d in array.dims if d not in expected]
        hint = f"; select one first, e.g. ds.isel({extra[0]}=0)" if extra else ""
        raise InvalidDataError(
            f"{func} draws one analysis: the variable {name!r} must have dims {expected}. "
            f"Got {tuple(array.dims)} instead{hint}."
        )
    return array


def _coordinate(array: xr.DataArray, dim: str) -> np.ndarray:
    """Values of the coordinate along ``dim``, or 0..n-1 when there is none."""
    if dim in array.coords:
        return np.asarray(array[dim].values)
    return np.arange(array.sizes[dim])


def site_groups(array: xr.DataArray) -> list[tuple[str, np.ndarray]]:
    """``(site, mask over unit)`` per site, in the order the units are laid out (depth).

    Units without a ``site`` coordinate form one group, ``"all units"``.
    """
    if "site" not in array.coords:
        return [("all units", np.ones(array.sizes["unit"], dtype=bool))]
    labels = np.asarray(array["site"].values).astype(str)
    return [(site, labels == site) for site in dict.fromkeys(labels.tolist())]


def site_label(ds: xr.Dataset, site: str) -> str:
    """A site's label for a reader: name, layer type and width, e.g. ``fc1 · ReLU · 512 units``.

    Built from ``attrs["site_info"]`` (recorded by :func:`directionkit.analyze`); a
    site without it is labelled by its name alone.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(attrs={"site_info": {"features.4": {"kind": "conv", "n_units": 128,
    ...                                                       "op": "ReLU"}}})
    >>> site_label(ds, "features.4"), site_label(ds, "other")
    ('features.4 · ReLU · 128 ch', 'other')
    """
    return _literal(site_text(ds, site))


def n_classes(ds: xr.Dataset) -> int | None:
    """The number of classes: the ``class`` dim, or an ``n_classes`` attr when known."""
    if "class" in ds.sizes:
        return int(ds.sizes["class"])
    parameters = ds.attrs.get("parameters")
    for source in (ds.attrs, parameters if isinstance(parameters, dict) else {}):
        value = source.get("n_classes")
        if isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0:
            return int(value)
    return None


def _band(ax: Axes, x: np.ndarray, samples: np.ndarray, **style: Any) -> None:
    """Mean of ``samples`` (rows: repeats) as a line, mean ± sd as a shaded band.

    The sd is the sample sd (ddof=1) when there are two or more repeats, else 0.
    """
    mean = np.nanmean(samples, axis=0)
    sd = np.nanstd(samples, axis=0, ddof=1) if samples.shape[0] > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, **style)
    ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)


def _chance_line(ax: Axes, ds: xr.Dataset) -> None:
    """The stored chance accuracy (the best constant prediction's), else 1/C."""
    if "chance_accuracy" in ds.data_vars and ds["chance_accuracy"].ndim == 0:
        chance = float(ds["chance_accuracy"])
        ax.axhline(chance, color="0.4", linestyle="--", linewidth=1,
                   label=f"chance ({chance:.3g})", gid="chance")  # fmt: skip
        return
    classes = n_classes(ds)
    if classes is not None:
        ax.axhline(1 / classes, color="0.4", linestyle="--", linewidth=1,
                   label=f"chance (1/{classes})", gid="chance")  # fmt: skip


def _literal(name: object) -> str:
    """A site or scope name as matplotlib text: ``$`` escaped, so it is never mathtext.

    Site names come from users' models; ``"$x_{"`` would otherwise be parsed as math
    and fail when the figure is drawn.

    Examples
    --------
    >>> print(_literal("cost$ $x"))
    cost\\$ \\$x
    """
    return str(name).replace("$", r"\$")


def _rho_text(rho: float) -> str:
    return f"{_RHO} = n/a" if math.isnan(rho) else f"{_RHO} = {rho:+.2f}"


def _site_scatter(
    ds: xr.Dataset, x_name: str, y_names: Sequence[str], func: str, title: str
) -> Figure:
    """One scatter panel per (y variable, site), Spearman rho in each panel's title.

    Each y variable starts a new row of panels; unused grid cells are removed, so the
    figure has exactly ``len(y_names) * n_sites`` axes.
    """
    x = _variable(ds, x_name, func)
    ys = [_variable(ds, name, func) for name in y_names]
    groups = site_groups(x)
    columns = min(len(groups), _MAX_COLUMNS)
    rows_per_measure = math.ceil(len(groups) / columns)
    fig = Figure(figsize=(3.2 * columns, 2.9 * rows_per_measure * len(ys)), layout="constrained")
    grid = fig.subplots(rows_per_measure * len(ys), columns, squeeze=False)
    overall = []
    for block, y in enumerate(ys):
        rho = spearman(x, y)["rho"].values  # over all units, then each site in order
        if rho.size == 1:  # no site coordinate: the one group is every unit
            rho = np.repeat(rho, 2)
        y_label = _LABELS.get(str(y.name), str(y.name))
        overall.append(f"{y_label}: {_rho_text(float(rho[0]))}")
        for i, (site, mask) in enumerate(groups):
            ax = grid[block * rows_per_measure + i // columns, i % columns]
            ax.scatter(x.values[mask], y.values[mask], s=12, alpha=0.7,
                       color=f"C{i % 10}", edgecolors="none")  # fmt: skip
            ax.set_title(f"{site_label(ds, site)}  ({_rho_text(float(rho[i + 1]))})",
                         fontsize=9)  # fmt: skip
            ax.set_xlabel(_LABELS.get(x_name, x_name), fontsize=8)
            ax.set_ylabel(y_label, fontsize=8)
            ax.tick_params(labelsize=7)
        for i in range(len(groups), rows_per_measure * columns):
            grid[block * rows_per_measure + i // columns, i % columns].remove()
    # one line per measure, each wrapped to the figure's width: a title wider than the
    # figure is clipped (a one-site figure is only 3.2 inches wide)
    lines = [title, "Spearman over all units:", *overall]
    fig.suptitle(_wrapped(lines, fig.get_figwidth(), _TITLE_SIZE), fontsize=_TITLE_SIZE)
    return fig


def _wrapped(lines: Sequence[str], width_inches: float, fontsize: float) -> str:
    """``lines`` wrapped to fit ``width_inches`` at ``fontsize`` (an average glyph ~0.55 em)."""
    columns = max(20, int(width_inches * 72 / (0.55 * fontsize)) - 2)
    return "\n".join(part for line in lines for part in textwrap.wrap(line, columns) or [""])


# -- the figures ---------------------------------------------------------------------------
def ablation_curves(analysis: Analysis | xr.Dataset) -> Figure:
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


def population_ablation_curves(analysis: Analysis | xr.Dataset, scope: str = "all") -> Figure:
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


def noise_curve(analysis: Analysis | xr.Dataset) -> Figure:
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


def selectivity_histograms(analysis: Analysis | xr.Dataset) -> Figure:
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
    analysis: Analysis | xr.Dataset, *, measures: Sequence[str] | None = None
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


def selectivity_vs_weight_l1(analysis: Analysis | xr.Dataset) -> Figure:
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


def selectivity_by_depth(analysis: Analysis | xr.Dataset) -> Figure:
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


def plot_analysis(analysis: Analysis | xr.Dataset) -> dict[str, Figure]:
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


# -- several analyses overlaid (directionkit.compare) -------------------------------------
def _model_colors(comparison: Comparison) -> list[Any]:
    """One colour per model: a viridis ramp in the ``by`` order, else the default cycle."""
    from matplotlib import colormaps

    from directionkit.compare import _order

    n = len(comparison.analyses)
    if comparison.by is None:
        return [f"C{i % 10}" for i in range(n)]
    ramp = colormaps["viridis"]
    colors: list[Any] = [None] * n
    for rank, i in enumerate(_order(comparison)):
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
    from directionkit.compare import _order

    colors = _model_colors(comparison)
    labels = [_literal(label) for label in comparison.labels()]  # legend text, never math
    for i in _order(comparison):
        samples = np.asarray(curves.isel(model=int(i)).values, dtype=np.float64)
        ok = ~np.all(np.isnan(samples), axis=0)
        if not ok.any():
            continue
        _band(ax, x[ok], samples[:, ok], color=colors[i], label=labels[i] + suffix(int(i)),
              gid=f"model:{comparison.dataset['model'].values[i]}", marker="o",
              markersize=2.5)  # fmt: skip


def _noise_axis(ax: Axes, scales: np.ndarray) -> None:
    """Log x axis for noise scales; symmetric-log (linear up to the smallest positive
    scale) when the clean scale 0, which has no logarithm, is among them."""
    positive = scales[scales > 0]
    if positive.size == scales.size and positive.size:
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0,
                      linscale=0.5)  # fmt: skip


def compare_ablation_curves(comparison: Comparison, scope: str = "all") -> Figure:
    """Ablation curves of several models in one axes (Fig. 1 of the paper).

    One line per model (mean over orderings) with a band of ± one sd over orderings;
    the legend gives each model's label (and ``by`` value) and its AUC.  With
    ``by``, colours follow its order on a viridis ramp.

    Parameters
    ----------
    comparison : directionkit.compare.Comparison
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
    comparison : directionkit.compare.Comparison

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
    comparison : directionkit.compare.Comparison
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
    from directionkit.compare import _order

    names = list(comparison.analyses)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i in _order(comparison):
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
