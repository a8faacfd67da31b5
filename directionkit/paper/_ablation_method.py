"""``ablation-method`` (Fig. A1): ablating to zero is less damaging than ablating to the
training-set mean; AUC of zero minus mean ablation, paired by network."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._convnets import conv_population, conv_protocol, conv_runs
from directionkit.paper._experiment import Experiment, ProtocolRow
from directionkit.paper._figures import text_values
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    AUC_MARGIN,
    ablation_analysis,
    estimate_text,
    num,
    stack_models,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _method_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = conv_runs(ws)
    zero = {n: ablation_analysis(ws, r, conv=True) for n, r in ws.bar(list(runs.items()), "zero")}
    mean = {
        n: ablation_analysis(ws, r, conv=True, ablate_to="mean")
        for n, r in ws.bar(list(runs.items()), "mean")
    }
    z = stack_models(zero, ["ablation_accuracy", "ablation_auc"], by=["batch_norm"])
    m = stack_models(mean, ["ablation_accuracy", "ablation_auc"], by=["batch_norm"])
    stored = xr.concat(
        [z, m], dim=xr.DataArray(["zero", "mean"], dims="ablate_to", name="ablate_to")
    )
    return stored, conv_population(ws) + " Mean values come from the training data."


def _method_stats(stored: xr.Dataset) -> Stats:
    zero = np.asarray(stored["ablation_auc"].sel(ablate_to="zero").values, dtype=np.float64)
    mean = np.asarray(stored["ablation_auc"].sel(ablate_to="mean").values, dtype=np.float64)
    return {
        **st.difference("zero_minus_mean", zero, mean, paired=True),
        "auc_zero": zero.tolist(),
        "auc_mean": mean.tolist(),
        "models": [str(m) for m in stored["model"].values],
        "fraction_zero_better": float(np.mean(zero > mean)) if zero.size else math.nan,
        "interval": "bootstrap over networks of the paired difference",
    }


def _method_summary(s: Stats) -> str:
    pairs = ", ".join(
        f"{m}: {z:.3f} vs {a:.3f}"
        for m, z, a in zip(s["models"], s["auc_zero"], s["auc_mean"], strict=True)
    )
    return (
        f"AUC (last three layers) zero minus mean ablation = "
        f"{estimate_text(s, 'zero_minus_mean')}; per network {pairs}; zero less damaging in "
        f"{num(100 * s['fraction_zero_better'], 0)}% of networks"
    )


def _method_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    flat = stored.stack(curve=("ablate_to", "model")).transpose("curve", ...)
    kinds = text_values(flat["ablate_to"].values)
    bn = np.asarray(flat["batch_norm"].values, dtype=bool)
    groups = {
        f"{k} ablation, {'with' if b else 'without'} BN": (kinds == k) & (bn == b)
        for k in ("zero", "mean")
        for b in (True, False)
        if np.any((kinds == k) & (bn == b))
    }
    data = xr.Dataset(
        {"ablation_accuracy": flat["ablation_accuracy"].reset_index("curve", drop=True)}
    )
    data = data.rename(curve="model")
    return {
        "ablation_curves": fig.curves(
            data, groups, "Ablation to zero vs to the training-set mean (last three layers)"
        )
    }


def _method_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return conv_protocol(scale, dataset, "one network (not stated)")


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "ablation-method",
    "Fig. A1: zero vs mean ablation",
    "Ablating to zero is less damaging than ablating to the training-set mean.",
    "qualitative: zero-ablation curves above mean-ablation curves (CIFAR-10 ConvNet)",
    all_of(
        [
            Claim(
                "zero_minus_mean",
                "ablation AUC to zero minus to the mean, paired by network",
                direction=+1,
                margin=AUC_MARGIN,
                needs_p=False,
                min_n=4,
            ),
        ]
    ),
    _method_build,
    _method_stats,
    _method_summary,
    _method_figures,
    _method_protocol,
)
