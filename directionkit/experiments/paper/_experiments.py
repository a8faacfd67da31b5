"""The paper's experiments: populations of networks, the numbers they store, their figures.

Each :class:`Experiment` has four parts, kept apart so that the verdict comes from stored
numbers: ``build`` trains (or reuses) and analyses the networks and returns the dataset to
store; ``statistics`` reads the *stored* dataset and returns the numbers the paper reports;
the :class:`~directionkit.experiments.paper._rules.Rule` turns those numbers into a
verdict; ``figures`` draws from the stored dataset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from directionkit.experiments.paper._core import Workspace, stack_models, stack_units
from directionkit.experiments.paper._rules import (
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    Rule,
    at_most_rule,
    correlation_rule,
    count_rule,
    ordering_rule,
    sign_rule,
)
from directionkit.metrics import spearman

__all__ = ["EXPERIMENTS", "Experiment"]

Stats = dict[str, Any]

#: The per-unit L1 variable of A3: the raw filter norm, the paper's quantity (the
#: BN-folded norm is ``weight_l1_folded``).
L1_VARIABLE = "weight_l1"
#: Scopes of every ablation curve (the paper's conv protocol adds ``last:3``).
SCOPES = ("all",)


if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


def _new_figure(**options: Any) -> Figure:
    from matplotlib.figure import Figure

    return Figure(**options)


@dataclass(frozen=True)
class Experiment:
    """One experiment of the paper (see the module doc)."""

    name: str
    title: str
    claim: str
    paper: str
    rule: Rule
    build: Callable[[Workspace], tuple[xr.Dataset, str]]
    statistics: Callable[[xr.Dataset], Stats]
    summarize: Callable[[Stats], str]
    figures: Callable[[xr.Dataset, Stats], dict[str, Figure]]


# ---------------------------------------------------------------------------- helpers
def _text(values: Any) -> np.ndarray:
    """Strings as a numpy ``str`` array (zarr gives them back as numpy's StringDType)."""
    return np.array([str(v) for v in np.asarray(values).ravel()], dtype=str)


def _rho(a: Any, b: Any) -> tuple[float, float]:
    result = spearman(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), by=None)
    return float(result["rho"].values[0]), float(result["p_value"].values[0])


def _f(value: float, digits: int = 3) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def _span(low: float, high: float, digits: int = 2) -> str:
    """``low-high`` at ``digits`` decimals, or one number when they print the same.

    Examples
    --------
    >>> _span(0.991, 0.994), _span(0.1, 0.25), _span(-0.02, 0.027, 3)
    ('0.99', '0.10-0.25', '-0.020 to 0.027')
    """
    a, b = f"{low:.{digits}f}", f"{high:.{digits}f}"
    if a == b:
        return a
    return f"{a} to {b}" if low < 0 or high < 0 else f"{a}-{b}"


def _every(n: int, what: str) -> str:
    """``"every epoch"``, ``"every 2nd epoch"``, ``"every 3rd epoch"``, ``"every 11th ..."``.

    Examples
    --------
    >>> _every(1, "epoch"), _every(2, "epoch"), _every(13, "epoch"), _every(22, "epoch")
    ('every epoch', 'every 2nd epoch', 'every 13th epoch', 'every 22nd epoch')
    """
    if n == 1:
        return f"every {what}"
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} {what}"


def _rho_text(rho: float, p: float) -> str:
    return f"rho = {_f(rho)} (p = {_f(p, 3) if p >= 1e-3 else f'{p:.1e}'})"


def _ablation(
    ws: Workspace,
    run: Any,
    *,
    conv: bool = False,
    epoch: int | None = None,
    ablate_to: str = "zero",
    noise: bool = False,
) -> xr.Dataset:
    """Ablation (and noise) curves of a run on its training data (the paper's protocol)."""
    scale = ws.scale
    metrics = ["ablation", "noise"] if noise else ["ablation"]
    parameters: dict[str, Any] = {
        "scopes": SCOPES,
        "orderings": scale.conv_orderings if conv else scale.orderings,
        "fractions": scale.conv_fractions if conv else scale.fractions,
    }
    if ablate_to != "zero":
        parameters["ablate_to"] = ablate_to
    if noise:
        parameters["noise_scales"] = scale.noise_scales
        parameters["noise_repeats"] = scale.noise_repeats
    dataset = ws.analyze(run, split="train", metrics=metrics, epoch=epoch, **parameters)
    return dataset.sel(scope="all")


def _units(ws: Workspace, run: Any, *, l1: bool = True) -> xr.Dataset:
    """Per-unit measures of a run on the true test labels (selectivity, MI, importance)."""
    metrics = ["statistics", "importance", *(["weight_l1"] if l1 else [])]
    return ws.analyze(run, split="test", metrics=metrics)


def _curve_figure(
    stored: xr.Dataset,
    groups: Mapping[str, np.ndarray],
    title: str,
    *,
    marks: Mapping[str, float] | None = None,
    variable: str = "ablation_accuracy",
    x: str = "fraction",
    log: bool = False,
) -> Figure:
    """Mean ± sd (over models and orderings/repeats) of the curves of each group."""
    fig = _new_figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.add_subplot()
    xs = np.asarray(stored[x].values, dtype=np.float64)
    for i, (label, mask) in enumerate(groups.items()):
        values = np.asarray(stored[variable].values[mask], dtype=np.float64)
        samples = values.reshape(-1, xs.size)
        mean = np.nanmean(samples, axis=0)
        sd = np.nanstd(samples, axis=0, ddof=1) if samples.shape[0] > 1 else 0 * mean
        color = f"C{i % 10}"
        ax.plot(xs, mean, marker="o", markersize=3, color=color, label=label)
        ax.fill_between(xs, mean - sd, mean + sd, color=color, alpha=0.2, linewidth=0)
        if marks and label in marks:
            ax.axvline(marks[label], color=color, linestyle="--", linewidth=1)
    if log:
        positive = xs[xs > 0]
        ax.set_xscale(
            "symlog", linthresh=float(positive.min()) if positive.size else 1.0, linscale=0.5
        )
        ax.set_xlabel("noise scale (x each unit's sd on the training data)")
    else:
        ax.set_xlabel("fraction of units ablated")
        ax.set_xlim(0, 1)
    ax.set_ylabel("training accuracy" if variable != "noise_accuracy" else "accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def _scatter(
    x: np.ndarray,
    y: np.ndarray,
    xlabel: str,
    ylabel: str,
    title: str,
    colors: np.ndarray | None = None,
    clabel: str = "",
) -> Figure:
    fig = _new_figure(figsize=(5.2, 4.2), layout="constrained")
    ax = fig.add_subplot()
    points = ax.scatter(x, y, c=colors, s=22, cmap="viridis", edgecolors="none")
    if colors is not None:
        fig.colorbar(points, ax=ax, label=clabel)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    return fig


