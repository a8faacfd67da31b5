"""The paper's experiments: populations of networks, the numbers they store, their figures.

Each :class:`Experiment` has five parts, kept apart so that the verdict comes from stored
numbers: ``build`` trains (or reuses) and analyses the networks and returns the dataset to
store; ``statistics`` reads the *stored* dataset and returns the numbers the paper reports,
each with its 95% interval (:mod:`._statistics`); the :class:`~._rules.Rule` turns those
intervals into a verdict; ``figures`` draws from the stored dataset; ``protocol`` sets the
paper's protocol beside ours, so that every deviation is stated (generated from the scale,
never hand-written).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from directionkit.experiments.paper import _figures as fig
from directionkit.experiments.paper import _statistics as st
from directionkit.experiments.paper._core import (
    Scale,
    Workspace,
    stack_models,
    stack_units,
)
from directionkit.experiments.paper._rules import Claim, Rule, all_of
from directionkit.store import open_dataset

__all__ = ["EXPERIMENTS", "Experiment", "ProtocolRow"]

Stats = dict[str, Any]

#: The per-unit L1 variable of A3: the raw filter norm, the paper's quantity (the
#: BN-folded norm is ``weight_l1_folded``).
L1_VARIABLE = "weight_l1"
#: Ablation scopes: every unit of an MLP (Fig. 1a); the feature maps of a ConvNet's last
#: three layers (Fig. 1b, 3, 5b: "only feature maps in the last three layers").
MLP_SCOPES, CONV_SCOPES = ("all",), ("all", "last:3")
MLP_SCOPE, CONV_SCOPE = "all", "last:3"
#: Hyperparameter settings each random sub-selection holds, as a share of the grid (the
#: paper: 48 of 96).
SUBSET_SHARE = 0.5
#: The "soon past the dropout fraction" window of Fig. 5a, in fraction of units.
DROPOUT_WINDOW = 0.2

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class ProtocolRow:
    """One aspect of an experiment's protocol: the paper's and ours, and whether they agree."""

    aspect: str
    paper: str
    ours: str
    same: bool = False

    def deviation(self) -> str:
        """The row as a stated deviation."""
        return f"{self.aspect}: {self.ours} (paper: {self.paper})"


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
    protocol: Callable[[Scale, str], list[ProtocolRow]]

    def deviations(self, scale: Scale, dataset: str) -> list[str]:
        """Every aspect where our protocol differs from the paper's, as sentences."""
        return [row.deviation() for row in self.protocol(scale, dataset) if not row.same]


# ---------------------------------------------------------------------------- helpers
_text = fig.text_values


def _f(value: Any, digits: int = 3) -> str:
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


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


def _p_text(p: Any) -> str:
    if not isinstance(p, int | float) or math.isnan(p):
        return "p n/a"
    return f"p = {p:.3f}" if p >= 1e-3 else f"p = {p:.1e}"


def estimate_text(s: Mapping[str, Any], key: str, digits: int = 3) -> str:
    """``"0.412 [95% CI 0.101 to 0.700], p = 0.004, n = 12"`` for a stored statistic."""
    ci = s.get(f"{key}_ci") or [math.nan, math.nan]
    text = f"{_f(s.get(key), digits)} [95% CI {_f(ci[0], digits)} to {_f(ci[1], digits)}]"
    if f"{key}_p" in s:
        text += f", {_p_text(s[f'{key}_p'])}"
    return text + f", n = {s.get(f'{key}_n', 'n/a')}"


def claims_text(rule: Rule, s: Mapping[str, Any]) -> list[str]:
    """One line per sub-claim of ``rule``: the statistic, its interval and its verdict."""
    return [f"{c.what}: {estimate_text(s, c.key)} -> {c(s)}" for c in rule.claims]


def _ablation(
    ws: Workspace,
    run: Any,
    *,
    conv: bool = False,
    epoch: int | None = None,
    ablate_to: str = "zero",
    noise: bool = False,
) -> xr.Dataset:
    """Ablation (and noise) curves of a run on its training data (the paper's protocol):
    every unit of an MLP, the feature maps of a ConvNet's last three layers."""
    scale = ws.scale
    metrics = ["ablation", "noise"] if noise else ["ablation"]
    parameters: dict[str, Any] = {
        "scopes": CONV_SCOPES if conv else MLP_SCOPES,
        "orderings": scale.conv_orderings if conv else scale.orderings,
        "fractions": scale.conv_fractions if conv else scale.fractions,
    }
    if ablate_to != "zero":
        parameters["ablate_to"] = ablate_to
    if noise:
        parameters["noise_scales"] = scale.noise_scales
        parameters["noise_repeats"] = scale.noise_repeats
    dataset = ws.analyze(run, split="train", metrics=metrics, epoch=epoch, **parameters)
    return dataset.sel(scope=CONV_SCOPE if conv else MLP_SCOPE)


def _units(ws: Workspace, run: Any, *, l1: bool = True) -> xr.Dataset:
    """Per-unit measures of a run on the true test labels (selectivity, MI, importance)."""
    metrics = ["statistics", "importance", *(["weight_l1"] if l1 else [])]
    return ws.analyze(run, split="test", metrics=metrics)


def _model_groups(stored: xr.Dataset, coord: str, fmt: str) -> dict[str, np.ndarray]:
    values = np.asarray(stored[coord].values)
    return {fmt.format(v): values == v for v in sorted(set(values.tolist()))}


def _unit_mask(stored: xr.Dataset, prefix: str) -> np.ndarray:
    models = _text(stored["unit_model"].values)
    return np.char.startswith(models, prefix)


