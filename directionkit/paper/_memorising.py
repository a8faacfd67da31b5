"""The population of Fig. 1 and Fig. 2, shared by the ``corrupted-labels`` and ``noise``
experiments: MLPs trained until they memorise labels corrupted in steps, several seeds each;
its protocol beside the paper's, and the statistic both experiments report of it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

import directionkit.paper._statistics as st
from directionkit.paper._experiment import MNIST, ProtocolRow, data_row, protocol_row
from directionkit.paper._rules import Claim
from directionkit.paper._scale import Scale
from directionkit.paper._shared import ablation_analysis, floats, n_seeds, stack_models
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace

__all__ = [
    "by_level",
    "memorising_runs",
    "corruption_stats",
    "curve_claim",
    "memorising_population",
    "memorising_protocol",
]


def memorising_runs(ws: Workspace, label: str) -> Iterator[tuple[str, Path]]:
    """``(name, run)`` of each memorising MLP, trained (or reused) in turn: label
    corruption x seed, each until it memorises (shared by every experiment on them)."""
    s = ws.scale
    runs = [(p, seed) for seed in s.seeds for p in s.corruptions]
    for corruption, seed in ws.bar(runs, label):
        config = ws.config(
            hidden=s.hidden,
            corruption=corruption,
            seed=seed,
            epochs=s.memorize_epochs,
            stop_at_train_accuracy=s.memorize_target,
        )
        yield f"p{corruption:g}-s{seed}", ws.train(config, "mlp-memorise")


def memorising_population(ws: Workspace) -> tuple[xr.Dataset, str]:
    """Train (or reuse) and analyse the memorising MLPs: their stacked curves, and the
    population as text."""
    s = ws.scale
    analyses = {
        name: ablation_analysis(ws, run, noise=True)
        for name, run in memorising_runs(ws, "memorising MLPs")
    }
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc", "noise_accuracy"],
        by=["corruption", "seed", "train_accuracy", "test_accuracy", "epoch"],
    )
    population = (
        f"{len(analyses)} MLPs {list(s.hidden)} on {ws.dataset}: label corruption "
        f"{list(s.corruptions)} x {n_seeds(s.seeds)}, each trained until training accuracy "
        f">= {s.memorize_target} (at most {s.memorize_epochs} epochs); curves on the training "
        f"data with the labels trained on, {s.orderings} orderings, {s.noise_repeats} noise "
        "repeats."
    )
    return stored, population


def memorising_protocol(scale: Scale, dataset: str, what: str) -> list[ProtocolRow]:
    """The memorising MLPs' protocol beside the paper's (``what``: ``orderings`` or
    ``noise repeats``)."""
    return [
        data_row(dataset, MNIST, scale.train_limit, scale.test_limit),
        protocol_row(
            "model",
            "2-hidden-layer MLP (also an 11-layer CIFAR-10 ConvNet and an ImageNet ResNet-50)",
            f"MLP {list(scale.hidden)} only",
        ),
        protocol_row(
            "training",
            "640 epochs",
            f"until training accuracy >= {scale.memorize_target}"
            f" (at most {scale.memorize_epochs} epochs)",
        ),
        protocol_row(
            "population",
            "label corruption 0 to 1 (seeds not stated)",
            f"corruption {list(scale.corruptions)} x {n_seeds(scale.seeds)}",
        ),
        protocol_row(
            what,
            "10 random orderings" if what == "orderings" else "not stated",
            f"{scale.orderings} random orderings"
            if what == "orderings"
            else f"{scale.noise_repeats} repeats per scale",
        ),
    ]


def _ordered_per_seed(stored: xr.Dataset, values: np.ndarray) -> float:
    corruption = floats(stored, "corruption")
    seeds = np.asarray(stored["seed"].values)
    low, high = corruption.min(), corruption.max()
    verdicts = []
    for seed in sorted(set(seeds.tolist())):
        mine = seeds == seed
        a = values[mine & (corruption == low)]
        b = values[mine & (corruption == high)]
        if a.size and b.size:
            verdicts.append(bool(a.mean() > b.mean()))
    return float(np.mean(verdicts)) if verdicts else math.nan


def corruption_stats(stored: xr.Dataset, values: np.ndarray, name: str) -> Stats:
    """Spearman(corruption, ``values``) over networks, and the per-level means."""
    corruption = floats(stored, "corruption")
    levels = sorted(set(corruption.tolist()))
    return {
        **st.correlation("rho", corruption, values),
        "ordered_fraction": _ordered_per_seed(stored, values),
        "corruptions": levels,
        f"mean_{name}": [float(values[corruption == c].mean()) for c in levels],
        "train_accuracy": [float(v) for v in stored["train_accuracy"].values],
        "interval": "bootstrap over networks; p by permutation",
    }


def by_level(s: Stats, name: str) -> str:
    """``s[name]`` by corruption level, as text."""
    return ", ".join(f"{c:g}: {a:.3f}" for c, a in zip(s["corruptions"], s[name], strict=True))


def curve_claim(what: str) -> Claim:
    """The claim that ``what`` falls with label corruption over networks."""
    return Claim(
        "rho", f"Spearman rho of label corruption and {what} over networks", direction=-1, min_n=6
    )
