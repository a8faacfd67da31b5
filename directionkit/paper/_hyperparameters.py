"""``hyperparameters`` (Fig. 4c): across a learning-rate x batch-size grid, AUC and test
accuracy are correlated, so AUC picks good settings; Spearman(AUC, test accuracy), selection gap."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._experiment import CIFAR, Experiment, ProtocolRow, data_row, protocol_row
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    ablation_analysis,
    estimate_text,
    floats,
    num,
    span,
    stack_models,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT", "GAP_BOUND", "SUBSET_SHARE"]


#: Hyperparameter settings each random sub-selection holds, as a share of the grid (the
#: paper: 48 of 96).
SUBSET_SHARE = 0.5


def _hp_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    grid = [(lr, b, r) for lr in s.hp_lrs for b in s.hp_batch_sizes for r in range(s.hp_repeats)]
    analyses = {}
    for lr, batch, repeat in ws.bar(grid, "hyperparameter grid"):
        config = ws.config(
            hidden=s.hp_hidden,
            optimizer="sgd",
            lr=lr,
            batch_size=batch,
            seed=100 + repeat,
            epochs=s.hp_epochs,
        )
        run = ws.train(config, "mlp-hyper")
        analyses[f"lr{lr:g}-b{batch}-r{repeat}"] = ablation_analysis(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_auc"],
        by=["lr", "batch_size", "seed", "test_accuracy", "train_accuracy"],
    )
    stored.attrs["subsets"] = s.hp_subsets
    population = (
        f"{len(grid)} MLPs {list(s.hp_hidden)} on {ws.dataset}, SGD (momentum 0.9) for "
        f"{s.hp_epochs} epochs over learning rate {list(s.hp_lrs)} x batch size "
        f"{list(s.hp_batch_sizes)} x {s.hp_repeats} repeats; AUC on the training data. "
        "Networks whose training accuracy is not clearly above chance are left out before "
        "any statistic (and counted)."
    )
    return stored, population


#: The largest mean test-accuracy gap to the best setting that counts as the paper's
#: "1 ± 1.1%" (its mean plus about two of its sds).
GAP_BOUND = 0.03


def _settings(stored: xr.Dataset, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    auc, test = floats(stored, "ablation_auc"), floats(stored, "test_accuracy")
    settings = list(
        zip(stored["lr"].values.tolist(), stored["batch_size"].values.tolist(), strict=True)
    )
    keys = list(dict.fromkeys(s for s, k in zip(settings, keep, strict=True) if k))
    masks = [np.array([s == k for s in settings]) & keep for k in keys]
    mean_auc = np.array([auc[m].mean() for m in masks])
    mean_test = np.array([test[m].mean() for m in masks])
    return mean_auc, mean_test, keys


def _selection(
    mean_auc: np.ndarray, mean_test: np.ndarray, subsets: int, seed: int = 0
) -> dict[str, float]:
    """AUC's pick in random half-size subsets: its global test-accuracy rank among every
    setting, and its test-accuracy gap to the best of the subset; also a random pick's gap."""
    n = mean_auc.size
    size = max(2, round(n * SUBSET_SHARE))
    rng = np.random.default_rng(seed)
    # global rank: 1 + how many settings in the whole population beat it on test accuracy
    rank = 1 + (mean_test[None, :] > mean_test[:, None]).sum(axis=1)
    ranks, gaps, random_gaps = [], [], []
    for _ in range(subsets):
        chosen = rng.choice(n, size=size, replace=False)
        picked = chosen[int(np.argmax(mean_auc[chosen]))]
        ranks.append(rank[picked])
        gaps.append(mean_test[chosen].max() - mean_test[picked])
        random_gaps.append(mean_test[chosen].max() - mean_test[rng.choice(chosen)])
    r = np.asarray(ranks)
    return {
        "top1": float((r <= 1).mean()),
        "top5": float((r <= 5).mean()),
        "top10": float((r <= 10).mean()),
        "gap": float(np.mean(gaps)),
        "gap_sd": float(np.std(gaps)),
        "random_gap": float(np.mean(random_gaps)),
        "subset_size": size,
    }