def _live(stored: xr.Dataset) -> np.ndarray:
    """Units whose activity varies on the test data (a dead unit is constant, often 0)."""
    return np.asarray(stored["unit_std"].values, dtype=np.float64) > 0


def _floats(stored: xr.Dataset, name: str) -> np.ndarray:
    return np.asarray(stored[name].values, dtype=np.float64)


def _n_seeds(values: Sequence[Any]) -> str:
    return f"{len(values)} seed{'s' if len(values) != 1 else ''}"


def _size(limit: int | None) -> str:
    return "all" if limit is None else f"{limit:,}"


def _data_row(ws_dataset: str, paper: str, train: int | None, test: int | None) -> ProtocolRow:
    return ProtocolRow(
        "data", paper, f"{ws_dataset} ({_size(train)} training, {_size(test)} test images)"
    )


def _row(aspect: str, paper: Any, ours: Any) -> ProtocolRow:
    return ProtocolRow(aspect, str(paper), str(ours), str(paper) == str(ours))


_MNIST = "MNIST (60,000 training images)"
_CIFAR = "CIFAR-10 (50,000 training images)"


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
        f"{list(s.corruptions)} x {_n_seeds(s.seeds)}, each trained until training accuracy "
        f">= {s.memorize_target} (at most {s.memorize_epochs} epochs); curves on the training "
        f"data with the labels trained on, {s.orderings} orderings, {s.noise_repeats} noise "
        "repeats."
    )
    return stored, population


def _memorising_protocol(scale: Scale, dataset: str, what: str) -> list[ProtocolRow]:
    return [
        _data_row(dataset, _MNIST, scale.train_limit, scale.test_limit),
        _row(
            "model",
            "2-hidden-layer MLP (also an 11-layer CIFAR-10 ConvNet and an ImageNet ResNet-50)",
            f"MLP {list(scale.hidden)} only",
        ),
        _row(
            "training",
            "640 epochs",
            f"until training accuracy >= {scale.memorize_target}"
            f" (at most {scale.memorize_epochs} epochs)",
        ),
        _row(
            "population",
            "label corruption 0 to 1 (seeds not stated)",
            f"corruption {list(scale.corruptions)} x {_n_seeds(scale.seeds)}",
        ),
        _row(
            what,
            "10 random orderings" if what == "orderings" else "not stated",
            f"{scale.orderings} random orderings"
            if what == "orderings"
            else f"{scale.noise_repeats} repeats per scale",
        ),
    ]


def _ordered_per_seed(stored: xr.Dataset, values: np.ndarray) -> float:
    corruption = _floats(stored, "corruption")
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
    corruption = _floats(stored, "corruption")
    levels = sorted(set(corruption.tolist()))
    return {
        **st.correlation("rho", corruption, values),
        "ordered_fraction": _ordered_per_seed(stored, values),
        "corruptions": levels,
        f"mean_{name}": [float(values[corruption == c].mean()) for c in levels],
        "train_accuracy": [float(v) for v in stored["train_accuracy"].values],
        "interval": "bootstrap over networks; p by permutation",
    }


def _corrupted_stats(stored: xr.Dataset) -> Stats:
    return _corruption_stats(stored, _floats(stored, "ablation_auc"), "auc")


def _by_level(s: Stats, name: str) -> str:
    return ", ".join(f"{c:g}: {a:.3f}" for c, a in zip(s["corruptions"], s[name], strict=True))


def _corrupted_summary(s: Stats) -> str:
    return (
        f"corruption vs ablation AUC rho = {estimate_text(s, 'rho')}; mean AUC by "
        f"corruption {_by_level(s, 'mean_auc')}; true > fully corrupted in "
        f"{s['ordered_fraction']:.0%} of seeds; training accuracy "
        f"{_span(min(s['train_accuracy']), max(s['train_accuracy']))}"
    )


def _corrupted_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = _model_groups(stored, "corruption", "{:g} corrupted")
    return {
        "ablation_curves": fig.curves(stored, groups, "Cumulative ablation by label corruption"),
        "ablation_curves_per_network": fig.per_network(stored, "corruption"),
    }


def _noise_robustness(stored: xr.Dataset) -> np.ndarray:
    """Mean over positive noise scales of accuracy / clean accuracy, per model."""
    accuracy = stored["noise_accuracy"].mean("repeat")
    scales = _floats(stored, "noise_scale")
    clean = _floats(stored, "accuracy")
    ratio = np.asarray(accuracy.values, dtype=np.float64) / clean[:, None]
    return ratio[:, scales > 0].mean(axis=1)


def _noise_stats(stored: xr.Dataset) -> Stats:
    return _corruption_stats(stored, _noise_robustness(stored), "robustness")


def _noise_summary(s: Stats) -> str:
    return (
        f"corruption vs noise robustness (mean relative training accuracy over noise scales) "
        f"rho = {estimate_text(s, 'rho')}; by corruption {_by_level(s, 'mean_robustness')}; "
        f"true > fully corrupted in {s['ordered_fraction']:.0%} of seeds"
    )


def _noise_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = _model_groups(stored, "corruption", "{:g} corrupted")
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


# ---------------------------------------------------------------------------- Fig. 3
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
        analyses[f"s{seed}"] = _ablation(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["seed", "epoch", "train_accuracy", "test_accuracy"],
    )
    stored["generalisation_error"] = stored["train_accuracy"] - stored["test_accuracy"]
    stored.attrs["test_images"] = _test_images(ws, s.ensemble_test_limit)
    population = (
        f"{len(s.ensemble_seeds)} MLPs {list(s.ensemble_hidden)} of identical topology on "
        f"the same {_size(s.ensemble_train_limit)} {ws.dataset} training images with their "
        f"true labels, differing only in seed (initialisation and data order), each trained "
        f"until training accuracy >= {s.memorize_target} (at most {s.memorize_epochs} "
        f"epochs). A small training set makes generalisation vary between seeds; "
        f"{_size(s.ensemble_test_limit)} test images keep the error of measuring it small "
        "(both stated in the numbers). Ablation on the training data."
    )
    return stored, population