def _per_network(stored: xr.Dataset, by: str, noise: bool = False) -> Figure:
    """Every network's own curve, drawn by :func:`directionkit.compare` (labelled by ``by``)."""
    from directionkit.compare import compare
    from directionkit.plots import compare_ablation_curves, compare_noise_curves

    names = ["accuracy", "noise_accuracy"] if noise else ["ablation_accuracy", "ablation_auc"]
    analyses = {}
    for model in _text(stored["model"].values):
        one = stored.sel(model=model)[[n for n in names if n in stored.data_vars]]
        one = one.reset_coords(drop=True).drop_attrs()
        if not noise:
            one = one.expand_dims(scope=["all"])
            one["ablation_auc"] = (
                one["ablation_auc"].squeeze("ordering", drop=True)
                if ("ordering" in one["ablation_auc"].dims)
                else one["ablation_auc"]
            )
        value = stored[by].sel(model=model).item()
        one.attrs["run_config"] = {by: value.item() if hasattr(value, "item") else value}
        analyses[str(model)] = one
    comparison = compare(analyses, by=by)
    return compare_noise_curves(comparison) if noise else compare_ablation_curves(comparison)


def _model_groups(stored: xr.Dataset, coord: str, fmt: str) -> dict[str, np.ndarray]:
    values = np.asarray(stored[coord].values)
    return {fmt.format(v): values == v for v in sorted(set(values.tolist()))}


def _by_run(datasets: Mapping[str, xr.Dataset], keys: Sequence[str]) -> dict[str, list[Any]]:
    return {k: [d.attrs["run_config"].get(k) for d in datasets.values()] for k in keys}


def _keep(ds: xr.Dataset, *names: str) -> xr.Dataset:
    return ds[[n for n in names if n in ds.data_vars]]


# ---------------------------------------------------------------- Fig. 1 and Fig. 2
def _memorising_population(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    analyses = {}
    runs = [(p, seed) for seed in s.seeds for p in s.corruptions]
    for corruption, seed in ws.bar(runs, "memorising MLPs"):
        config = ws.config(
            hidden=s.hidden,
            corruption=corruption,
            seed=seed,
            epochs=s.memorize_epochs,
            stop_at_train_accuracy=s.memorize_target,
        )
        run = ws.train(config, "mlp-memorise")
        analyses[f"p{corruption:g}-s{seed}"] = _ablation(ws, run, noise=True)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc", "noise_accuracy"],
        by=["corruption", "seed", "train_accuracy", "test_accuracy", "epoch"],
    )
    population = (
        f"{len(runs)} MLPs {list(s.hidden)} on {ws.dataset}: label corruption "
        f"{list(s.corruptions)} x seeds {list(s.seeds)}, each trained until training accuracy "
        f">= {s.memorize_target} (at most {s.memorize_epochs} epochs); curves on the training "
        f"data with the labels trained on, {s.orderings} orderings, {s.noise_repeats} noise "
        "repeats."
    )
    return stored, population


def _ordered_per_seed(stored: xr.Dataset, values: np.ndarray) -> float:
    corruption = np.asarray(stored["corruption"].values, dtype=np.float64)
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


def _corruption_stats(stored: xr.Dataset, values: np.ndarray, name: str) -> Stats:
    corruption = np.asarray(stored["corruption"].values, dtype=np.float64)
    rho, p = _rho(corruption, values)
    levels = sorted(set(corruption.tolist()))
    return {
        "rho": rho,
        "p_value": p,
        "ordered_fraction": _ordered_per_seed(stored, values),
        "corruptions": levels,
        f"mean_{name}": [float(values[corruption == c].mean()) for c in levels],
        "train_accuracy": [float(v) for v in stored["train_accuracy"].values],
    }


def _corrupted_stats(stored: xr.Dataset) -> Stats:
    return _corruption_stats(stored, np.asarray(stored["ablation_auc"].values), "auc")


def _corrupted_summary(s: Stats) -> str:
    by = ", ".join(f"{c:g}: {a:.3f}" for c, a in zip(s["corruptions"], s["mean_auc"], strict=True))
    return (
        f"corruption vs ablation AUC {_rho_text(s['rho'], s['p_value'])}; mean AUC by "
        f"corruption {by}; true > fully corrupted in {s['ordered_fraction']:.0%} of seeds"
    )


def _corrupted_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = _model_groups(stored, "corruption", "{:g} corrupted")
    return {
        "ablation_curves": _curve_figure(
            stored,
            groups,
            "Cumulative ablation by label corruption (mean ± sd over seeds and orderings)",
        ),
        "ablation_curves_per_network": _per_network(stored, "corruption"),
    }


def _noise_robustness(stored: xr.Dataset) -> np.ndarray:
    """Mean over positive noise scales of accuracy / clean accuracy, per model."""
    accuracy = stored["noise_accuracy"].mean("repeat")
    scales = np.asarray(stored["noise_scale"].values, dtype=np.float64)
    clean = np.asarray(stored["accuracy"].values, dtype=np.float64)
    ratio = np.asarray(accuracy.values, dtype=np.float64) / clean[:, None]
    return ratio[:, scales > 0].mean(axis=1)


