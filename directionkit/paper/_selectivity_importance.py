"""``selectivity-importance`` (Fig. 7, A4): within layers, a unit's class selectivity (or MI)
does not predict how much the test loss rises when it is ablated; within-layer Spearman."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from directionkit.paper._convnets import (
    WITHIN,
    conv_runs,
    layer_scatter,
    pooled_rho,
    within_layer_rho,
)
from directionkit.paper._experiment import Experiment, ProtocolRow, data_row, protocol_row
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    estimate_text,
    live_units,
    n_seeds,
    num,
    stack_units,
    unit_measures,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _selectivity_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    units = {}
    for seed in s.selectivity_seeds:
        config = ws.config(hidden=s.selectivity_hidden, seed=seed, epochs=s.selectivity_epochs)
        units[f"mlp-s{seed}"] = unit_measures(ws, ws.train(config, "mlp-selectivity"), l1=False)
    runs = conv_runs(ws, batch_norm=(True,))
    units.update({f"conv-{n}": unit_measures(ws, r) for n, r in runs.items()})
    stored = stack_units(units, ["selectivity", "mutual_info", "importance_loss", "unit_std"])
    population = (
        f"{n_seeds(s.selectivity_seeds)} of an MLP {list(s.selectivity_hidden)} on "
        f"{ws.dataset} (true labels, {s.selectivity_epochs} epochs) and the "
        f"{s.conv_instances} batch-norm ConvNet(s) of the batchnorm experiment; importance "
        "= change in test loss when the unit alone is ablated. Correlations are taken "
        "within each layer of each network, over live units."
    )
    return stored, population


def _selectivity_stats(stored: xr.Dataset) -> Stats:
    stats: Stats = {}
    for measure, short in (("selectivity", "sel"), ("mutual_info", "mi")):
        for family, prefix in (("mlp", "mlp-"), ("conv", "conv-")):
            stats.update(
                within_layer_rho(stored, f"{short}_{family}", prefix, measure, "importance_loss")
            )
            stats[f"pooled_{short}_{family}"] = pooled_rho(
                stored, prefix, measure, "importance_loss"
            )
    stats["dead"] = float(np.mean(~live_units(stored)))
    stats["interval"] = (
        "two-stage bootstrap: networks, then units within each layer of each network"
    )
    return stats


def _selectivity_summary(s: Stats) -> str:
    def layers(key: str) -> str:
        return ", ".join(num(v, 2) for v in s[f"{key}_by_layer"])

    return (
        f"mean within-layer rho of importance with selectivity: MLP "
        f"{estimate_text(s, 'sel_mlp')}, ConvNet {estimate_text(s, 'sel_conv')} (ConvNet "
        f"layers {layers('sel_conv')}); with MI: MLP {estimate_text(s, 'mi_mlp')}, ConvNet "
        f"{estimate_text(s, 'mi_conv')}; pooled over layers (the paper's number): "
        f"selectivity MLP {num(s['pooled_sel_mlp'])}, ConvNet {num(s['pooled_sel_conv'])}; "
        f"dead units left out: {num(100 * s['dead'], 1)}%"
    )


def _selectivity_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    panels = [
        (
            f"{family}: within-layer rho {num(s[f'{short}_{key}'])}",
            prefix,
            measure,
            "importance_loss",
        )
        for measure, short in (("selectivity", "sel"), ("mutual_info", "mi"))
        for family, prefix, key in (("MLP", "mlp-", "mlp"), ("ConvNet", "conv-", "conv"))
    ]
    return {
        "selectivity_vs_importance": layer_scatter(
            stored,
            panels,
            "Δ test loss when ablated",
            "Selectivity and MI vs importance, live units on the test data",
        )
    }


def _selectivity_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        data_row(
            dataset,
            "MNIST (MLP), CIFAR-10 (ConvNet), ImageNet (ResNet-50)",
            scale.train_limit,
            scale.test_limit,
        ),
        protocol_row(
            "models",
            "an MLP of 128 units per layer (640 epochs), an 11-layer ConvNet, a ResNet-50",
            f"{n_seeds(scale.selectivity_seeds)} of an MLP "
            f"{list(scale.selectivity_hidden)} ({scale.selectivity_epochs} epochs), "
            f"{scale.conv_instances} ConvNet(s) x {scale.conv_width:g} width "
            f"({scale.conv_epochs} epochs), no ResNet",
        ),
        protocol_row(
            "statistic",
            "Spearman rho pooled over layers, and a regression per layer",
            "mean within-layer Spearman rho (the pooled rho reported beside it)",
        ),
        protocol_row("dead units", "selectivity 0", "left out (counted)"),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "selectivity-importance",
    "Fig. 7 and A4: selectivity vs importance",
    "Within layers, a unit's class selectivity (or MI) is no better a predictor of "
    "how much the test loss rises when it is ablated (no positive relation).",
    "Spearman rho(selectivity, importance) = 0.095 (MNIST MLP), -0.428 (CIFAR-10 "
    "ConvNet, driven by early layers; later layers none)",
    all_of(
        [
            Claim(key, WITHIN.format(x=x, y="importance", family=family), kind="below")
            for x, short in (("selectivity", "sel"), ("MI", "mi"))
            for family, key in (("MLP", f"{short}_mlp"), ("ConvNet", f"{short}_conv"))
        ]
    ),
    _selectivity_build,
    _selectivity_stats,
    _selectivity_summary,
    _selectivity_figures,
    _selectivity_protocol,
)