def _test_images(ws: Workspace, limit: int | None) -> int:
    from directionkit.reference_models.runs import split_data

    config = ws.config(hidden=(1,), test_limit=limit)
    return len(split_data(config, "test").y)


def _ensemble_stats(stored: xr.Dataset) -> Stats:
    gap = _floats(stored, "generalisation_error")
    auc = _floats(stored, "ablation_auc")
    test = _floats(stored, "test_accuracy")
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
        f"{_span(s['gap_range'][0], s['gap_range'][1], 3)}, sd {_f(s['gap_sd'])} between "
        f"networks; one network's test accuracy has a sampling sd of "
        f"{_f(s['measurement_sd'])} on its {s['test_images']} test images, shared by all); "
        f"best-{s['k']} "
        f"minus worst-{s['k']} AUC = {estimate_text(s, 'best_minus_worst')} "
        f"({s['best_auc']:.3f} vs {s['worst_auc']:.3f})"
    )


def _ensemble_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    models = _text(stored["model"].values)
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
            f"AUC vs generalisation error over {s['rho_n']} seeds\n(rho = {_f(s['rho'])}, "
            f"95% CI {_f(s['rho_ci'][0])} to {_f(s['rho_ci'][1])})",
            _floats(stored, "test_accuracy"),
            "test accuracy",
        ),
    }


def _ensemble_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        _data_row(
            dataset, _CIFAR + ", true labels", scale.ensemble_train_limit, scale.ensemble_test_limit
        ),
        _row(
            "model",
            "11-layer ConvNet, last three layers ablated",
            f"MLP {list(scale.ensemble_hidden)}, every unit ablated",
        ),
        _row(
            "population",
            "200 networks differing only in seed",
            f"{len(scale.ensemble_seeds)} networks differing only in seed",
        ),
        _row(
            "training",
            "100 epochs",
            f"until training accuracy >= {scale.memorize_target} "
            f"(at most {scale.memorize_epochs} epochs)",
        ),
        _row("orderings", "10 random orderings", f"{scale.orderings} random orderings"),
    ]


# -------------------------------------------------------------------------- Fig. 4a-b
def _early_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    checkpoints = list(range(s.early_every, s.early_epochs + 1, s.early_every))
    parts = []
    for seed in s.early_seeds:
        config = ws.config(
            hidden=s.early_hidden,
            corruption=0.0,
            seed=seed,
            epochs=s.early_epochs,
            checkpoint_epochs=checkpoints,
        )
        run = ws.train(config, "mlp-early-stopping")
        history = open_dataset(run / "history.zarr")
        aucs = [
            float(_ablation(ws, run, epoch=e)["ablation_auc"])
            for e in ws.bar(checkpoints, f"checkpoints of seed {seed}")
        ]
        part = history.sel(epoch=checkpoints)[
            ["train_loss", "test_loss", "train_accuracy", "test_accuracy"]
        ].drop_attrs()
        part["ablation_auc"] = ("epoch", np.asarray(aucs))
        parts.append(part)
    stored = xr.concat(parts, dim="seed").assign_coords(seed=list(s.early_seeds))
    stored.attrs["epochs"] = s.early_epochs
    population = (
        f"{_n_seeds(s.early_seeds)} of one MLP {list(s.early_hidden)} on {ws.dataset} with "
        f"its true labels, {s.early_epochs} epochs; losses and ablation AUC on the training "
        f"data at {_every(s.early_every, 'epoch')}."
    )
    return stored, population


#: How close (a share of the epochs trained) the AUC peak must be to the test-loss minimum.
TIMING_TOLERANCE = 0.15


def _early_stats(stored: xr.Dataset) -> Stats:
    epochs = np.asarray(stored["epoch"].values)
    total = int(stored.attrs.get("epochs", epochs.max()))
    rhos, ps, lags, loss_min, auc_max = [], [], [], [], []
    for seed in stored["seed"].values:
        one = stored.sel(seed=seed)
        loss, auc = _floats(one, "test_loss"), _floats(one, "ablation_auc")
        c = st.correlation("r", auc, loss)
        rhos.append(c["r"])
        ps.append(c["r_p"])
        low, peak = int(epochs[int(np.argmin(loss))]), int(epochs[int(np.argmax(auc))])
        loss_min.append(low)
        auc_max.append(peak)
        # no divergence within the run (test loss still falling at the end): untestable
        lags.append(math.nan if low == epochs[-1] else abs(peak - low) / total)
    out = {
        **st.mean("rho", rhos),
        **st.mean("timing", lags),
        "rho_p": float(max(ps)) if ps else math.nan,
        "rho_by_seed": rhos,
        "p_by_seed": ps,
        "min_test_loss_epoch": loss_min,
        "max_auc_epoch": auc_max,
        "n_checkpoints": int(epochs.size),
        "interval": "bootstrap over seeds of the per-seed rho and lag; p is the largest "
        "per-seed permutation p over checkpoints",
    }
    if any(math.isnan(v) for v in lags):  # a seed whose test loss never turned
        out["timing_ci"] = [math.nan, math.nan]
    return out


