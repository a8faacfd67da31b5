"""``corrupted-labels`` (Fig. 1): networks trained on more corrupted labels lose training
accuracy faster as units are ablated; Spearman(corruption, ablation AUC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

import directionkit.paper._figures as fig
from directionkit.paper._experiment import Experiment
from directionkit.paper._memorising import (
    by_level,
    corruption_stats,
    curve_claim,
    memorising_population,
    memorising_protocol,
)
from directionkit.paper._rules import all_of
from directionkit.paper._shared import estimate_text, floats, model_groups, span
from directionkit.paper._statistics import Stats

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _corrupted_stats(stored: xr.Dataset) -> Stats:
    return corruption_stats(stored, floats(stored, "ablation_auc"), "auc")


def _corrupted_summary(s: Stats) -> str:
    return (
        f"corruption vs ablation AUC rho = {estimate_text(s, 'rho')}; mean AUC by "
        f"corruption {by_level(s, 'mean_auc')}; true > fully corrupted in "
        f"{s['ordered_fraction']:.0%} of seeds; training accuracy "
        f"{span(min(s['train_accuracy']), max(s['train_accuracy']))}"
    )


def _corrupted_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = model_groups(stored, "corruption", "{:g} corrupted")
    return {
        "ablation_curves": fig.curves(stored, groups, "Cumulative ablation by label corruption"),
        "ablation_curves_per_network": fig.per_network(stored, "corruption"),
    }


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "corrupted-labels",
    "Fig. 1: memorisation and single directions",
    "Networks trained on more corrupted labels lose training accuracy faster as "
    "units are ablated (curves not always perfectly ordered).",
    "qualitative: AUC falls with the corrupted fraction (MNIST MLP, CIFAR-10 ConvNet)",
    all_of([curve_claim("ablation AUC")]),
    memorising_population,
    _corrupted_stats,
    _corrupted_summary,
    _corrupted_figures,
    lambda scale, data: memorising_protocol(scale, data, "orderings"),
)
