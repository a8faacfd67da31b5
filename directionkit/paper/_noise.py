"""``noise`` (Fig. 2): networks trained on more corrupted labels are more sensitive to noise
added to every unit; Spearman(corruption, noise robustness)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
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
from directionkit.paper._shared import estimate_text, floats, model_groups
from directionkit.paper._statistics import Stats

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _noise_robustness(stored: xr.Dataset) -> np.ndarray:
    """Mean over positive noise scales of accuracy / clean accuracy, per model."""
    accuracy = stored["noise_accuracy"].mean("repeat")
    scales = floats(stored, "noise_scale")
    clean = floats(stored, "accuracy")
    ratio = np.asarray(accuracy.values, dtype=np.float64) / clean[:, None]
    return ratio[:, scales > 0].mean(axis=1)


def _noise_stats(stored: xr.Dataset) -> Stats:
    return corruption_stats(stored, _noise_robustness(stored), "robustness")


def _noise_summary(s: Stats) -> str:
    return (
        f"corruption vs noise robustness (mean relative training accuracy over noise scales) "
        f"rho = {estimate_text(s, 'rho')}; by corruption {by_level(s, 'mean_robustness')}; "
        f"true > fully corrupted in {s['ordered_fraction']:.0%} of seeds"
    )


def _noise_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = model_groups(stored, "corruption", "{:g} corrupted")
    return {
        "noise_curves": fig.curves(
            stored,
            groups,
            "Noise added to every unit",
            variable="noise_accuracy",
            x="noise_scale",
            log=True,
        ),
        "noise_curves_per_network": fig.per_network(stored, "corruption", noise=True),
    }


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "noise",
    "Fig. 2: noise along random directions",
    "Networks trained on corrupted labels are more sensitive to noise added to every "
    "unit (scaled by the unit's training-set sd).",
    "qualitative: accuracy under noise falls faster with more corrupted labels",
    all_of([curve_claim("noise robustness")]),
    memorising_population,
    _noise_stats,
    _noise_summary,
    _noise_figures,
    lambda scale, data: memorising_protocol(scale, data, "noise repeats"),
)