def _early_summary(s: Stats) -> str:
    return (
        f"AUC vs test loss over {s['n_checkpoints']} checkpoints, mean per-seed rho = "
        f"{estimate_text(s, 'rho')} (per seed {', '.join(_f(r) for r in s['rho_by_seed'])});"
        f" test loss lowest at epoch {s['min_test_loss_epoch']}, AUC highest at epoch "
        f"{s['max_auc_epoch']}; lag as a share of training = {estimate_text(s, 'timing')}"
    )


def _early_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    figure = fig.new_figure(figsize=(7.4, 4.2))
    ax = figure.add_subplot()
    epochs = stored["epoch"].values
    twin = ax.twinx()
    for i, seed in enumerate(stored["seed"].values):
        one = stored.sel(seed=seed)
        first = i == 0
        ax.plot(
            epochs, one["train_loss"].values, color="C0", label="training loss" if first else None
        )
        ax.plot(epochs, one["test_loss"].values, color="C4", label="test loss" if first else None)
        twin.plot(
            epochs,
            one["ablation_auc"].values,
            color="C2",
            label="ablation AUC (training data)" if first else None,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    twin.set_ylabel("ablation AUC (training data)", color="C2")
    lines = ax.get_lines()[:2] + twin.get_lines()[:1]
    ax.legend(
        lines,
        [str(line.get_label()) for line in lines],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.15, 1.0),
    )
    ax.set_title(
        f"Loss and ablation AUC over training ({stored.sizes['seed']} seeds, one line each)",
        fontsize=9,
    )
    flat = stored.stack(point=("seed", "epoch"))
    return {
        "auc_over_training": figure,
        "auc_vs_test_loss": fig.scatter(
            flat["test_loss"].values,
            flat["ablation_auc"].values,
            "test loss",
            "ablation AUC (training data)",
            f"AUC vs test loss, {stored.sizes['seed']} seeds (mean per-seed rho = {_f(s['rho'])})",
            np.asarray(flat["epoch"].values, dtype=np.float64),
            "epoch",
        ),
    }


def _early_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        _data_row(dataset, _MNIST + ", true labels", scale.train_limit, scale.test_limit),
        _row(
            "model",
            "MLP of 2048 units per layer (Fig. 4a); 11-layer CIFAR-10 ConvNet (Fig. 4b)",
            f"MLP {list(scale.early_hidden)} only",
        ),
        _row(
            "training",
            "640 epochs",
            f"{scale.early_epochs} epochs, AUC {_every(scale.early_every, 'epoch')}",
        ),
        _row("population", "one network", f"{_n_seeds(scale.early_seeds)}"),
    ]


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
        f"{list(s.hp_batch_sizes)} x {s.hp_repeats} repeats; AUC on the training data. "
        "Networks whose training accuracy is not clearly above chance are left out before "
        "any statistic (and counted)."
    )
    return stored, population


#: The largest mean test-accuracy gap to the best setting that counts as the paper's
#: "1 ± 1.1%" (its mean plus about two of its sds).
GAP_BOUND = 0.03


def _settings(stored: xr.Dataset, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    auc, test = _floats(stored, "ablation_auc"), _floats(stored, "test_accuracy")
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
    auc, test = _floats(stored, "ablation_auc"), _floats(stored, "test_accuracy")
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
        f" (test accuracy {_span(low, high, 3)}; {left}); in random "
        f"{s['subset_size']}-of-{s['n_settings']} sub-selections AUC's pick is among the "
        f"global top-1/5/10 settings in {_f(100 * s['top1'], 0)}/{_f(100 * s['top5'], 0)}/"
        f"{_f(100 * s['top10'], 0)}% and its test-accuracy gap to the best is "
        f"{estimate_text(s, 'gap')} (sd {_f(s['gap_sd'])}; a random pick: "
        f"{_f(s['random_gap'])})"
    )


def _hp_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    near = set(s["left_out"])
    keep = np.array([str(m) not in near for m in stored["model"].values])
    return {
        "auc_vs_test_accuracy": fig.scatter(
            _floats(stored, "ablation_auc")[keep],
            _floats(stored, "test_accuracy")[keep],
            "ablation AUC (training data)",
            "test accuracy",
            f"Hyperparameter grid: {s['n_models']} networks ({len(near)} at chance left "
            f"out)\nrho = {_f(s['rho'])}, 95% CI {_f(s['rho_ci'][0])} to {_f(s['rho_ci'][1])}",
            np.log10(_floats(stored, "lr")[keep]),
            "log10 learning rate",
        )
    }


def _hp_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    settings = len(scale.hp_lrs) * len(scale.hp_batch_sizes)
    return [
        _data_row(dataset, _CIFAR, scale.train_limit, scale.test_limit),
        _row("model", "11-layer ConvNet", f"MLP {list(scale.hp_hidden)}"),
        _row(
            "population",
            "96 settings (learning rate x batch size) x 2 repeats",
            f"{settings} settings x {scale.hp_repeats} repeats",
        ),
        _row("training", "100 epochs", f"{scale.hp_epochs} epochs of SGD"),
        _row(
            "sub-selections",
            "48 of 96 settings",
            f"{max(2, round(settings * SUBSET_SHARE))} of {settings} settings",
        ),
    ]


