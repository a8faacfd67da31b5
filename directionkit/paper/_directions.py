"""``directions`` (beyond the paper; issue 25): do memorising networks rely more on single
*directions* in every basis, or only on single units?  The memorising MLPs of Fig. 1,
ablated cumulatively along their units, Haar-random rotations and principal components.

The paper defines a single direction as "the activation of a single unit or feature map or
some linear combination of units", but ablates units only (Fig. 2's noise is the one test
along random directions).  The rule below was written and committed before any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._experiment import Experiment, ProtocolRow, protocol_row
from directionkit.paper._memorising import by_level, memorising_protocol, memorising_runs
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    MLP_SCOPE,
    MLP_SCOPES,
    estimate_text,
    floats,
    model_groups,
    n_seeds,
    stack_models,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure

__all__ = ["BASES", "EXPERIMENT"]

#: The bases compared, in order: the units (the paper's), a random rotation of them at
#: every layer (seeded), and the principal components of each layer's training activity.
BASES = ("units", "random", "pca")


def _key(basis: str) -> str:
    return f"rho_{basis.replace('-', '_')}"


def _along_bases(ws: Workspace, run: Path) -> xr.Dataset:
    """One network's cumulative ablation curves on its training data, along each basis."""
    s = ws.scale
    parts = []
    for basis in BASES:
        extra: dict[str, Any] = {} if basis == "units" else {"directions": basis}
        analysis = ws.analyze(
            run, split="train", metrics=["ablation"], scopes=MLP_SCOPES,
            orderings=s.orderings, fractions=s.fractions, **extra,
        ).sel(scope=MLP_SCOPE)  # fmt: skip
        parts.append(analysis)
    curves = ["ablation_accuracy", "ablation_auc"]
    stacked = xr.concat(
        [p[curves].drop_attrs().reset_coords(drop=True) for p in parts], dim="basis",
        coords="minimal", compat="override",
    ).assign_coords(basis=list(BASES))  # fmt: skip
    for clean in ("accuracy", "chance_accuracy", "near_chance"):  # whatever the basis
        stacked[clean] = parts[0][clean].reset_coords(drop=True)
    stacked.attrs = parts[0].attrs
    return stacked


def _population(ws: Workspace) -> tuple[xr.Dataset, str]:
    """The memorising MLPs (trained once, shared with ``corrupted-labels`` and ``noise``),
    each ablated along every basis."""
    s = ws.scale
    analyses = {
        name: _along_bases(ws, run)
        for name, run in memorising_runs(ws, "memorising MLPs along bases")
    }
    stored = stack_models(
        analyses, ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["corruption", "seed", "train_accuracy", "test_accuracy", "epoch"],
    )  # fmt: skip
    population = (
        f"{len(analyses)} MLPs {list(s.hidden)} on {ws.dataset}: label corruption "
        f"{list(s.corruptions)} x {n_seeds(s.seeds)}, each trained until training accuracy "
        f">= {s.memorize_target} (at most {s.memorize_epochs} epochs); cumulative ablation "
        f"of every unit, or every direction of a complete random or PCA basis per layer, on "
        f"the training data with the labels trained on, {s.orderings} orderings."
    )
    return stored, population


def _statistics(stored: xr.Dataset) -> Stats:
    corruption = floats(stored, "corruption")
    levels = sorted(set(corruption.tolist()))
    out: Stats = {"corruptions": levels, "bases": list(BASES)}
    for basis in BASES:
        auc = np.asarray(stored["ablation_auc"].sel(basis=basis).values, np.float64)
        out.update(st.correlation(_key(basis), corruption, auc))
        out[f"mean_auc_{basis}"] = [float(auc[corruption == c].mean()) for c in levels]
    out["interval"] = "bootstrap over networks; p by permutation"
    return out


def _summary(s: Stats) -> str:
    return "; ".join(
        f"{basis}: rho = {estimate_text(s, _key(basis))}, mean AUC by corruption "
        f"{by_level(s, f'mean_auc_{basis}')}"
        for basis in BASES
    )


def _by_basis(stored: xr.Dataset) -> Figure:
    """The mean curve of the true-label and the most corrupted networks along each basis,
    overlaid: colour is the basis, the line style the labels."""
    figure = fig.new_figure(figsize=(7.4, 4.4))
    ax = figure.add_subplot()
    corruption = floats(stored, "corruption")
    xs = floats(stored, "fraction")
    ends = sorted({float(corruption.min()), float(corruption.max())})
    for i, basis in enumerate(BASES):
        values = np.asarray(stored["ablation_accuracy"].sel(basis=basis).values, np.float64)
        for level, style in zip(ends, ("-", "--"), strict=False):
            samples = values[corruption == level].reshape(-1, xs.size)
            ax.plot(xs, np.nanmean(samples, axis=0), color=f"C{i}", linestyle=style,
                    marker="o", markersize=3, label=f"{basis}, {level:g} corrupted")  # fmt: skip
    ax.set_xlabel("fraction of the basis' directions ablated")
    ax.set_xlim(0, 1)
    ax.set_ylabel("training accuracy")
    ax.set_ylim(-0.02, 1.02)
    n = int(np.count_nonzero(corruption == ends[0]))
    ax.set_title("Cumulative ablation along units, random rotations and principal components"
                 f"\n(mean over {n} networks x orderings per curve)", fontsize=9)  # fmt: skip
    ax.legend()
    return fig.legend_outside(figure)


def _figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = model_groups(stored, "corruption", "{:g} corrupted")
    titles = {b: "units" if b == "units" else f"{b} directions" for b in BASES}
    return {
        "ablation_curves_by_basis": _by_basis(stored),
        **{
            f"ablation_curves_{basis}": fig.curves(
                stored.sel(basis=basis), groups, f"Cumulative ablation along {titles[basis]}"
            )
            for basis in BASES
        },
    }


def _protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        *memorising_protocol(scale, dataset, "orderings"),
        protocol_row(
            "directions",
            "units only (single directions defined to include linear combinations of units)",
            "units, a Haar-random rotation of each layer's units, each layer's principal "
            "components on the training data",
        ),
    ]


#: The rule, fixed before any run: the paper's Fig. 1 claim, once per basis.
RULE = all_of(
    [
        Claim(
            _key(basis),
            f"Spearman rho of label corruption and ablation AUC along {basis} over networks",
            direction=-1,
            min_n=6,
        )
        for basis in BASES
    ],
    lead="Memorising networks rely more on single directions in every basis, not only on "
    "single units:",
)

#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "directions",
    "Beyond the paper: single directions along any basis",
    "Networks trained on more corrupted labels lose training accuracy faster as directions "
    "are ablated, along random rotations and principal components as along units.",
    "not tested in the paper (units only; Fig. 2 adds noise along random directions)",
    RULE,
    _population,
    _statistics,
    _summary,
    _figures,
    _protocol,
)
