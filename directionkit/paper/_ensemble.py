"""``ensemble`` (Fig. 3): among networks differing only in seed, those that generalise worse
rely more on single directions; Spearman(generalisation error, AUC), best 5 minus worst 5."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._experiment import CIFAR, Experiment, ProtocolRow, data_row, protocol_row
from directionkit.paper._figures import text_values
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    AUC_MARGIN,
    ablation_analysis,
    estimate_text,
    floats,
    num,
    size_text,
    span,
    stack_models,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT"]


def _ensemble_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    analyses = {}
    for seed in ws.bar(list(s.ensemble_seeds), "ensemble"):
        config = ws.config(
            hidden=s.ensemble_hidden,
            corruption=0.0,
            seed=seed,
            epochs=s.memorize_epochs,
            stop_at_train_accuracy=s.memorize_target,
            train_limit=s.ensemble_train_limit,
            test_limit=s.ensemble_test_limit,
        )
        run = ws.train(config, "mlp-ensemble")
        analyses[f"s{seed}"] = ablation_analysis(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["seed", "epoch", "train_accuracy", "test_accuracy"],
    )
    stored["generalisation_error"] = stored["train_accuracy"] - stored["test_accuracy"]
    stored.attrs["test_images"] = _test_images(ws, s.ensemble_test_limit)
    population = (
        f"{len(s.ensemble_seeds)} MLPs {list(s.ensemble_hidden)} of identical topology on "
        f"the same {size_text(s.ensemble_train_limit)} {ws.dataset} training images with their "
        f"true labels, differing only in seed (initialisation and data order), each trained "
        f"until training accuracy >= {s.memorize_target} (at most {s.memorize_epochs} "
        f"epochs). A small training set makes generalisation vary between seeds; "
        f"{size_text(s.ensemble_test_limit)} test images keep the error of measuring it small "
        "(both stated in the numbers). Ablation on the training data."
    )
    return stored, population


def _test_images(ws: Workspace, limit: int | None) -> int:
    from directionkit.reference_models.runs import split_data

    config = ws.config(hidden=(1,), test_limit=limit)
    return len(split_data(config, "test").y)


def _ensemble_stats(stored: xr.Dataset) -> Stats:
    gap = floats(stored, "generalisation_error")
    auc = floats(stored, "ablation_auc")
    test = floats(stored, "test_accuracy")
    order = np.argsort(gap, kind="stable")
    k = min(5, max(1, gap.size // 2))
    best, worst = order[:k], order[-k:]
    n_test = int(stored.attrs.get("test_images", 0)) or 1
    return {
        **st.correlation("rho", gap, auc),
        **st.difference("best_minus_worst", auc[best], auc[worst]),
        "k": k,
        "best_auc": float(auc[best].mean()),
        "worst_auc": float(auc[worst].mean()),
        "best_models": [str(m) for m in stored["model"].values[best]],
        "worst_models": [str(m) for m in stored["model"].values[worst]],
        "gap_range": [float(gap.min()), float(gap.max())],
        "gap_sd": float(gap.std(ddof=1)) if gap.size > 1 else math.nan,
        "measurement_sd": float(np.sqrt(np.mean(test * (1 - test)) / n_test)),
        "test_images": n_test,
        "interval": "bootstrap over networks (rho) and over the networks of each group "
        "(best minus worst); p by permutation",
    }


def _ensemble_summary(s: Stats) -> str:
    return (
        f"generalisation error vs AUC rho = {estimate_text(s, 'rho')} (error "
        f"{span(s['gap_range'][0], s['gap_range'][1], 3)}, sd {num(s['gap_sd'])} between "
        f"networks; one network's test accuracy has a sampling sd of "
        f"{num(s['measurement_sd'])} on its {s['test_images']} test images, shared by all); "
        f"best-{s['k']} "
        f"minus worst-{s['k']} AUC = {estimate_text(s, 'best_minus_worst')} "
        f"({s['best_auc']:.3f} vs {s['worst_auc']:.3f})"
    )


def _ensemble_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    models = text_values(stored["model"].values)
    groups = {
        f"best {s['k']} (lowest generalisation error)": np.isin(models, s["best_models"]),
        f"worst {s['k']}": np.isin(models, s["worst_models"]),
    }
    return {
        "best_worst_curves": fig.curves(stored, groups, "Best vs worst generalising networks"),
        "auc_vs_generalisation": fig.scatter(
            stored["generalisation_error"].values,
            stored["ablation_auc"].values,
            "generalisation error (training - test accuracy)",
            "ablation AUC (training data)",
            f"AUC vs generalisation error over {s['rho_n']} seeds\n(rho = {num(s['rho'])}, "
            f"95% CI {num(s['rho_ci'][0])} to {num(s['rho_ci'][1])})",
            floats(stored, "test_accuracy"),
            "test accuracy",
        ),
    }


def _ensemble_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        data_row(
            dataset, CIFAR + ", true labels", scale.ensemble_train_limit, scale.ensemble_test_limit
        ),
        protocol_row(
            "model",
            "11-layer ConvNet, last three layers ablated",
            f"MLP {list(scale.ensemble_hidden)}, every unit ablated",
        ),
        protocol_row(
            "population",
            "200 networks differing only in seed",
            f"{len(scale.ensemble_seeds)} networks differing only in seed",
        ),
        protocol_row(
            "training",
            "100 epochs",
            f"until training accuracy >= {scale.memorize_target} "
            f"(at most {scale.memorize_epochs} epochs)",
        ),
        protocol_row("orderings", "10 random orderings", f"{scale.orderings} random orderings"),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "ensemble",
    "Fig. 3: generalisation across an ensemble",
    "Among networks that differ only in seed, those that generalise worse rely more "
    "on single directions: AUC falls with generalisation error, and the best 5 are "
    "more robust than the worst 5.",
    "qualitative: negative relation of AUC and generalisation error (200 CIFAR-10 "
    "nets differing only in seed); best 5 above worst 5",
    all_of(
        [
            Claim(
                "rho",
                "Spearman rho of generalisation error and ablation AUC over "
                "networks differing only in seed",
                direction=-1,
                min_n=10,
            ),
            Claim(
                "best_minus_worst",
                "ablation AUC of the best 5 minus the worst 5 by generalisation error",
                direction=+1,
                margin=AUC_MARGIN,
                needs_p=False,
            ),
        ]
    ),
    _ensemble_build,
    _ensemble_stats,
    _ensemble_summary,
    _ensemble_figures,
    _ensemble_protocol,
)