# ---------------------------------------------------------------------------- Fig. 5a
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
        analyses[f"d{dropout:g}-p{corruption:g}-s{seed}"] = _ablation(ws, run)
    stored = stack_models(
        analyses,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["dropout", "corruption", "seed", "train_accuracy", "epoch"],
    )
    stored.attrs["target"] = s.memorize_target
    population = (
        f"{len(runs)} MLPs {list(s.dropout_hidden)} on {ws.dataset}: dropout "
        f"{list(s.dropouts)} x true / fully shuffled labels x {_n_seeds(s.dropout_seeds)}, "
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
    fractions = _floats(stored, "fraction")
    curves = np.asarray(stored["ablation_accuracy"].mean("ordering").values, dtype=np.float64)
    lost, beyond, before, after = [], [], [], []
    for curve, d in zip(curves, _floats(stored, "dropout"), strict=True):
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
    dropouts = _floats(stored, "dropout")
    shuffled = _floats(stored, "corruption") > 0
    train = _floats(stored, "train_accuracy")
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
        f"{d:g}: true {_f(t)} / shuffled {_f(u)}"
        for d, t, u in zip(
            s["dropouts"], s["true_auc_beyond"], s["shuffled_auc_beyond"], strict=True
        )
    ]
    kept = (
        [a for m, a in zip(s["models"], s["train_accuracy"], strict=True) if m in s["left_out"]]
        if "models" in s
        else []
    )
    reached = f"; they reached {_span(min(kept), max(kept))}" if kept else ""
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
    dropouts, corruption = _floats(stored, "dropout"), _floats(stored, "corruption")
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
        _data_row(dataset, _MNIST, scale.train_limit, scale.test_limit),
        _row("model", "MLP of 2048 units per layer", f"MLP {list(scale.dropout_hidden)}"),
        _row(
            "training",
            "5000 epochs",
            f"until training accuracy >= {scale.memorize_target} "
            f"(at most {scale.dropout_epochs} epochs)",
        ),
        _row(
            "population",
            "dropout [0.1, 0.2, 0.3] x true / randomised labels (seeds not stated)",
            f"dropout {list(scale.dropouts)} x true / shuffled labels x "
            f"{_n_seeds(scale.dropout_seeds)}",
        ),
    ]


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
        f"lr {s.conv_lr:g}); ablation curves of the feature maps of the last three layers "
        f"on the training data ({s.conv_orderings} orderings), per-unit measures on the "
        "test data. A unit whose activity is constant on the test data is dead: counted, "
        "and left out of selectivity and MI statistics."
    )


def _conv_protocol(
    scale: Scale, dataset: str, population: str, arms: str = "with and without BN"
) -> list[ProtocolRow]:
    return [
        _data_row(dataset, _CIFAR, scale.conv_train_limit or scale.train_limit, scale.test_limit),
        _row(
            "model",
            "11-layer ConvNet, 64-512 channels",
            f"11-layer ConvNet, {scale.conv_width:g} x the channels",
        ),
        _row("training", "100 epochs", f"{scale.conv_epochs} epochs"),
        _row("population", population, f"{scale.conv_instances} instance(s) {arms}"),
        _row(
            "ablation scope",
            "feature maps of the last three layers",
            "feature maps of the last three layers",
        ),
        _row("orderings", "10 random orderings", f"{scale.conv_orderings} random orderings"),
    ]


def _batchnorm_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws)
    curves = {n: _ablation(ws, r, conv=True) for n, r in ws.bar(list(runs.items()), "ConvNets")}
    units = {n: _units(ws, r) for n, r in runs.items()}
    stored = stack_models(
        curves,
        ["accuracy", "ablation_accuracy", "ablation_auc"],
        by=["batch_norm", "seed", "train_accuracy", "test_accuracy"],
    )
    per_unit = stack_units(units, ["selectivity", "mutual_info", "unit_std"])
    stored = xr.merge([stored, per_unit.rename(unit="unit_all")], compat="override")
    return stored, _conv_population(ws)


def _per_network_means(stored: xr.Dataset, name: str, mask: np.ndarray) -> np.ndarray:
    """The mean of ``name`` over each network's units in ``mask``."""
    values = _floats(stored, name)
    models = _text(stored["unit_model"].values)
    return np.array(
        [
            np.nanmean(values[mask & (models == m)]) if np.any(mask & (models == m)) else math.nan
            for m in dict.fromkeys(models[mask].tolist())
        ]
    )


def _batchnorm_stats(stored: xr.Dataset) -> Stats:
    bn = np.asarray(stored["batch_norm"].values, dtype=bool)
    auc = _floats(stored, "ablation_auc")
    live = _live(stored)
    with_bn, without = _unit_mask(stored, "bn-"), _unit_mask(stored, "nobn-")
    test = _floats(stored, "test_accuracy")
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
        f" ({_f(s['auc_bn'])} vs {_f(s['auc_nobn'])}); live-unit selectivity difference = "
        f"{estimate_text(s, 'selectivity_difference')} ({_f(s['selectivity_bn'])} vs "
        f"{_f(s['selectivity_nobn'])}); live-unit MI difference = "
        f"{estimate_text(s, 'mi_difference')} bits ({_f(s['mi_bn'])} vs {_f(s['mi_nobn'])});"
        f" dead units {_f(100 * s['dead_bn'], 1)}% with BN vs {_f(100 * s['dead_nobn'], 1)}%"
        f" without; test accuracy {_f(s['test_accuracy_bn'])} vs {_f(s['test_accuracy_nobn'])}"
    )


def _batchnorm_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    groups = {"with BN": np.asarray(stored["batch_norm"].values, dtype=bool)}
    groups["without BN"] = ~groups["with BN"]
    live = _live(stored)
    arms = [
        ("with BN (live units)", _unit_mask(stored, "bn-") & live),
        ("without BN (live units)", _unit_mask(stored, "nobn-") & live),
    ]
    return {
        "ablation_curves": fig.curves(
            stored, groups, "Batch norm: cumulative ablation of the last three layers"
        ),
        "ablation_curves_per_network": fig.per_network(stored, "batch_norm", scope=CONV_SCOPE),
        "selectivity_mi": fig.histograms(
            stored,
            ["selectivity", "mutual_info"],
            f"Class selectivity and MI of live units (dead: {_f(100 * s['dead_bn'], 1)}% with "
            f"BN, {_f(100 * s['dead_nobn'], 1)}% without; test data)",
            arms,
            {"selectivity": "class selectivity", "mutual_info": "mutual information (bits)"},
        ),
    }


