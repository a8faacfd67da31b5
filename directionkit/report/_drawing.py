"""What every figure shares: reading the variables a figure needs (with errors naming the
metric that makes them), site groups and labels, bands, the chance line, text.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from directionkit.errors import InvalidDataError
from directionkit.metrics import spearman
from directionkit.report._summary import site_text
from directionkit.results import SCHEMA

if TYPE_CHECKING:
    from directionkit.results import HoldsDataset


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



def as_dataset(analysis: HoldsDataset | xr.Dataset, func: str) -> xr.Dataset:
    """The Dataset of ``analysis`` (an :class:`Analysis` or a Dataset), else an error."""
    if isinstance(analysis, xr.Dataset):
        return analysis
    if is_analysis(analysis):
        return analysis.dataset
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
def _noise_axis(ax: Axes, scales: np.ndarray) -> None:
    """Log x axis for noise scales; symmetric-log (linear up to the smallest positive
    scale) when the clean scale 0, which has no logarithm, is among them."""
    positive = scales[scales > 0]
    if positive.size == scales.size and positive.size:
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0,
                      linscale=0.5)  # fmt: skip


def is_analysis(value: object) -> TypeGuard[HoldsDataset]:
    """Whether ``value`` is a :class:`directionkit.Analysis` (which lives on a floor above
    this one, and says so by a class attribute); another object with a ``dataset``, such
    as a sweep's result, is not one."""
    return bool(getattr(type(value), "_directionkit_analysis", False))
