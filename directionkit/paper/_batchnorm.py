"""``batchnorm`` (Fig. 5b, 6): batch norm makes ConvNets more robust to ablation, lowers class
selectivity and raises mutual information; AUC, live-unit selectivity and MI, BN minus none."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._convnets import conv_population, conv_protocol, conv_runs
from directionkit.paper._experiment import Experiment
from directionkit.paper._figures import text_values
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._shared import (
    AUC_MARGIN,
    CONV_SCOPE,
    ablation_analysis,
    estimate_text,
    floats,
    live_units,
    num,
    stack_models,
    stack_units,
    unit_mask,
    unit_measures,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _batchnorm_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = conv_runs(ws)
    curves = {
        n: ablation_analysis(ws, r, conv=True) for n, r in ws.bar(list(runs.items()), "ConvNets")
    }
    units = {n: unit_measures(ws, r) for n, r in runs.items()}
    stored = stack_models(
        curves,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["batch_norm", "seed", "train_accuracy", "test_accuracy"],
    )
    per_unit = stack_units(units, ["selectivity", "mutual_info", "unit_std"])
    stored = xr.merge([stored, per_unit.rename(unit="unit_all")], compat="override")
    return stored, conv_population(ws)


def _per_network_means(stored: xr.Dataset, name: str, mask: np.ndarray) -> np.ndarray:
    """The mean of ``name`` over each network's units in ``mask``."""
    values = floats(stored, name)
    models = text_values(stored["unit_model"].values)
    return np.array(
        [
            np.nanmean(values[mask & (models == m)]) if np.any(mask & (models == m)) else math.nan
            for m in dict.fromkeys(models[mask].tolist())
        ]
    )


def _batchnorm_stats(stored: xr.Dataset) -> Stats:
    bn = np.asarray(stored["batch_norm"].values, dtype=bool)
    auc = floats(stored, "ablation_auc")
    live = live_units(stored)
    with_bn, without = unit_mask(stored, "bn-"), unit_mask(stored, "nobn-")
    test = floats(stored, "test_accuracy")
    sel_bn = _per_network_means(stored, "selectivity", with_bn & live)
    sel_no = _per_network_means(stored, "selectivity", without & live)
    mi_bn = _per_network_means(stored, "mutual_info", with_bn & live)
    mi_no = _per_network_means(stored, "mutual_info", without & live)
    return {
        **st.difference("auc_difference", auc[bn], auc[~bn]),
        **st.difference("selectivity_difference", sel_bn, sel_no),
        **st.difference("mi_difference", mi_bn, mi_no),
        "auc_bn": float(auc[bn].mean()) if bn.any() else math.nan,
        "auc_nobn": float(auc[~bn].mean()) if (~bn).any() else math.nan,
        "selectivity_bn": float(np.mean(sel_bn)) if sel_bn.size else math.nan,
        "selectivity_nobn": float(np.mean(sel_no)) if sel_no.size else math.nan,
        "mi_bn": float(np.mean(mi_bn)) if mi_bn.size else math.nan,
        "mi_nobn": float(np.mean(mi_no)) if mi_no.size else math.nan,
        "dead_bn": float(np.mean(~live[with_bn])) if with_bn.any() else math.nan,
        "dead_nobn": float(np.mean(~live[without])) if without.any() else math.nan,
        "test_accuracy_bn": float(test[bn].mean()) if bn.any() else math.nan,
        "test_accuracy_nobn": float(test[~bn].mean()) if (~bn).any() else math.nan,
        "interval": "bootstrap over the networks of each arm (per-network means over live "
        "units for selectivity and MI)",
    }


def _batchnorm_summary(s: Stats) -> str:
    return (
        f"AUC (last three layers) with minus without BN = {estimate_text(s, 'auc_difference')}"
        f" ({num(s['auc_bn'])} vs {num(s['auc_nobn'])}); live-unit selectivity difference = "
        f"{estimate_text(s, 'selectivity_difference')} ({num(s['selectivity_bn'])} vs "
        f"{num(s['selectivity_nobn'])}); live-unit MI difference = "
        f"{estimate_text(s, 'mi_difference')} bits ({num(s['mi_bn'])} vs {num(s['mi_nobn'])});"
        f" dead units {num(100 * s['dead_bn'], 1)}% with BN vs {num(100 * s['dead_nobn'], 1)}%"
        f" without; test accuracy {num(s['test_accuracy_bn'])} vs {num(s['test_accuracy_nobn'])}"
    )


def _batchnorm_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = {"with BN": np.asarray(stored["batch_norm"].values, dtype=bool)}
    groups["without BN"] = ~groups["with BN"]
    live = live_units(stored)
    arms = [
        ("with BN (live units)", unit_mask(stored, "bn-") & live),
        ("without BN (live units)", unit_mask(stored, "nobn-") & live),
    ]
    return {
        "ablation_curves": fig.curves(
            stored, groups, "Batch norm: cumulative ablation of the last three layers"
        ),
        "ablation_curves_per_network": fig.per_network(stored, "batch_norm", scope=CONV_SCOPE),
        "selectivity_mi": fig.histograms(
            stored,
            ["selectivity", "mutual_info"],
            f"Class selectivity and MI of live units (dead: {num(100 * s['dead_bn'], 1)}% with "
            f"BN, {num(100 * s['dead_nobn'], 1)}% without; test data)",
            arms,
            {"selectivity": "class selectivity", "mutual_info": "mutual information (bits)"},
        ),
    }


_BN_CLAIMS = (
    Claim(
        "auc_difference",
        "ablation AUC of the last three layers, with minus without BN",
        direction=+1,
        margin=AUC_MARGIN,
        needs_p=False,
    ),
    Claim(
        "selectivity_difference",
        "mean class selectivity of live units, with minus without BN",
        direction=-1,
        margin=AUC_MARGIN,
        needs_p=False,
    ),
    Claim(
        "mi_difference",
        "mean mutual information of live units (bits), with minus without BN",
        direction=+1,
        margin=AUC_MARGIN,
        needs_p=False,
    ),
)


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "batchnorm",
    "Fig. 5b and Fig. 6: batch normalisation",
    "Batch norm makes ConvNets more robust to ablation, lowers class selectivity and "
    "raises mutual information.",
    "qualitative: BN curves above no-BN (4 instances each); BN selectivity lower, MI higher",
    all_of(
        _BN_CLAIMS,
        lead="Dead units (constant on the test data) are counted and "
        "left out of selectivity and MI.",
    ),
    _batchnorm_build,
    _batchnorm_stats,
    _batchnorm_summary,
    _batchnorm_figures,
    lambda scale, data: conv_protocol(scale, data, "4 instances with and without BN"),
)
