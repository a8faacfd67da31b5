"""``dropout`` (Fig. 5a): networks trained with dropout lose little accuracy up to the dropout
fraction; past it, those trained on shuffled labels fall soon and much more."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
import directionkit.paper._statistics as st
from directionkit.paper._experiment import MNIST, Experiment, ProtocolRow, data_row, protocol_row
from directionkit.paper._rules import Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import (
    AUC_MARGIN,
    ablation_analysis,
    estimate_text,
    floats,
    n_seeds,
    num,
    span,
    stack_models,
)
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["DROPOUT_WINDOW", "EXPERIMENT"]


#: The "soon past the dropout fraction" window of Fig. 5a, in fraction of units.
DROPOUT_WINDOW = 0.2


def _dropout_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    runs = [(d, p, seed) for d in s.dropouts for p in (0.0, 1.0) for seed in s.dropout_seeds]
    analyses = {}
    for dropout, corruption, seed in ws.bar(runs, "dropout MLPs"):
        config = ws.config(
            hidden=s.dropout_hidden,
            dropout=dropout,
            corruption=corruption,
            seed=seed,
            epochs=s.dropout_epochs,
            stop_at_train_accuracy=s.memorize_target,
        )
        run = ws.train(config, "mlp-dropout")
        analyses[f"d{dropout:g}-p{corruption:g}-s{seed}"] = ablation_analysis(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["dropout", "corruption", "seed", "train_accuracy", "epoch"],
    )
    stored.attrs["target"] = s.memorize_target
    population = (
        f"{len(runs)} MLPs {list(s.dropout_hidden)} on {ws.dataset}: dropout "
        f"{list(s.dropouts)} x true / fully shuffled labels x {n_seeds(s.dropout_seeds)}, "
        f"trained until training accuracy >= {s.memorize_target} (at most "
        f"{s.dropout_epochs} epochs); curves on the training data. Networks that did not "
        "reach that accuracy are left out of every statistic (and listed)."
    )
    return stored, population


def _slope(fractions: np.ndarray, curve: np.ndarray, low: float, high: float) -> float:
    """Least-squares slope of the curve (interpolated on 21 points) over [low, high]."""
    if high - low <= 0:
        return math.nan
    grid = np.linspace(low, high, 21)
    return float(np.polyfit(grid, np.interp(grid, fractions, curve), 1)[0])


def _dropout_numbers(stored: xr.Dataset) -> dict[str, np.ndarray]:
    """Per model, on its mean curve normalised by its unablated accuracy: the accuracy
    lost at the dropout fraction, the normalised AUC past it, and the slopes before it
    (over [0, d]) and soon past it (over [d, d + DROPOUT_WINDOW])."""
    fractions = floats(stored, "fraction")
    curves = np.asarray(stored["ablation_accuracy"].mean("ordering").values, dtype=np.float64)
    lost, beyond, before, after = [], [], [], []
    for curve, d in zip(curves, floats(stored, "dropout"), strict=True):
        c = curve / curve[0]
        lost.append(1.0 - float(np.interp(d, fractions, c)))
        grid = np.linspace(d, 1.0, 101)
        beyond.append(float(np.trapezoid(np.interp(grid, fractions, c), grid) / (1.0 - d)))
        before.append(_slope(fractions, c, 0.0, d))
        after.append(_slope(fractions, c, d, min(1.0, d + DROPOUT_WINDOW)))
    return {
        "lost": np.asarray(lost),
        "beyond": np.asarray(beyond),
        "before": np.asarray(before),
        "after": np.asarray(after),
    }


def _dropout_stats(stored: xr.Dataset) -> Stats:
    numbers = _dropout_numbers(stored)
    dropouts = floats(stored, "dropout")
    shuffled = floats(stored, "corruption") > 0
    train = floats(stored, "train_accuracy")
    target = float(stored.attrs.get("target", 0.99))
    kept = train >= target - 1e-9
    models = [str(m) for m in stored["model"].values]
    levels = sorted(set(dropouts.tolist()))
    # true minus shuffled AUC past the dropout fraction, averaged over dropout levels
    true_b = [numbers["beyond"][kept & ~shuffled & (dropouts == d)] for d in levels]
    shuf_b = [numbers["beyond"][kept & shuffled & (dropouts == d)] for d in levels]
    pairs = [(t, u) for t, u in zip(true_b, shuf_b, strict=True) if t.size and u.size]

    def mean_gap(*arms: np.ndarray) -> float:
        half = len(arms) // 2
        return float(
            np.mean([a.mean() - b.mean() for a, b in zip(arms[:half], arms[half:], strict=True)])
        )

    if pairs:
        arms = [t for t, _ in pairs] + [u for _, u in pairs]
        point = mean_gap(*arms)
        rng = np.random.default_rng(0)
        boot = [mean_gap(*[a[rng.integers(0, a.size, a.size)] for a in arms]) for _ in range(2000)]
        gap = {
            "true_minus_shuffled": point,
            "true_minus_shuffled_ci": [
                float(np.quantile(boot, 0.025)),
                float(np.quantile(boot, 0.975)),
            ],
            "true_minus_shuffled_n": int(min(a.size for a in arms)),
        }
    else:
        gap = {
            "true_minus_shuffled": math.nan,
            "true_minus_shuffled_ci": [math.nan, math.nan],
            "true_minus_shuffled_n": 0,
        }
    steep = numbers["after"] - numbers["before"]
    return {
        **st.mean("plateau_loss", numbers["lost"][kept]),
        **st.mean("steepening", steep[kept & shuffled]),
        **gap,
        "dropouts": levels,
        "true_auc_beyond": [float(t.mean()) if t.size else math.nan for t in true_b],
        "shuffled_auc_beyond": [float(u.mean()) if u.size else math.nan for u in shuf_b],
        "slope_before": numbers["before"].tolist(),
        "slope_after": numbers["after"].tolist(),
        "lost_at_dropout": numbers["lost"].tolist(),
        "train_accuracy": train.tolist(),
        "left_out": [m for m, k in zip(models, kept, strict=True) if not k],
        "models": models,
        "target": target,
        "interval": "bootstrap over the networks kept (of each dropout level and label "
        "kind for the difference)",
    }


def _dropout_summary(s: Stats) -> str:
    parts = [
        f"{d:g}: true {num(t)} / shuffled {num(u)}"
        for d, t, u in zip(
            s["dropouts"], s["true_auc_beyond"], s["shuffled_auc_beyond"], strict=True
        )
    ]
    kept = (
        [a for m, a in zip(s["models"], s["train_accuracy"], strict=True) if m in s["left_out"]]
        if "models" in s
        else []
    )
    reached = f"; they reached {span(min(kept), max(kept))}" if kept else ""
    left = (
        f"{len(s['left_out'])} network(s) below training accuracy {s['target']:g} left out "
        f"({', '.join(s['left_out'])}{reached})"
        if s["left_out"]
        else f"every network reached training accuracy {s['target']:g}"
    )
    return (
        f"{left}; training accuracy lost by the dropout fraction = "
        f"{estimate_text(s, 'plateau_loss')}; shuffled labels, slope soon past it minus "
        f"slope before it = {estimate_text(s, 'steepening')}; normalised AUC past the "
        f"dropout fraction, {'; '.join(parts)}; true minus shuffled = "
        f"{estimate_text(s, 'true_minus_shuffled')}"
    )


def _dropout_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups, marks = {}, {}
    dropouts, corruption = floats(stored, "dropout"), floats(stored, "corruption")
    for d in sorted(set(dropouts.tolist())):
        for shuffled in (False, True):
            mask = (dropouts == d) & ((corruption > 0) == shuffled)
            if mask.any():
                label = f"dropout {d:g}, {'shuffled' if shuffled else 'true'} labels"
                groups[label] = mask
                marks[label] = d
    return {
        "ablation_curves": fig.curves(
            stored,
            groups,
            "Dropout: cumulative ablation (dashed: dropout fraction)",
            marks=marks,
        )
    }


def _dropout_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        data_row(dataset, MNIST, scale.train_limit, scale.test_limit),
        protocol_row("model", "MLP of 2048 units per layer", f"MLP {list(scale.dropout_hidden)}"),
        protocol_row(
            "training",
            "5000 epochs",
            f"until training accuracy >= {scale.memorize_target} "
            f"(at most {scale.dropout_epochs} epochs)",
        ),
        protocol_row(
            "population",
            "dropout [0.1, 0.2, 0.3] x true / randomised labels (seeds not stated)",
            f"dropout {list(scale.dropouts)} x true / shuffled labels x "
            f"{n_seeds(scale.dropout_seeds)}",
        ),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "dropout",
    "Fig. 5a: dropout",
    "Networks trained with dropout lose little accuracy as units are ablated up to "
    "the dropout fraction; past it, networks trained on shuffled labels fall soon "
    "and much more than those on true labels.",
    "qualitative: shuffled-label curves drop soon past the dropout fraction",
    all_of(
        [
            Claim(
                "plateau_loss",
                "share of training accuracy lost by the dropout fraction, every network kept",
                kind="below",
                margin=0.1,
            ),
            Claim(
                "steepening",
                "shuffled labels: slope of normalised training accuracy "
                f"over [d, d + {DROPOUT_WINDOW:g}] minus its slope over [0, d] (a "
                "margin of 0.25 is 5 points more lost per 0.2 of units)",
                direction=-1,
                margin=0.25,
                needs_p=False,
            ),
            Claim(
                "true_minus_shuffled",
                "normalised AUC past the dropout fraction, true "
                "minus shuffled labels (mean over dropout levels)",
                direction=+1,
                margin=AUC_MARGIN,
                needs_p=False,
            ),
        ],
        lead="Only networks that reached the training-accuracy target enter; a "
        "sub-claim with fewer than 3 is inconclusive.",
    ),
    _dropout_build,
    _dropout_stats,
    _dropout_summary,
    _dropout_figures,
    _dropout_protocol,
)
