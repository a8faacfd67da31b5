"""The ConvNets of Fig. 5b, 6, 7 and A1-A3, shared by five experiments: the networks (with
and without batch norm), their population and protocol as text, within-layer correlations
over live units, and scatter panels coloured by layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._experiment import CIFAR, ProtocolRow, data_row, protocol_row
from directionkit.paper._figures import text_values
from directionkit.paper._scale import Scale
from directionkit.paper._shared import floats, live_units, unit_mask
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = [
    "L1_VARIABLE",
    "WITHIN",
    "conv_population",
    "conv_protocol",
    "conv_runs",
    "layer_scatter",
    "pooled_rho",
    "within_layer_rho",
]


#: The per-unit L1 variable of A3: the raw filter norm, the paper's quantity (the
#: BN-folded norm is ``weight_l1_folded``).
L1_VARIABLE = "weight_l1"
WITHIN = "mean within-layer Spearman rho of {x} and {y}, {family}"


def conv_runs(ws: Workspace, batch_norm: Sequence[bool] = (True, False)) -> dict[str, Any]:
    """The ConvNets' training runs by name (``bn-s0``, ``nobn-s0``, ...), trained or reused."""
    s = ws.scale
    runs = {}
    for bn in batch_norm:
        for instance in range(s.conv_instances):
            config = ws.config(
                model="convnet",
                batch_norm=bn,
                width=s.conv_width,
                epochs=s.conv_epochs,
                lr=s.conv_lr,
                seed=instance,
            )
            if s.conv_train_limit is not None:
                config["train_limit"] = s.conv_train_limit
            runs[f"{'bn' if bn else 'nobn'}-s{instance}"] = ws.train(config, "convnet")
    return runs


def conv_population(ws: Workspace) -> str:
    """The ConvNets' population, as text."""
    s = ws.scale
    return (
        f"11-layer ConvNets (width x {s.conv_width:g}) on {ws.dataset}, with and without "
        f"batch norm, {s.conv_instances} instance(s) each, {s.conv_epochs} epochs (Adam, "
        f"{'' if s.conv_train_limit is None else f'{s.conv_train_limit} training images, '}"
        f"lr {s.conv_lr:g}); ablation curves of the feature maps of the last three layers "
        f"on the training data ({s.conv_orderings} orderings), per-unit measures on the "
        "test data. A unit whose activity is constant on the test data is dead: counted, "
        "and left out of selectivity and MI statistics."
    )


def conv_protocol(
    scale: Scale, dataset: str, population: str, arms: str = "with and without BN"
) -> list[ProtocolRow]:
    """The ConvNets' protocol beside the paper's (``population``: the paper's)."""
    return [
        data_row(dataset, CIFAR, scale.conv_train_limit or scale.train_limit, scale.test_limit),
        protocol_row(
            "model",
            "11-layer ConvNet, 64-512 channels",
            f"11-layer ConvNet, {scale.conv_width:g} x the channels",
        ),
        protocol_row("training", "100 epochs", f"{scale.conv_epochs} epochs"),
        protocol_row("population", population, f"{scale.conv_instances} instance(s) {arms}"),
        protocol_row(
            "ablation scope",
            "feature maps of the last three layers",
            "feature maps of the last three layers",
        ),
        protocol_row(
            "orderings", "10 random orderings", f"{scale.conv_orderings} random orderings"
        ),
    ]


def within_layer_rho(stored: xr.Dataset, key: str, prefix: str, x: str, y: str) -> Stats:
    """Mean within-layer Spearman rho of ``x`` and ``y`` over the live units of the
    networks named ``prefix...``, with its interval (:func:`~._statistics.within_layer`)."""
    mask = unit_mask(stored, prefix) & live_units(stored)
    return st.within_layer(
        key,
        floats(stored, x)[mask],
        floats(stored, y)[mask],
        text_values(stored["unit_model"].values)[mask],
        np.asarray(stored["depth"].values)[mask],
    )


def pooled_rho(stored: xr.Dataset, prefix: str, x: str, y: str) -> float:
    """Spearman rho of ``x`` and ``y`` pooled over layers (live units of ``prefix...``)."""
    from directionkit.metrics._resampling import rank_correlation

    mask = unit_mask(stored, prefix) & live_units(stored)
    return rank_correlation(floats(stored, x)[mask], floats(stored, y)[mask])


def layer_scatter(
    stored: xr.Dataset, panels: Sequence[tuple[str, str, str, str]], ylabel: str, title: str
) -> Figure:
    """Scatter panels of ``(label, unit prefix, x variable, y variable)``, coloured by
    layer depth, with a colour bar each."""
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = fig.new_figure(figsize=(6.0 * columns, 4.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    labels = {
        "selectivity": "class selectivity",
        "mutual_info": "mutual information (bits)",
        L1_VARIABLE: "filter L1 norm",
        "importance_loss": "Δ test loss when ablated",
    }
    for ax, (label, prefix, x, y) in zip(axes, panels, strict=False):
        mask = unit_mask(stored, prefix) & live_units(stored)
        depth = np.asarray(stored["depth"].values)[mask] + 1
        points = ax.scatter(
            floats(stored, x)[mask],
            floats(stored, y)[mask],
            c=depth,
            s=9,
            cmap="viridis",
            edgecolors="none",
        )
        figure.colorbar(points, ax=ax, label="layer (1 = first)")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(labels.get(x, x))
        ax.set_ylabel(labels.get(y, ylabel))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=10)
    return figure