def _selectivity_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    units = {}
    for seed in s.selectivity_seeds:
        config = ws.config(hidden=s.selectivity_hidden, seed=seed, epochs=s.selectivity_epochs)
        units[f"mlp-s{seed}"] = _units(ws, ws.train(config, "mlp-selectivity"), l1=False)
    runs = _conv_runs(ws, batch_norm=(True,))
    units.update({f"conv-{n}": _units(ws, r) for n, r in runs.items()})
    stored = stack_units(units, ["selectivity", "mutual_info", "importance_loss", "unit_std"])
    population = (
        f"{_n_seeds(s.selectivity_seeds)} of an MLP {list(s.selectivity_hidden)} on "
        f"{ws.dataset} (true labels, {s.selectivity_epochs} epochs) and the "
        f"{s.conv_instances} batch-norm ConvNet(s) of the batchnorm experiment; importance "
        "= change in test loss when the unit alone is ablated. Correlations are taken "
        "within each layer of each network, over live units."
    )
    return stored, population


def _within(stored: xr.Dataset, key: str, prefix: str, x: str, y: str) -> Stats:
    mask = _unit_mask(stored, prefix) & _live(stored)
    return st.within_layer(
        key,
        _floats(stored, x)[mask],
        _floats(stored, y)[mask],
        _text(stored["unit_model"].values)[mask],
        np.asarray(stored["depth"].values)[mask],
    )


def _pooled(stored: xr.Dataset, prefix: str, x: str, y: str) -> float:
    from directionkit.metrics._resampling import rank_correlation

    mask = _unit_mask(stored, prefix) & _live(stored)
    return rank_correlation(_floats(stored, x)[mask], _floats(stored, y)[mask])


def _selectivity_stats(stored: xr.Dataset) -> Stats:
    stats: Stats = {}
    for measure, short in (("selectivity", "sel"), ("mutual_info", "mi")):
        for family, prefix in (("mlp", "mlp-"), ("conv", "conv-")):
            stats.update(_within(stored, f"{short}_{family}", prefix, measure, "importance_loss"))
            stats[f"pooled_{short}_{family}"] = _pooled(stored, prefix, measure, "importance_loss")
    stats["dead"] = float(np.mean(~_live(stored)))
    stats["interval"] = (
        "two-stage bootstrap: networks, then units within each layer of each network"
    )
    return stats


def _selectivity_summary(s: Stats) -> str:
    def layers(key: str) -> str:
        return ", ".join(_f(v, 2) for v in s[f"{key}_by_layer"])

    return (
        f"mean within-layer rho of importance with selectivity: MLP "
        f"{estimate_text(s, 'sel_mlp')}, ConvNet {estimate_text(s, 'sel_conv')} (ConvNet "
        f"layers {layers('sel_conv')}); with MI: MLP {estimate_text(s, 'mi_mlp')}, ConvNet "
        f"{estimate_text(s, 'mi_conv')}; pooled over layers (the paper's number): "
        f"selectivity MLP {_f(s['pooled_sel_mlp'])}, ConvNet {_f(s['pooled_sel_conv'])}; "
        f"dead units left out: {_f(100 * s['dead'], 1)}%"
    )


def _layer_scatter(
    stored: xr.Dataset, panels: Sequence[tuple[str, str, str, str]], ylabel: str, title: str
) -> Figure:
    """Scatter panels of ``(label, unit prefix, x variable, y variable)``, coloured by
    layer depth, with a colour bar each."""
    columns = min(2, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = fig.new_figure(figsize=(6.0 * columns, 4.4 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    labels = {
        "selectivity": "class selectivity",
        "mutual_info": "mutual information (bits)",
        L1_VARIABLE: "filter L1 norm",
        "importance_loss": "Δ test loss when ablated",
    }
    for ax, (label, prefix, x, y) in zip(axes, panels, strict=False):
        mask = _unit_mask(stored, prefix) & _live(stored)
        depth = np.asarray(stored["depth"].values)[mask] + 1
        points = ax.scatter(
            _floats(stored, x)[mask],
            _floats(stored, y)[mask],
            c=depth,
            s=9,
            cmap="viridis",
            edgecolors="none",
        )
        figure.colorbar(points, ax=ax, label="layer (1 = first)")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(labels.get(x, x))
        ax.set_ylabel(labels.get(y, ylabel))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=10)
    return figure


def _selectivity_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    panels = [
        (
            f"{family}: within-layer rho {_f(s[f'{short}_{key}'])}",
            prefix,
            measure,
            "importance_loss",
        )
        for measure, short in (("selectivity", "sel"), ("mutual_info", "mi"))
        for family, prefix, key in (("MLP", "mlp-", "mlp"), ("ConvNet", "conv-", "conv"))
    ]
    return {
        "selectivity_vs_importance": _layer_scatter(
            stored,
            panels,
            "Δ test loss when ablated",
            "Selectivity and MI vs importance, live units on the test data",
        )
    }


def _selectivity_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        _data_row(
            dataset,
            "MNIST (MLP), CIFAR-10 (ConvNet), ImageNet (ResNet-50)",
            scale.train_limit,
            scale.test_limit,
        ),
        _row(
            "models",
            "an MLP of 128 units per layer (640 epochs), an 11-layer ConvNet, a ResNet-50",
            f"{_n_seeds(scale.selectivity_seeds)} of an MLP "
            f"{list(scale.selectivity_hidden)} ({scale.selectivity_epochs} epochs), "
            f"{scale.conv_instances} ConvNet(s) x {scale.conv_width:g} width "
            f"({scale.conv_epochs} epochs), no ResNet",
        ),
        _row(
            "statistic",
            "Spearman rho pooled over layers, and a regression per layer",
            "mean within-layer Spearman rho (the pooled rho reported beside it)",
        ),
        _row("dead units", "selectivity 0", "left out (counted)"),
    ]


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
        f"{_f(100 * s['fraction_zero_better'], 0)}% of networks"
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
    data = data.rename(curve="model")
    return {
        "ablation_curves": fig.curves(
            data, groups, "Ablation to zero vs to the training-set mean (last three layers)"
        )
    }


def _depth_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws, batch_norm=(True,))
    units = {n: _units(ws, r) for n, r in runs.items()}
    return stack_units(units, ["selectivity", "unit_std"]), (
        _conv_population(ws) + " Batch-norm nets only."
    )