def _noise_stats(stored: xr.Dataset) -> Stats:
    return _corruption_stats(stored, _noise_robustness(stored), "robustness")


def _noise_summary(s: Stats) -> str:
    by = ", ".join(
        f"{c:g}: {a:.3f}" for c, a in zip(s["corruptions"], s["mean_robustness"], strict=True)
    )
    return (
        f"corruption vs noise robustness (mean relative accuracy over noise scales) "
        f"{_rho_text(s['rho'], s['p_value'])}; by corruption {by}; true > fully corrupted "
        f"in {s['ordered_fraction']:.0%} of seeds"
    )


def _noise_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = _model_groups(stored, "corruption", "{:g} corrupted")
    return {
        "noise_curves": _curve_figure(
            stored,
            groups,
            "Noise added to every unit (mean ± sd over seeds and repeats)",
            variable="noise_accuracy",
            x="noise_scale",
            log=True,
        ),
        "noise_curves_per_network": _per_network(stored, "corruption", noise=True),
    }


# ---------------------------------------------------------------------------- Fig. 3
def _ensemble_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    members = [(p, seed) for seed in s.ensemble_seeds for p in s.ensemble_corruptions]
    analyses = {}
    for corruption, seed in ws.bar(members, "ensemble"):
        config = ws.config(
            hidden=s.ensemble_hidden, corruption=corruption, seed=seed,
            epochs=s.memorize_epochs, stop_at_train_accuracy=s.memorize_target,
        )  # fmt: skip
        run = ws.train(config, "mlp-ensemble")
        analyses[f"p{corruption:g}-s{seed}"] = _ablation(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["corruption", "seed", "epoch", "train_accuracy", "test_accuracy"],
    )
    stored["generalisation_error"] = stored["train_accuracy"] - stored["test_accuracy"]
    population = (
        f"{len(members)} MLPs {list(s.ensemble_hidden)} of identical topology on {ws.dataset}, "
        f"differing in seed ({len(s.ensemble_seeds)}) and in the fraction of training labels "
        f"shuffled {list(s.ensemble_corruptions)}, each trained until training accuracy >= "
        f"{s.memorize_target} (at most {s.memorize_epochs} epochs), so that generalisation "
        "error (train - test accuracy) spans far more than a few test images; ablation on the "
        "training data. (The paper's 200 nets differ in seed only, on CIFAR-10.)"
    )
    return stored, population