def _hp_stats(stored: xr.Dataset) -> Stats:
    subsets = int(stored.attrs.get("subsets", 1000))
    near = (
        np.asarray(stored["near_chance"].values, dtype=bool)
        if "near_chance" in stored
        else (np.zeros(stored.sizes["model"], dtype=bool))
    )
    keep = ~near
    auc, test = floats(stored, "ablation_auc"), floats(stored, "test_accuracy")
    mean_auc, mean_test, keys = _settings(stored, keep)
    chosen = _selection(mean_auc, mean_test, subsets) if len(keys) >= 2 else {}
    # the interval of the gap: settings resampled with replacement, the selection redone
    rng = np.random.default_rng(1)
    boot = []
    if len(keys) >= 4:
        for _ in range(200):
            pick = rng.integers(0, len(keys), len(keys))
            boot.append(_selection(mean_auc[pick], mean_test[pick], 100, seed=int(_))["gap"])
    gap_ci = (
        [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]
        if boot
        else [math.nan, math.nan]
    )
    return {
        **st.correlation("rho", auc[keep], test[keep]),
        "gap": chosen.get("gap", math.nan),
        "gap_ci": gap_ci,
        "gap_n": len(keys),
        "gap_sd": chosen.get("gap_sd", math.nan),
        "random_gap": chosen.get("random_gap", math.nan),
        "top1": chosen.get("top1", math.nan),
        "top5": chosen.get("top5", math.nan),
        "top10": chosen.get("top10", math.nan),
        "subset_size": chosen.get("subset_size", 0),
        "n_settings": len(keys),
        "n_models": int(keep.sum()),
        "left_out": [str(m) for m in stored["model"].values[near]],
        "test_accuracy_range": [float(test[keep].min()), float(test[keep].max())]
        if keep.any()
        else [math.nan, math.nan],
        "interval": "rho: bootstrap over networks, p by permutation; gap: bootstrap over "
        "settings (the sub-selection redone in each resample)",
    }


def _hp_summary(s: Stats) -> str:
    low, high = s["test_accuracy_range"]
    left = (
        f"{len(s['left_out'])} network(s) at chance left out ({', '.join(s['left_out'])})"
        if s["left_out"]
        else "no network at chance"
    )
    return (
        f"AUC vs test accuracy over {s['n_models']} networks rho = {estimate_text(s, 'rho')}"
        f" (test accuracy {span(low, high, 3)}; {left}); in random "
        f"{s['subset_size']}-of-{s['n_settings']} sub-selections AUC's pick is among the "
        f"global top-1/5/10 settings in {num(100 * s['top1'], 0)}/{num(100 * s['top5'], 0)}/"
        f"{num(100 * s['top10'], 0)}% and its test-accuracy gap to the best is "
        f"{estimate_text(s, 'gap')} (sd {num(s['gap_sd'])}; a random pick: "
        f"{num(s['random_gap'])})"
    )


def _hp_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    near = set(s["left_out"])
    keep = np.array([str(m) not in near for m in stored["model"].values])
    return {
        "auc_vs_test_accuracy": fig.scatter(
            floats(stored, "ablation_auc")[keep],
            floats(stored, "test_accuracy")[keep],
            "ablation AUC (training data)",
            "test accuracy",
            f"Hyperparameter grid: {s['n_models']} networks ({len(near)} at chance left "
            f"out)\nrho = {num(s['rho'])}, 95% CI {num(s['rho_ci'][0])} to {num(s['rho_ci'][1])}",
            np.log10(floats(stored, "lr")[keep]),
            "log10 learning rate",
        )
    }


def _hp_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    settings = len(scale.hp_lrs) * len(scale.hp_batch_sizes)
    return [
        data_row(dataset, CIFAR, scale.train_limit, scale.test_limit),
        protocol_row("model", "11-layer ConvNet", f"MLP {list(scale.hp_hidden)}"),
        protocol_row(
            "population",
            "96 settings (learning rate x batch size) x 2 repeats",
            f"{settings} settings x {scale.hp_repeats} repeats",
        ),
        protocol_row("training", "100 epochs", f"{scale.hp_epochs} epochs of SGD"),
        protocol_row(
            "sub-selections",
            "48 of 96 settings",
            f"{max(2, round(settings * SUBSET_SHARE))} of {settings} settings",
        ),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "hyperparameters",
    "Fig. 4c: hyperparameter selection",
    "Across a learning-rate x batch-size grid, AUC and test accuracy are highly "
    "correlated, so AUC picks good settings without a test set.",
    "Spearman rho(AUC, test accuracy) = 0.914; top-1/5/10 in 13/83/98% of 48-setting "
    "subsets; gap to best 1 ± 1.1%",
    all_of(
        [
            Claim(
                "rho",
                "Spearman rho of ablation AUC and test accuracy over the networks above chance",
                direction=+1,
                paper=0.914,
                min_n=10,
            ),
            Claim(
                "gap",
                "mean test-accuracy gap between the setting AUC picks and the "
                "best setting of random half-size sub-selections",
                kind="below",
                margin=GAP_BOUND,
                min_n=4,
            ),
        ],
        lead="Networks whose training accuracy is not clearly above chance are left out first.",
    ),
    _hp_build,
    _hp_stats,
    _hp_summary,
    _hp_figures,
    _hp_protocol,
)