def _depth_stats(stored: xr.Dataset) -> Stats:
    live = _live(stored)
    return {
        **st.depth_trend(
            "rho",
            _floats(stored, "selectivity")[live],
            _text(stored["unit_model"].values)[live],
            np.asarray(stored["depth"].values)[live],
        ),
        "dead": float(np.mean(~live)),
        "interval": "two-stage bootstrap: networks, then units within each layer; p permutes "
        "the layer means over depths",
    }


def _depth_summary(s: Stats) -> str:
    means = ", ".join(_f(m, 2) for m in s["rho_means"])
    return (
        f"layer depth vs the layer's mean selectivity (live units) rho = "
        f"{estimate_text(s, 'rho')} (layer means {means}); dead units left out: "
        f"{_f(100 * s['dead'], 1)}%"
    )


def _depth_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    figure = fig.new_figure(figsize=(6.4, 4.2))
    ax = figure.add_subplot()
    live = _live(stored)
    depth = np.asarray(stored["depth"].values)[live] + 1
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, depth.size)
    ax.scatter(
        depth + jitter,
        _floats(stored, "selectivity")[live],
        s=6,
        alpha=0.4,
        edgecolors="none",
        label="live units",
    )
    ax.plot(
        np.arange(1, len(s["rho_means"]) + 1),
        s["rho_means"],
        color="black",
        marker="o",
        label="layer mean",
    )
    ax.set_xlabel("layer (1 = first)")
    ax.set_ylabel("class selectivity (test data)")
    ax.set_title(
        f"Selectivity by depth, {s['rho_n']} network(s)\nrho = {_f(s['rho'])}, 95% "
        f"CI {_f(s['rho_ci'][0])} to {_f(s['rho_ci'][1])}",
        fontsize=9,
    )
    ax.legend()
    return {"selectivity_by_depth": fig.legend_outside(figure)}


def _l1_build(ws: Workspace) -> tuple[xr.Dataset, str]:
    runs = _conv_runs(ws)
    units = {n: _units(ws, r) for n, r in runs.items()}
    return stack_units(units, ["selectivity", L1_VARIABLE, "unit_std"]), (
        _conv_population(ws) + f" L1 variable: {L1_VARIABLE!r} (the raw filter norm); "
        "correlations within each layer of each network."
    )


def _l1_stats(stored: xr.Dataset) -> Stats:
    stats: Stats = {}
    for family, prefix in (("bn", "bn-"), ("nobn", "nobn-")):
        stats.update(_within(stored, family, prefix, "selectivity", L1_VARIABLE))
        stats[f"pooled_{family}"] = _pooled(stored, prefix, "selectivity", L1_VARIABLE)
    stats["interval"] = (
        "two-stage bootstrap: networks, then units within each layer of each network"
    )
    return stats


def _l1_summary(s: Stats) -> str:
    return (
        f"mean within-layer rho of selectivity with filter L1: with BN "
        f"{estimate_text(s, 'bn')}, without BN {estimate_text(s, 'nobn')}; pooled over "
        f"layers (confounded by depth): {_f(s['pooled_bn'])} and {_f(s['pooled_nobn'])}"
    )


def _l1_figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    panels = [
        (f"{label}: within-layer rho {_f(s[key])}", prefix, "selectivity", L1_VARIABLE)
        for label, prefix, key in (("with BN", "bn-", "bn"), ("without BN", "nobn-", "nobn"))
    ]
    return {
        "selectivity_vs_l1": _layer_scatter(
            stored, panels, "filter L1 norm", "Selectivity vs filter L1 norm, live units"
        )
    }


def _method_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return _conv_protocol(scale, dataset, "one network (not stated)")


def _l1_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    rows = _conv_protocol(scale, dataset, "one network (not stated); also ImageNet ResNet")
    return [r for r in rows if r.aspect not in ("ablation scope", "orderings")] + [
        _row(
            "statistic",
            "Spearman rho pooled over layers",
            "mean within-layer Spearman rho (pooled rho reported beside it)",
        ),
        _row("dead units", "selectivity 0", "left out"),
    ]


def _depth_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    rows = _conv_protocol(
        scale, dataset, "one network (not stated); also ImageNet ResNet", arms="with BN"
    )
    return [r for r in rows if r.aspect not in ("ablation scope", "orderings")] + [
        _row("dead units", "selectivity 0", "left out"),
    ]


# ------------------------------------------------------------------------ the registry
def _curve_claim(what: str) -> Claim:
    return Claim(
        "rho", f"Spearman rho of label corruption and {what} over networks", direction=-1, min_n=6
    )


