"""``l1`` (Fig. A3): class selectivity is unrelated or negatively related to the L1 norm of
the filter weights; within-layer Spearman(selectivity, filter L1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

from directionkit.paper._convnets import (
    L1_VARIABLE,
    WITHIN,
    conv_population,
    conv_protocol,
    conv_runs,
    layer_scatter,
    pooled_rho,
    within_layer_rho,
)
from directionkit.paper._experiment import Experiment, ProtocolRow, protocol_row
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import estimate_text, num, stack_units, unit_measures
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _l1_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = conv_runs(ws)
    units = {n: unit_measures(ws, r) for n, r in runs.items()}
    return stack_units(units, ["selectivity", L1_VARIABLE, "unit_std"]), (
        conv_population(ws) + f" L1 variable: {L1_VARIABLE!r} (the raw filter norm); "
        "correlations within each layer of each network."
    )


def _l1_stats(stored: xr.Dataset) -> Stats:
    stats: Stats = {}
    for family, prefix in (("bn", "bn-"), ("nobn", "nobn-")):
        stats.update(within_layer_rho(stored, family, prefix, "selectivity", L1_VARIABLE))
        stats[f"pooled_{family}"] = pooled_rho(stored, prefix, "selectivity", L1_VARIABLE)
    stats["interval"] = (
        "two-stage bootstrap: networks, then units within each layer of each network"
    )
    return stats


def _l1_summary(s: Stats) -> str:
    return (
        f"mean within-layer rho of selectivity with filter L1: with BN "
        f"{estimate_text(s, 'bn')}, without BN {estimate_text(s, 'nobn')}; pooled over "
        f"layers (confounded by depth): {num(s['pooled_bn'])} and {num(s['pooled_nobn'])}"
    )


def _l1_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    panels = [
        (f"{label}: within-layer rho {num(s[key])}", prefix, "selectivity", L1_VARIABLE)
        for label, prefix, key in (("with BN", "bn-", "bn"), ("without BN", "nobn-", "nobn"))
    ]
    return {
        "selectivity_vs_l1": layer_scatter(
            stored, panels, "filter L1 norm", "Selectivity vs filter L1 norm, live units"
        )
    }


def _l1_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    rows = conv_protocol(scale, dataset, "one network (not stated); also ImageNet ResNet")
    return [r for r in rows if r.aspect not in ("ablation scope", "orderings")] + [
        protocol_row(
            "statistic",
            "Spearman rho pooled over layers",
            "mean within-layer Spearman rho (pooled rho reported beside it)",
        ),
        protocol_row("dead units", "selectivity 0", "left out"),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "l1",
    "Fig. A3: selectivity vs filter L1 norm",
    "Class selectivity is unrelated or negatively related to the L1 norm of the filter weights.",
    "qualitative: no correlation (ImageNet), negative (CIFAR-10)",
    all_of(
        [
            Claim(
                key,
                WITHIN.format(x="selectivity", y="filter L1", family=family),
                kind="below",
            )
            for family, key in (("with BN", "bn"), ("without BN", "nobn"))
        ]
    ),
    _l1_build,
    _l1_stats,
    _l1_summary,
    _l1_figures,
    _l1_protocol,
)
