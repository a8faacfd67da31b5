"""Figures of the paper's experiments, drawn from their stored numbers.

Conventions a reviewer expects: a colour bar wherever colour encodes a number, legends
outside the axes (never over data), axis labels that say which split an accuracy is on,
titles that state the population the band is over.  matplotlib is imported when a
figure is drawn, not when a store is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["curves", "histograms", "legend_outside", "new_figure", "per_network", "scatter"]


def new_figure(**options: Any) -> Figure:
    """A matplotlib Figure (constrained layout), importing matplotlib now."""
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **options)


def text_values(values: Any) -> np.ndarray:
    """Strings as a numpy ``str`` array (zarr gives them back as numpy's StringDType)."""
    return np.array([str(v) for v in np.asarray(values).ravel()], dtype=str)


def legend_outside(figure: Figure) -> Figure:
    """Move every axes' legend to the right of its axes, where it covers no data."""
    for ax in figure.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        handles = [h for h in legend.legend_handles if h is not None]
        labels = [t.get_text() for t in legend.get_texts()]
        title = legend.get_title().get_text()
        legend.remove()
        ax.legend(
            handles,
            labels,
            title=title or None,
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0.0,
        )
    return figure


def curves(
    stored: xr.Dataset,
    groups: Mapping[str, np.ndarray],
    title: str,
    *,
    marks: Mapping[str, float] | None = None,
    variable: str = "ablation_accuracy",
    x: str = "fraction",
    log: bool = False,
    ylabel: str = "training accuracy",
) -> Figure:
    """Mean ± sd of the curves of each group of models; the title gets what the band is
    over (networks x orderings or repeats, counted from the data)."""
    fig = new_figure(figsize=(7.4, 4.4))
    ax = fig.add_subplot()
    xs = np.asarray(stored[x].values, dtype=np.float64)
    spread = [d for d in stored[variable].dims if d not in ("model", "curve", x)]
    per_model = int(np.prod([stored.sizes[d] for d in spread])) if spread else 1
    counts = set()
    for i, (label, mask) in enumerate(groups.items()):
        values = np.asarray(stored[variable].values[mask], dtype=np.float64)
        samples = values.reshape(-1, xs.size)
        counts.add(int(np.count_nonzero(mask)))
        mean = np.nanmean(samples, axis=0)
        sd = np.nanstd(samples, axis=0, ddof=1) if samples.shape[0] > 1 else 0 * mean
        color = f"C{i % 10}"
        ax.plot(xs, mean, marker="o", markersize=3, color=color, label=label)
        ax.fill_between(xs, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)
        if marks and label in marks:
            ax.axvline(marks[label], color=color, linestyle="--", linewidth=1)
    if log:
        positive = xs[xs > 0]
        ax.set_xscale(
            "symlog", linthresh=float(positive.min()) if positive.size else 1.0, linscale=0.5
        )
        ax.set_xlabel("noise scale (x each unit's sd on the training data)")
    else:
        ax.set_xlabel("fraction of units ablated")
        ax.set_xlim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    nets = "/".join(str(c) for c in sorted(counts))
    over = "orderings" if "ordering" in spread else ("repeats" if spread else "")
    band = f"mean ± sd over {nets} network(s)" + (f" x {per_model} {over}" if over else "")
    ax.set_title(f"{title}\n({band} per curve)", fontsize=9)
    ax.legend()
    return legend_outside(fig)


def scatter(
    x: Any,
    y: Any,
    xlabel: str,
    ylabel: str,
    title: str,
    colors: Any = None,
    clabel: str = "",
) -> Figure:
    """A scatter plot, with a colour bar when ``colors`` encodes a number."""
    fig = new_figure(figsize=(5.6, 4.2))
    ax = fig.add_subplot()
    points = ax.scatter(x, y, c=colors, s=22, cmap="viridis", edgecolors="none")
    if colors is not None:
        fig.colorbar(points, ax=ax, label=clabel)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    return fig


def per_network(stored: xr.Dataset, by: str, noise: bool = False, scope: str = "all") -> Figure:
    """Every network's own curve, drawn by :func:`directionkit.compare` (labelled by ``by``);
    ``scope`` names the units ablated (``"last:3"`` for the ConvNets)."""
    from directionkit.report import compare
    from directionkit.report.plots import compare_ablation_curves, compare_noise_curves

    names = ["accuracy", "noise_accuracy"] if noise else ["ablation_accuracy", "ablation_auc"]
    analyses = {}
    for model in text_values(stored["model"].values):
        one = stored.sel(model=model)[[n for n in names if n in stored.data_vars]]
        one = one.reset_coords(drop=True).drop_attrs()
        if not noise:
            one = one.expand_dims(scope=[scope])
        value = stored[by].sel(model=model).item()
        one.attrs["run_config"] = {by: value.item() if hasattr(value, "item") else value}
        analyses[str(model)] = one
    comparison = compare(analyses, by=by)
    figure = (
        compare_noise_curves(comparison)
        if noise
        else compare_ablation_curves(comparison, scope=scope)
    )
    for ax in figure.axes:
        if ax.get_ylabel() == "accuracy":
            ax.set_ylabel("training accuracy")
    return legend_outside(figure)


def histograms(
    stored: xr.Dataset,
    names: Sequence[str],
    title: str,
    arms: Sequence[tuple[str, np.ndarray]],
    labels: Mapping[str, str],
) -> Figure:
    """Density histograms of per-unit ``names``, one step line per arm."""
    fig = new_figure(figsize=(5.4 * len(names), 3.9))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        values = np.asarray(stored[name].values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        edges = np.histogram_bin_edges(finite if finite.size else [0.0, 1.0], bins=20)
        for i, (label, mask) in enumerate(arms):
            part = values[mask]
            ax.hist(
                part[np.isfinite(part)],
                bins=edges,
                histtype="step",
                linewidth=1.5,
                color=f"C{i}",
                label=label,
                density=True,
            )
        ax.set_xlabel(labels[name])
        ax.set_ylabel("density of units")
        ax.legend()
    fig.suptitle(title, fontsize=10)
    return legend_outside(fig)