#: Two normalised AUCs (or mean selectivities, or MIs in bits) closer than this are the
#: same for the purpose of a verdict.
AUC_MARGIN = 0.02

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
_WITHIN = "mean within-layer Spearman rho of {x} and {y}, {family}"

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "corrupted-labels",
            "Fig. 1: memorisation and single directions",
            "Networks trained on more corrupted labels lose training accuracy faster as "
            "units are ablated (curves not always perfectly ordered).",
            "qualitative: AUC falls with the corrupted fraction (MNIST MLP, CIFAR-10 ConvNet)",
            all_of([_curve_claim("ablation AUC")]),
            _memorising_population,
            _corrupted_stats,
            _corrupted_summary,
            _corrupted_figures,
            lambda scale, data: _memorising_protocol(scale, data, "orderings"),
        ),
        Experiment(
            "noise",
            "Fig. 2: noise along random directions",
            "Networks trained on corrupted labels are more sensitive to noise added to every "
            "unit (scaled by the unit's training-set sd).",
            "qualitative: accuracy under noise falls faster with more corrupted labels",
            all_of([_curve_claim("noise robustness")]),
            _memorising_population,
            _noise_stats,
            _noise_summary,
            _noise_figures,
            lambda scale, data: _memorising_protocol(scale, data, "noise repeats"),
        ),
        Experiment(
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
        ),
        Experiment(
            "early-stopping",
            "Fig. 4a-b: AUC over training",
            "Over training on true labels, ablation AUC and test loss are negatively "
            "correlated, and AUC starts to fall where train and test loss diverge.",
            "Spearman rho(AUC, test loss) = -0.728 (CIFAR-10 ConvNet); AUC falls as test "
            "loss turns (MNIST MLP, shown)",
            all_of(
                [
                    Claim(
                        "rho",
                        "mean over seeds of Spearman rho of ablation AUC and test loss "
                        "over checkpoints (p: the largest per-seed p)",
                        direction=-1,
                        paper=-0.728,
                    ),
                    Claim(
                        "timing",
                        "lag between the AUC peak and the test-loss minimum, as a "
                        "share of the epochs trained (undefined, so inconclusive, when test "
                        "loss never turns)",
                        kind="below",
                        margin=TIMING_TOLERANCE,
                    ),
                ]
            ),
            _early_build,
            _early_stats,
            _early_summary,
            _early_figures,
            _early_protocol,
        ),
        Experiment(
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
                        "Spearman rho of ablation AUC and test accuracy over the "
                        "networks above chance",
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
                lead="Networks whose training accuracy is not clearly above chance are left "
                "out first.",
            ),
            _hp_build,
            _hp_stats,
            _hp_summary,
            _hp_figures,
            _hp_protocol,
        ),
        Experiment(
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
                        "share of training accuracy lost by the dropout "
                        "fraction, every network kept",
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
        ),
        Experiment(
            "batchnorm",
            "Fig. 5b and Fig. 6: batch normalisation",
            "Batch norm makes ConvNets more robust to ablation, lowers class selectivity and "
            "raises mutual information.",
            "qualitative: BN curves above no-BN (4 instances each); BN selectivity lower, MI "
            "higher",
            all_of(
                _BN_CLAIMS,
                lead="Dead units (constant on the test data) are counted and "
                "left out of selectivity and MI.",
            ),
            _batchnorm_build,
            _batchnorm_stats,
            _batchnorm_summary,
            _batchnorm_figures,
            lambda scale, data: _conv_protocol(scale, data, "4 instances with and without BN"),
        ),
        Experiment(
            "selectivity-importance",
            "Fig. 7 and A4: selectivity vs importance",
            "Within layers, a unit's class selectivity (or MI) is no better a predictor of "
            "how much the test loss rises when it is ablated (no positive relation).",
            "Spearman rho(selectivity, importance) = 0.095 (MNIST MLP), -0.428 (CIFAR-10 "
            "ConvNet, driven by early layers; later layers none)",
            all_of(
                [
                    Claim(key, _WITHIN.format(x=x, y="importance", family=family), kind="below")
                    for x, short in (("selectivity", "sel"), ("MI", "mi"))
                    for family, key in (("MLP", f"{short}_mlp"), ("ConvNet", f"{short}_conv"))
                ]
            ),
            _selectivity_build,
            _selectivity_stats,
            _selectivity_summary,
            _selectivity_figures,
            _selectivity_protocol,
        ),
        Experiment(
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
        ),
        Experiment(
            "depth",
            "Fig. A2: selectivity by depth",
            "Class selectivity increases with depth.",
            "qualitative: selectivity rises with depth (CIFAR-10 ConvNet, ImageNet ResNet)",
            all_of(
                [
                    Claim(
                        "rho",
                        "Spearman rho of layer depth and the layer's mean selectivity",
                        direction=+1,
                    ),
                ]
            ),
            _depth_build,
            _depth_stats,
            _depth_summary,
            _depth_figures,
            _depth_protocol,
        ),
        Experiment(
            "l1",
            "Fig. A3: selectivity vs filter L1 norm",
            "Class selectivity is unrelated or negatively related to the L1 norm of the "
            "filter weights.",
            "qualitative: no correlation (ImageNet), negative (CIFAR-10)",
            all_of(
                [
                    Claim(
                        key,
                        _WITHIN.format(x="selectivity", y="filter L1", family=family),
                        kind="below",
                    )
                    for family, key in (("with BN", "bn"), ("without BN", "nobn"))
                ]
            ),
            _l1_build,
            _l1_stats,
            _l1_summary,
            _l1_figures,
            _l1_protocol,
        ),
    )
}
