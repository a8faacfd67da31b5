"""``depth`` (Fig. A2): class selectivity increases with depth; Spearman(layer depth, the
layer's mean selectivity)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._convnets import conv_population, conv_protocol, conv_runs
from directionkit.paper._experiment import Experiment, ProtocolRow, protocol_row
from directionkit.paper._figures import text_values
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    estimate_text,
    floats,
    live_units,
    num,
    stack_units,
    unit_measures,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _depth_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = conv_runs(ws, batch_norm=(True,))
    units = {n: unit_measures(ws, r) for n, r in runs.items()}
    return stack_units(units, ["selectivity", "unit_std"]), (
        conv_population(ws) + " Batch-norm nets only."
    )


def _depth_stats(stored: xr.Dataset) -> Stats:
    live = live_units(stored)
    return {
        **st.depth_trend(
            "rho",
            floats(stored, "selectivity")[live],
            text_values(stored["unit_model"].values)[live],
            np.asarray(stored["depth"].values)[live],
        ),
        "dead": float(np.mean(~live)),
        "interval": "two-stage bootstrap: networks, then units within each layer; p permutes "
        "the layer means over depths",
    }


def _depth_summary(s: Stats) -> str:
    means = ", ".join(num(m, 2) for m in s["rho_means"])
    return (
        f"layer depth vs the layer's mean selectivity (live units) rho = "
        f"{estimate_text(s, 'rho')} (layer means {means}); dead units left out: "
        f"{num(100 * s['dead'], 1)}%"
    )


def _depth_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    figure = fig.new_figure(figsize=(6.4, 4.2))
    ax = figure.add_subplot()
    live = live_units(stored)
    depth = np.asarray(stored["depth"].values)[live] + 1
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, depth.size)
    ax.scatter(
        depth + jitter,
        floats(stored, "selectivity")[live],
        s=6,
        alpha=0.4,
        edgecolors="none",
        label="live units",
    )
    ax.plot(
        np.arange(1, len(s["rho_means"]) + 1),
        s["rho_means"],
        color="black",
        marker="o",
        label="layer mean",
    )
    ax.set_xlabel("layer (1 = first)")
    ax.set_ylabel("class selectivity (test data)")
    ax.set_title(
        f"Selectivity by depth, {s['rho_n']} network(s)\nrho = {num(s['rho'])}, 95% "
        f"CI {num(s['rho_ci'][0])} to {num(s['rho_ci'][1])}",
        fontsize=9,
    )
    ax.legend()
    return {"selectivity_by_depth": fig.legend_outside(figure)}


def _depth_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    rows = conv_protocol(
        scale, dataset, "one network (not stated); also ImageNet ResNet", arms="with BN"
    )
    return [r for r in rows if r.aspect not in ("ablation scope", "orderings")] + [
        protocol_row("dead units", "selectivity 0", "left out"),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "depth",
    "Fig. A2: selectivity by depth",
    "Class selectivity increases with depth.",
    "qualitative: selectivity rises with depth (CIFAR-10 ConvNet, ImageNet ResNet)",
    all_of(
        [
            Claim(
                "rho",
                "Spearman rho of layer depth and the layer's mean selectivity",
                direction=+1,
            ),
        ]
    ),
    _depth_build,
    _depth_stats,
    _depth_summary,
    _depth_figures,
    _depth_protocol,
)