def _ensemble_stats(stored: xr.Dataset) -> Stats:
    gap = np.asarray(stored["generalisation_error"].values, dtype=np.float64)
    auc = np.asarray(stored["ablation_auc"].values, dtype=np.float64)
    rho, p = _rho(gap, auc)
    order = np.argsort(gap, kind="stable")
    k = min(5, max(1, gap.size // 2))
    true = np.asarray(stored["corruption"].values) == 0
    rho_true, p_true = _rho(gap[true], auc[true]) if true.sum() >= 3 else (math.nan, math.nan)
    return {
        "rho": rho,
        "p_value": p,
        "n_models": int(gap.size),
        "k": k,
        "best_auc": float(auc[order[:k]].mean()),
        "worst_auc": float(auc[order[-k:]].mean()),
        "best_models": [str(m) for m in stored["model"].values[order[:k]]],
        "worst_models": [str(m) for m in stored["model"].values[order[-k:]]],
        "gap_range": [float(gap.min()), float(gap.max())],
        "rho_true_labels": rho_true,
        "p_true_labels": p_true,
    }


def _ensemble_summary(s: Stats) -> str:
    return (
        f"generalisation error vs AUC {_rho_text(s['rho'], s['p_value'])} over "
        f"{s['n_models']} networks (error {_span(s['gap_range'][0], s['gap_range'][1], 3)});"
        f" best-{s['k']} AUC {s['best_auc']:.3f} vs worst-{s['k']} {s['worst_auc']:.3f}; "
        f"true labels only {_rho_text(s['rho_true_labels'], s['p_true_labels'])}"
    )


def _ensemble_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    models = _text(stored["model"].values)
    groups = {
        f"best {s['k']}": np.isin(models, s["best_models"]),
        f"worst {s['k']}": np.isin(models, s["worst_models"]),
    }
    return {
        "best_worst_curves": _curve_figure(
            stored,
            groups,
            "Best vs worst generalising networks (mean ± sd over models and orderings)",
        ),
        "auc_vs_generalisation": _scatter(
            stored["generalisation_error"].values,
            stored["ablation_auc"].values,
            "generalisation error (train - test accuracy)",
            "ablation AUC",
            f"AUC vs generalisation error ({_rho_text(s['rho'], s['p_value'])})",
            np.asarray(stored["corruption"].values, dtype=np.float64),
            "label corruption",
        ),
    }


# -------------------------------------------------------------------------- Fig. 4a-b
def _early_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    checkpoints = list(range(s.early_every, s.early_epochs + 1, s.early_every))
    config = ws.config(
        hidden=s.early_hidden,
        corruption=s.early_corruption,
        seed=0,
        epochs=s.early_epochs,
        checkpoint_epochs=checkpoints,
    )
    run = ws.train(config, "mlp-early-stopping")
    history = xr.open_zarr(run / "history.zarr").load()
    aucs = [
        float(_ablation(ws, run, epoch=e)["ablation_auc"])
        for e in ws.bar(checkpoints, "checkpoints")
    ]
    stored = history.sel(epoch=checkpoints)[
        ["train_loss", "test_loss", "train_accuracy", "test_accuracy"]
    ].drop_attrs()
    stored["ablation_auc"] = ("epoch", np.asarray(aucs))
    population = (
        f"one MLP {list(s.early_hidden)} on {ws.dataset} with {s.early_corruption:g} of its "
        f"training labels corrupted (so that train and test loss diverge within "
        f"{s.early_epochs} epochs), ablation AUC on the training data at "
        f"{_every(s.early_every, 'epoch')}."
    )
    return stored, population


def _early_stats(stored: xr.Dataset) -> Stats:
    rho, p = _rho(stored["ablation_auc"].values, stored["test_loss"].values)
    loss = np.asarray(stored["test_loss"].values)
    return {
        "rho": rho,
        "p_value": p,
        "n_checkpoints": int(loss.size),
        "min_test_loss_epoch": int(stored["epoch"].values[int(np.argmin(loss))]),
        "max_auc_epoch": int(stored["epoch"].values[int(np.argmax(stored["ablation_auc"].values))]),
    }


def _early_summary(s: Stats) -> str:
    return (
        f"AUC vs test loss over {s['n_checkpoints']} checkpoints "
        f"{_rho_text(s['rho'], s['p_value'])}; test loss lowest at epoch "
        f"{s['min_test_loss_epoch']}, AUC highest at epoch {s['max_auc_epoch']}"
    )


def _early_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    fig = _new_figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    epochs = stored["epoch"].values
    ax.plot(epochs, stored["train_loss"].values, color="C0", label="train loss")
    ax.plot(epochs, stored["test_loss"].values, color="C4", label="test loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    twin = ax.twinx()
    twin.plot(epochs, stored["ablation_auc"].values, color="C2", label="ablation AUC")
    twin.set_ylabel("ablation AUC", color="C2")
    lines = ax.get_lines() + twin.get_lines()
    ax.legend(lines, [str(line.get_label()) for line in lines], fontsize=8)
    ax.set_title("Loss and ablation AUC over training", fontsize=10)
    return {
        "auc_over_training": fig,
        "auc_vs_test_loss": _scatter(
            stored["test_loss"].values,
            stored["ablation_auc"].values,
            "test loss",
            "ablation AUC",
            f"AUC vs test loss ({_rho_text(s['rho'], s['p_value'])})",
            np.asarray(epochs, dtype=np.float64),
            "epoch",
        ),
    }


# ---------------------------------------------------------------------------- Fig. 4c
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
        analyses[f"lr{lr:g}-b{batch}-r{repeat}"] = _ablation(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_auc"],
        by=["lr", "batch_size", "seed", "test_accuracy", "train_accuracy"],
    )
    stored.attrs["subsets"] = s.hp_subsets
    population = (
        f"{len(grid)} MLPs {list(s.hp_hidden)} on {ws.dataset}, SGD (momentum 0.9) for "
        f"{s.hp_epochs} epochs over learning rate {list(s.hp_lrs)} x batch size "
        f"{list(s.hp_batch_sizes)} x {s.hp_repeats} repeats; AUC on the training data."
    )
    return stored, population


def _hp_stats(stored: xr.Dataset) -> Stats:
    subsets = int(stored.attrs.get("subsets", 1000))
    auc = np.asarray(stored["ablation_auc"].values, dtype=np.float64)
    test = np.asarray(stored["test_accuracy"].values, dtype=np.float64)
    rho, p = _rho(auc, test)
    settings = list(
        zip(stored["lr"].values.tolist(), stored["batch_size"].values.tolist(), strict=True)
    )
    keys = list(dict.fromkeys(settings))
    mean_auc = np.array([auc[[s == k for s in settings]].mean() for k in keys])
    mean_test = np.array([test[[s == k for s in settings]].mean() for k in keys])
    size = max(2, min(48, len(keys) // 2))
    rng = np.random.default_rng(0)
    ranks, gaps = [], []
    for _ in range(subsets):
        chosen = rng.choice(len(keys), size=size, replace=False)
        picked = chosen[int(np.argmax(mean_auc[chosen]))]
        ranks.append(int((mean_test[chosen] > mean_test[picked]).sum()) + 1)
        gaps.append(float(mean_test[chosen].max() - mean_test[picked]))
    ranks_a = np.asarray(ranks)
    return {
        "rho": rho,
        "p_value": p,
        "n_models": int(auc.size),
        "n_settings": len(keys),
        "subset_size": size,
        "top1": float((ranks_a <= 1).mean()),
        "top5": float((ranks_a <= 5).mean()),
        "top10": float((ranks_a <= 10).mean()),
        "gap_mean": float(np.mean(gaps)),
        "gap_sd": float(np.std(gaps)),
        "test_accuracy_range": [float(test.min()), float(test.max())],
    }


def _hp_summary(s: Stats) -> str:
    return (
        f"AUC vs test accuracy over {s['n_models']} networks "
        f"{_rho_text(s['rho'], s['p_value'])} (test accuracy "
        f"{_span(s['test_accuracy_range'][0], s['test_accuracy_range'][1], 3)}); AUC picks a "
        f"top-1/5/10 setting in "
        f"{s['top1']:.0%}/{s['top5']:.0%}/{s['top10']:.0%} of random {s['subset_size']}-of-"
        f"{s['n_settings']} subsets, test-accuracy gap to the best "
        f"{100 * s['gap_mean']:.1f} ± {100 * s['gap_sd']:.1f}%"
    )


def _hp_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    return {
        "auc_vs_test_accuracy": _scatter(
            stored["ablation_auc"].values,
            stored["test_accuracy"].values,
            "ablation AUC",
            "test accuracy",
            f"Hyperparameter grid ({_rho_text(s['rho'], s['p_value'])})",
            np.log10(np.asarray(stored["lr"].values, dtype=np.float64)),
            "log10 learning rate",
        )
    }


# ---------------------------------------------------------------------------- Fig. 5a
def _dropout_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    runs = [(d, p) for d in s.dropouts for p in (0.0, 1.0)]
    analyses = {}
    for dropout, corruption in ws.bar(runs, "dropout MLPs"):
        config = ws.config(
            hidden=s.dropout_hidden,
            dropout=dropout,
            corruption=corruption,
            seed=0,
            epochs=s.dropout_epochs,
            stop_at_train_accuracy=s.memorize_target,
        )
        run = ws.train(config, "mlp-dropout")
        analyses[f"d{dropout:g}-p{corruption:g}"] = _ablation(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["dropout", "corruption", "train_accuracy", "epoch"],
    )
    population = (
        f"{len(runs)} MLPs {list(s.dropout_hidden)} on {ws.dataset}: dropout "
        f"{list(s.dropouts)} x true / fully shuffled labels, trained until training accuracy "
        f">= {s.memorize_target} (at most {s.dropout_epochs} epochs); curves on the training data."
    )
    return stored, population


def _dropout_numbers(stored: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per model: accuracy kept at the dropout fraction, and the normalised AUC past it."""
    fractions = np.asarray(stored["fraction"].values, dtype=np.float64)
    curves = np.asarray(stored["ablation_accuracy"].mean("ordering").values, dtype=np.float64)
    dropouts = np.asarray(stored["dropout"].values, dtype=np.float64)
    kept, beyond = [], []
    for curve, d in zip(curves, dropouts, strict=True):
        kept.append(float(np.interp(d, fractions, curve) / curve[0]))
        grid = np.linspace(d, 1.0, 101)
        beyond.append(
            float(np.trapezoid(np.interp(grid, fractions, curve), grid) / ((1.0 - d) * curve[0]))
        )
    return np.asarray(kept), np.asarray(beyond)


def _dropout_stats(stored: xr.Dataset) -> Stats:
    kept, beyond = _dropout_numbers(stored)
    dropouts = np.asarray(stored["dropout"].values, dtype=np.float64)
    corruption = np.asarray(stored["corruption"].values, dtype=np.float64)
    levels = sorted(set(dropouts.tolist()))
    true_beyond = [float(beyond[(dropouts == d) & (corruption == 0)].mean()) for d in levels]
    shuffled_beyond = [float(beyond[(dropouts == d) & (corruption > 0)].mean()) for d in levels]
    return {
        "dropouts": levels,
        "true_auc_beyond": true_beyond,
        "shuffled_auc_beyond": shuffled_beyond,
        "kept_at_dropout": kept.tolist(),
        "shuffled_more_sensitive": int(
            all(sb < tb for sb, tb in zip(shuffled_beyond, true_beyond, strict=True))
        ),
        "robust_until_dropout": int(bool(np.all(kept >= 0.9))),
        "train_accuracy": [float(v) for v in stored["train_accuracy"].values],
    }


def _dropout_summary(s: Stats) -> str:
    parts = [
        f"{d:g}: true {t:.3f} / shuffled {u:.3f}"
        for d, t, u in zip(
            s["dropouts"], s["true_auc_beyond"], s["shuffled_auc_beyond"], strict=True
        )
    ]
    return (
        f"normalised AUC past the dropout fraction, {'; '.join(parts)}; accuracy kept at "
        f"the dropout fraction {_span(min(s['kept_at_dropout']), max(s['kept_at_dropout']))}"
        f" of unablated; training accuracy "
        f"{_span(min(s['train_accuracy']), max(s['train_accuracy']))}"
    )


def _dropout_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    models = _text(stored["model"].values)
    groups, marks = {}, {}
    for model, d, p in zip(
        models, stored["dropout"].values, stored["corruption"].values, strict=True
    ):
        label = f"dropout {d:g}, {'shuffled' if p > 0 else 'true'} labels"
        groups[label] = models == model
        marks[label] = float(d)
    return {
        "ablation_curves": _curve_figure(
            stored, groups, "Dropout: cumulative ablation (dashed: dropout fraction)", marks=marks
        )
    }


# ------------------------------------------------------------ ConvNets: Fig. 5b, 6, 7, A1-3
def _conv_runs(ws: Workspace, batch_norm: Sequence[bool] = (True, False)) -> dict[str, Any]:
    s = ws.scale
    runs = {}
    for bn in batch_norm:
        for instance in range(s.conv_instances):
            config = ws.config(
                model="convnet",
                batch_norm=bn,
                width=s.conv_width,
                epochs=s.conv_epochs,
                lr=s.conv_lr,
                seed=instance,
            )
            if s.conv_train_limit is not None:
                config["train_limit"] = s.conv_train_limit
            runs[f"{'bn' if bn else 'nobn'}-s{instance}"] = ws.train(config, "convnet")
    return runs


def _conv_population(ws: Workspace) -> str:
    s = ws.scale
    return (
        f"11-layer ConvNets (width x {s.conv_width:g}) on {ws.dataset}, with and without "
        f"batch norm, {s.conv_instances} instance(s) each, {s.conv_epochs} epochs (Adam, "
        f"{'' if s.conv_train_limit is None else f'{s.conv_train_limit} training images, '}"
        f"lr {s.conv_lr:g}); curves on the training data ({s.conv_orderings} orderings), "
        "per-unit measures on the test data."
    )


def _batchnorm_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws)
    curves = {n: _ablation(ws, r, conv=True) for n, r in ws.bar(list(runs.items()), "ConvNets")}
    units = {n: _units(ws, r) for n, r in runs.items()}
    stored = stack_models(
        curves,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["batch_norm", "seed", "train_accuracy", "test_accuracy"],
    )
    per_unit = stack_units(units, ["selectivity", "mutual_info"])
    stored = xr.merge([stored, per_unit.rename(unit="unit_all")], compat="override")
    return stored, _conv_population(ws)


def _unit_mask(stored: xr.Dataset, prefix: str) -> np.ndarray:
    models = _text(stored["unit_model"].values)
    return np.char.startswith(models, prefix)


def _batchnorm_stats(stored: xr.Dataset) -> Stats:
    bn = np.asarray(stored["batch_norm"].values, dtype=bool)
    auc = np.asarray(stored["ablation_auc"].values, dtype=np.float64)
    sel = np.asarray(stored["selectivity"].values, dtype=np.float64)
    mi = np.asarray(stored["mutual_info"].values, dtype=np.float64)
    with_bn, without = _unit_mask(stored, "bn-"), _unit_mask(stored, "nobn-")
    stats = {
        "auc_bn": float(auc[bn].mean()),
        "auc_nobn": float(auc[~bn].mean()),
        "selectivity_bn": float(np.nanmean(sel[with_bn])),
        "selectivity_nobn": float(np.nanmean(sel[without])),
        "mi_bn": float(np.nanmean(mi[with_bn])),
        "mi_nobn": float(np.nanmean(mi[without])),
        "test_accuracy_bn": float(stored["test_accuracy"].values[bn].mean()),
        "test_accuracy_nobn": float(stored["test_accuracy"].values[~bn].mean()),
    }
    stats["bn_more_robust"] = int(stats["auc_bn"] > stats["auc_nobn"])
    stats["bn_less_selective"] = int(stats["selectivity_bn"] < stats["selectivity_nobn"])
    stats["bn_more_information"] = int(stats["mi_bn"] > stats["mi_nobn"])
    return stats


def _batchnorm_summary(s: Stats) -> str:
    return (
        f"mean AUC with BN {s['auc_bn']:.3f} vs without {s['auc_nobn']:.3f}; mean "
        f"selectivity {s['selectivity_bn']:.3f} vs {s['selectivity_nobn']:.3f}; mean MI "
        f"{s['mi_bn']:.3f} vs {s['mi_nobn']:.3f} bits (test accuracy "
        f"{s['test_accuracy_bn']:.3f} vs {s['test_accuracy_nobn']:.3f})"
    )


def _histograms(stored: xr.Dataset, names: Sequence[str], title: str) -> Figure:
    fig = _new_figure(figsize=(5 * len(names), 3.8), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        values = np.asarray(stored[name].values, dtype=np.float64)
        edges = np.histogram_bin_edges(values[np.isfinite(values)], bins=20)
        for i, (label, prefix) in enumerate((("with BN", "bn-"), ("without BN", "nobn-"))):
            part = values[_unit_mask(stored, prefix)]
            ax.hist(
                part[np.isfinite(part)],
                bins=edges,
                histtype="step",
                linewidth=1.5,
                color=f"C{i}",
                label=label,
                density=True,
            )
        ax.set_xlabel(
            {"selectivity": "class selectivity", "mutual_info": "mutual information (bits)"}[name]
        )
        ax.set_ylabel("density of units")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def _batchnorm_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = {"with BN": np.asarray(stored["batch_norm"].values, dtype=bool)}
    groups["without BN"] = ~groups["with BN"]
    return {
        "ablation_curves": _curve_figure(
            stored,
            groups,
            "Batch norm: cumulative ablation (mean ± sd over instances and orderings)",
        ),
        "ablation_curves_per_network": _per_network(stored, "batch_norm"),
        "selectivity_mi": _histograms(
            stored, ["selectivity", "mutual_info"], "Class selectivity and MI, with and without BN"
        ),
    }


def _selectivity_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    config = ws.config(hidden=s.selectivity_hidden, seed=0, epochs=s.selectivity_epochs)
    mlp = ws.train(config, "mlp-selectivity")
    units = {"mlp": _units(ws, mlp, l1=False)}
    runs = _conv_runs(ws, batch_norm=(True,))
    units.update({f"conv-{n}": _units(ws, r) for n, r in runs.items()})
    stored = stack_units(units, ["selectivity", "mutual_info", "importance_loss"])
    population = (
        f"one MLP {list(s.selectivity_hidden)} on {ws.dataset} (true labels, "
        f"{s.selectivity_epochs} epochs) and the batch-norm ConvNets of the "
        f"batchnorm experiment; importance = change in test loss when the unit "
        "alone is ablated."
    )
    return stored, population


def _family_rho(stored: xr.Dataset, prefix: str, x: str, y: str) -> tuple[float, float]:
    mask = _unit_mask(stored, prefix)
    return _rho(stored[x].values[mask], stored[y].values[mask])


def _per_layer(stored: xr.Dataset, prefix: str, x: str, y: str) -> list[float]:
    mask = _unit_mask(stored, prefix)
    depth = np.asarray(stored["depth"].values)
    out = []
    for d in sorted(set(depth[mask].tolist())):
        m = mask & (depth == d)
        out.append(_rho(stored[x].values[m], stored[y].values[m])[0])
    return out


def _selectivity_stats(stored: xr.Dataset) -> Stats:
    stats: Stats = {}
    for measure, short in (("selectivity", "sel"), ("mutual_info", "mi")):
        for family, prefix in (("mlp", "mlp"), ("conv", "conv-")):
            rho, p = _family_rho(stored, prefix, measure, "importance_loss")
            stats[f"rho_{short}_{family}"], stats[f"p_{short}_{family}"] = rho, p
        stats[f"rho_{short}_conv_by_layer"] = _per_layer(
            stored, "conv-", measure, "importance_loss"
        )
    return stats


def _selectivity_summary(s: Stats) -> str:
    return (
        f"selectivity vs importance: MLP {_rho_text(s['rho_sel_mlp'], s['p_sel_mlp'])}, "
        f"ConvNet {_rho_text(s['rho_sel_conv'], s['p_sel_conv'])}; MI vs importance: MLP "
        f"{_rho_text(s['rho_mi_mlp'], s['p_mi_mlp'])}, ConvNet "
        f"{_rho_text(s['rho_mi_conv'], s['p_mi_conv'])}"
    )


def _selectivity_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    fig = _new_figure(figsize=(10, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    for row, measure in enumerate(("selectivity", "mutual_info")):
        for column, (family, prefix) in enumerate((("MLP", "mlp"), ("ConvNet", "conv-"))):
            ax = axes[row, column]
            mask = _unit_mask(stored, prefix)
            ax.scatter(
                stored[measure].values[mask],
                stored["importance_loss"].values[mask],
                c=stored["depth"].values[mask],
                s=10,
                cmap="viridis",
                edgecolors="none",
            )
            rho, p = _family_rho(stored, prefix, measure, "importance_loss")
            ax.set_title(f"{family}: {_rho_text(rho, p)}", fontsize=9)
            ax.set_xlabel("class selectivity" if measure == "selectivity" else "MI (bits)")
            ax.set_ylabel("Δ test loss when ablated")
    fig.suptitle("Selectivity and MI vs importance (colour: layer depth)")
    return {"selectivity_vs_importance": fig}


def _method_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws)
    zero = {n: _ablation(ws, r, conv=True) for n, r in ws.bar(list(runs.items()), "zero")}
    mean = {
        n: _ablation(ws, r, conv=True, ablate_to="mean")
        for n, r in ws.bar(list(runs.items()), "mean")
    }
    z = stack_models(zero, ["ablation_accuracy", "ablation_auc"], by=["batch_norm"])
    m = stack_models(mean, ["ablation_accuracy", "ablation_auc"], by=["batch_norm"])
    stored = xr.concat(
        [z, m], dim=xr.DataArray(["zero", "mean"], dims="ablate_to", name="ablate_to")
    )
    return stored, _conv_population(ws) + " Mean values come from the training data."


def _method_stats(stored: xr.Dataset) -> Stats:
    zero = np.asarray(stored["ablation_auc"].sel(ablate_to="zero").values, dtype=np.float64)
    mean = np.asarray(stored["ablation_auc"].sel(ablate_to="mean").values, dtype=np.float64)
    return {
        "auc_zero": zero.tolist(),
        "auc_mean": mean.tolist(),
        "models": [str(m) for m in stored["model"].values],
        "fraction_zero_better": float(np.mean(zero > mean)),
    }


def _method_summary(s: Stats) -> str:
    pairs = ", ".join(
        f"{m}: {z:.3f} vs {a:.3f}"
        for m, z, a in zip(s["models"], s["auc_zero"], s["auc_mean"], strict=True)
    )
    return (
        f"AUC zero vs mean ablation {pairs}; zero less damaging in "
        f"{s['fraction_zero_better']:.0%} of networks"
    )


def _method_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    flat = stored.stack(curve=("ablate_to", "model")).transpose("curve", ...)
    kinds = _text(flat["ablate_to"].values)
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
    return {
        "ablation_curves": _curve_figure(
            data, groups, "Ablation to zero vs to the training-set mean"
        )
    }


def _method_decide(stats: Mapping[str, Any]) -> str:
    share = stats.get("fraction_zero_better")
    if share == 1.0:
        return REPRODUCED
    return PARTLY if isinstance(share, float) and share >= 0.5 else NOT_REPRODUCED


def _depth_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws, batch_norm=(True,))
    units = {n: _units(ws, r) for n, r in runs.items()}
    return stack_units(units, ["selectivity"]), _conv_population(ws) + " Batch-norm nets only."


def _depth_stats(stored: xr.Dataset) -> Stats:
    depth = np.asarray(stored["depth"].values)
    sel = np.asarray(stored["selectivity"].values, dtype=np.float64)
    layers = sorted(set(depth.tolist()))
    means = [float(np.nanmean(sel[depth == d])) for d in layers]
    rho, p = _rho(layers, means)
    rho_units, p_units = _rho(depth, sel)
    return {
        "rho": rho,
        "p_value": p,
        "layer_means": means,
        "rho_units": rho_units,
        "p_units": p_units,
    }


def _depth_summary(s: Stats) -> str:
    means = ", ".join(f"{m:.2f}" for m in s["layer_means"])
    return (
        f"layer depth vs mean selectivity {_rho_text(s['rho'], s['p_value'])} (layer "
        f"means {means}); over units {_rho_text(s['rho_units'], s['p_units'])}"
    )


def _depth_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    fig = _new_figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    depth = np.asarray(stored["depth"].values)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, depth.size)
    ax.scatter(depth + jitter, stored["selectivity"].values, s=6, alpha=0.4, edgecolors="none")
    ax.plot(sorted(set(depth.tolist())), s["layer_means"], color="black", marker="o")
    ax.set_xlabel("layer (input → output)")
    ax.set_ylabel("class selectivity")
    ax.set_title(f"Selectivity by depth ({_rho_text(s['rho'], s['p_value'])})", fontsize=10)
    return {"selectivity_by_depth": fig}


def _l1_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws)
    units = {n: _units(ws, r) for n, r in runs.items()}
    return stack_units(units, ["selectivity", L1_VARIABLE]), (
        _conv_population(ws) + f" L1 variable: {L1_VARIABLE!r} (the raw filter norm)."
    )


def _l1_stats(stored: xr.Dataset) -> Stats:
    stats: Stats = {}
    for family, prefix in (("bn", "bn-"), ("nobn", "nobn-")):
        rho, p = _family_rho(stored, prefix, "selectivity", L1_VARIABLE)
        stats[f"rho_{family}"], stats[f"p_{family}"] = rho, p
    return stats


def _l1_summary(s: Stats) -> str:
    return (
        f"selectivity vs filter L1: with BN {_rho_text(s['rho_bn'], s['p_bn'])}, without "
        f"BN {_rho_text(s['rho_nobn'], s['p_nobn'])}"
    )


def _l1_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    fig = _new_figure(figsize=(10, 4), layout="constrained")
    for i, (label, prefix) in enumerate((("with BN", "bn-"), ("without BN", "nobn-"))):
        ax = fig.add_subplot(1, 2, i + 1)
        mask = _unit_mask(stored, prefix)
        ax.scatter(
            stored["selectivity"].values[mask],
            stored[L1_VARIABLE].values[mask],
            c=stored["depth"].values[mask],
            s=10,
            edgecolors="none",
        )
        rho, p = _family_rho(stored, prefix, "selectivity", L1_VARIABLE)
        ax.set_title(f"{label}: {_rho_text(rho, p)}", fontsize=9)
        ax.set_xlabel("class selectivity")
        ax.set_ylabel("filter L1 norm")
    return {"selectivity_vs_l1": fig}


# ------------------------------------------------------------------------ the registry
_NOT_ORDERED = "corruption vs {what} over all networks"

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "corrupted-labels",
            "Fig. 1: memorisation and single directions",
            "Networks trained on more corrupted labels lose training accuracy faster as "
            "units are ablated (curves not always perfectly ordered).",
            "qualitative: AUC falls with the corrupted fraction (MNIST MLP, CIFAR-10 ConvNet)",
            ordering_rule(
                "rho", "p_value", "ordered_fraction", _NOT_ORDERED.format(what="ablation AUC")
            ),
            _memorising_population,
            _corrupted_stats,
            _corrupted_summary,
            _corrupted_figures,
        ),
        Experiment(
            "noise",
            "Fig. 2: noise along random directions",
            "Networks trained on corrupted labels are more sensitive to noise added to every "
            "unit (scaled by the unit's training-set sd).",
            "qualitative: accuracy under noise falls faster with more corrupted labels",
            ordering_rule(
                "rho", "p_value", "ordered_fraction", _NOT_ORDERED.format(what="noise robustness")
            ),
            _memorising_population,
            _noise_stats,
            _noise_summary,
            _noise_figures,
        ),
        Experiment(
            "ensemble",
            "Fig. 3: generalisation across an ensemble",
            "Networks that generalise worse rely more on single directions: AUC falls with "
            "generalisation error, and the best 5 are more robust than the worst 5.",
            "qualitative: negative relation of AUC and generalisation error (200 CIFAR-10 nets)",
            sign_rule("rho", "p_value", -1, "generalisation error vs ablation AUC"),
            _ensemble_build,
            _ensemble_stats,
            _ensemble_summary,
            _ensemble_figures,
        ),
        Experiment(
            "early-stopping",
            "Fig. 4a-b: AUC over training",
            "Over training, ablation AUC and test loss are negatively correlated; AUC starts "
            "to fall where train and test loss diverge.",
            "Spearman rho(AUC, test loss) = -0.728",
            correlation_rule("rho", "p_value", -0.728, "AUC vs test loss over checkpoints"),
            _early_build,
            _early_stats,
            _early_summary,
            _early_figures,
        ),
        Experiment(
            "hyperparameters",
            "Fig. 4c: hyperparameter selection",
            "Across a learning-rate x batch-size grid, AUC and test accuracy are highly "
            "correlated, so AUC picks good settings without a test set.",
            "Spearman rho(AUC, test accuracy) = 0.914; top-1/5/10 in 13/83/98% of 48-setting "
            "subsets; gap to best 1 ± 1.1%",
            correlation_rule("rho", "p_value", 0.914, "AUC vs test accuracy over the grid"),
            _hp_build,
            _hp_stats,
            _hp_summary,
            _hp_figures,
        ),
        Experiment(
            "dropout",
            "Fig. 5a: dropout",
            "Dropout makes networks robust to ablation up to the dropout fraction only; past "
            "it, networks trained on shuffled labels are much more sensitive than those on "
            "true labels.",
            "qualitative: shuffled-label curves drop soon past the dropout fraction",
            count_rule(
                ("shuffled_more_sensitive", "robust_until_dropout"),
                "reproduced if, for every dropout fraction, the shuffled-label network "
                "has a lower normalised AUC past the dropout fraction than the true-label "
                "one AND every network keeps >= 90% of its accuracy at the dropout "
                "fraction; partly if one of the two holds; not reproduced if neither.",
            ),
            _dropout_build,
            _dropout_stats,
            _dropout_summary,
            _dropout_figures,
        ),
        Experiment(
            "batchnorm",
            "Fig. 5b and Fig. 6: batch normalisation",
            "Batch norm makes ConvNets more robust to ablation, lowers class selectivity and "
            "raises mutual information.",
            "qualitative: BN curves above no-BN; BN selectivity lower, MI higher",
            count_rule(
                ("bn_more_robust", "bn_less_selective", "bn_more_information"),
                "reproduced if, averaged over instances, the BN nets have (1) a higher "
                "ablation AUC, (2) a lower mean class selectivity and (3) a higher mean "
                "MI than the nets without BN; partly if one or two of these hold; not "
                "reproduced if none.",
            ),
            _batchnorm_build,
            _batchnorm_stats,
            _batchnorm_summary,
            _batchnorm_figures,
        ),
        Experiment(
            "selectivity-importance",
            "Fig. 7 and A4: selectivity vs importance",
            "A unit's class selectivity (or MI) barely predicts how much the loss rises when "
            "it is ablated.",
            "Spearman rho(selectivity, importance) = 0.095 (MNIST MLP), -0.428 (CIFAR-10 ConvNet)",
            at_most_rule(
                ("rho_sel_mlp", "rho_sel_conv", "rho_mi_mlp", "rho_mi_conv"),
                0.3,
                "selectivity and MI vs importance, MLP and ConvNet",
            ),
            _selectivity_build,
            _selectivity_stats,
            _selectivity_summary,
            _selectivity_figures,
        ),
        Experiment(
            "ablation-method",
            "Fig. A1: zero vs mean ablation",
            "Ablating to zero is less damaging than ablating to the training-set mean.",
            "qualitative: zero-ablation curves above mean-ablation curves (CIFAR-10 ConvNet)",
            Rule(
                "reproduced if the zero-ablation AUC exceeds the mean-ablation AUC in every "
                "ConvNet; partly if in at least half; not reproduced otherwise.",
                _method_decide,
            ),
            _method_build,
            _method_stats,
            _method_summary,
            _method_figures,
        ),
        Experiment(
            "depth",
            "Fig. A2: selectivity by depth",
            "Class selectivity increases with depth.",
            "qualitative: selectivity rises with depth (CIFAR-10 ConvNet, ImageNet ResNet)",
            sign_rule("rho", "p_value", +1, "layer depth vs the layer's mean selectivity"),
            _depth_build,
            _depth_stats,
            _depth_summary,
            _depth_figures,
        ),
        Experiment(
            "l1",
            "Fig. A3: selectivity vs filter L1 norm",
            "Class selectivity is unrelated or negatively related to the L1 norm of the "
            "filter weights.",
            "qualitative: no correlation (ImageNet), negative (CIFAR-10)",
            at_most_rule(
                ("rho_bn", "rho_nobn"),
                0.3,
                "selectivity vs filter L1, ConvNets with and without BN",
            ),
            _l1_build,
            _l1_stats,
            _l1_summary,
            _l1_figures,
        ),
    )
}
