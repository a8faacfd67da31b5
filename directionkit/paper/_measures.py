"""``measures`` (beyond the paper; issue 26): does the ablation AUC rank networks by their
generalization gap as well as the field's other measures?  A PGDL-style grid of MLPs
(architecture x learning rate x batch size x dropout, two seeds), every measure computed
on the training data alone, each scored by the PGDL competition's conditional mutual
information, Kendall's tau and Jiang et al.'s granulated Psi, with paired bootstrap
intervals over networks.

The paper's claim (section 3.2, Fig. 3 and 4c) is that reliance on single directions
predicts generalization without a held-out set.  The rule below was written and committed
before any run; what counts as "competitive" is fixed in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

import directionkit.paper._figures as fig
from directionkit.errors import InvalidDataError
from directionkit.experiments import BASELINES
from directionkit.metrics import RANKING_SCORES, ranking_scores
from directionkit.paper._experiment import Experiment, ProtocolRow, data_row, protocol_row
from directionkit.paper._rules import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Claim, all_of
from directionkit.paper._scale import Scale
from directionkit.paper._shared import MLP_SCOPE, MLP_SCOPES, estimate_text, floats, num
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace
from directionkit.population._selection import generalization_gap, oriented
from directionkit.population._tasks import _summaries

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure

__all__ = ["AUC", "EXPERIMENT", "HYPERPARAMETERS", "MIN_MODELS", "RANDOM", "RESAMPLES"]

#: The paper's measure, and its chance-corrected form (both "ablation AUC").
AUC, AUC_CORRECTED = "ablation_auc", "ablation_auc_corrected"
#: The paper's other single-direction measures computed beside it.
DIRECTION_MEASURES = (AUC, AUC_CORRECTED, "noise_auc", "selectivity_mean")
#: A measure drawn at random (seeded), scored like the others: the floor a score is read
#: against (the plug-in PGDL score of an unrelated measure is above 0 on small groups).
RANDOM = "random"
#: The grid's hyperparameters (the PGDL score conditions on pairs of them; seeds are not
#: hyperparameters).
HYPERPARAMETERS = ("hidden", "lr", "batch_size", "dropout")
#: Fewest networks any verdict is given on.
MIN_MODELS = 24
#: Bootstrap resamples of the scores (paired over measures).
RESAMPLES = 500
#: Kendall tau smaller than this is no relation worth the name (tau runs about 2/3 of rho).
NEGLIGIBLE_TAU = 0.1


def _label(hidden: Any) -> str:
    return "x".join(str(int(h)) for h in hidden)


def _measures_of(ws: Workspace, run: Any) -> xr.Dataset:
    """One network's measures on its training data: the paper's and the field's."""
    s = ws.scale
    analysis = ws.analyze(
        run, split="train", metrics=["ablation", "noise", "statistics", "baselines"],
        scopes=MLP_SCOPES, orderings=s.orderings, fractions=s.fractions,
        noise_scales=s.noise_scales, noise_repeats=s.noise_repeats,
    )  # fmt: skip
    summaries = _summaries(analysis)  # a sweep's per-model noise AUC and mean selectivity
    values: dict[str, Any] = {
        "accuracy": float(analysis["accuracy"]),
        "chance_accuracy": float(analysis["chance_accuracy"]),
        "near_chance": bool(analysis["near_chance"]),
        AUC: float(analysis[AUC].sel(scope=MLP_SCOPE)),
        AUC_CORRECTED: float(analysis[AUC_CORRECTED].sel(scope=MLP_SCOPE)),
        "noise_auc": summaries.get("noise_auc", math.nan),  # NaN at zero accuracy
        "selectivity_mean": summaries["selectivity_mean"],
    }
    for name in BASELINES:
        values[name] = float(analysis[name]) if name in analysis else math.nan
    measured = xr.Dataset({k: ((), v) for k, v in values.items()})
    measured.attrs = {"run_config": analysis.attrs["run_config"],
                      "baselines_note": analysis.attrs.get("baselines_note", "")}  # fmt: skip
    return measured


def _grid(s: Scale) -> list[dict[str, Any]]:
    return [
        {"hidden": list(h), "lr": lr, "batch_size": b, "dropout": d, "seed": seed}
        for h in s.measures_hidden for lr in s.measures_lrs for b in s.measures_batch_sizes
        for d in s.measures_dropouts for seed in s.measures_seeds
    ]  # fmt: skip


def _population(ws: Workspace) -> tuple[xr.Dataset, str]:
    s = ws.scale
    grid = _grid(s)
    measured, diverged = {}, []
    for point in ws.bar(grid, "measures grid"):
        config = ws.config(optimizer="sgd", epochs=s.measures_epochs, **point)
        run = ws.train(config, "mlp-measures")
        name = (f"h{_label(point['hidden'])}-lr{point['lr']:g}-b{point['batch_size']}"
                f"-d{point['dropout']:g}-s{point['seed']}")  # fmt: skip
        try:
            measured[name] = _measures_of(ws, run)
        except InvalidDataError:  # training diverged: NaN or Inf weights or activity
            diverged.append(name)
    if len(measured) < 2:
        raise InvalidDataError(f"measures: {len(diverged)} of {len(grid)} networks diverged; "
                               "too few left to compare measures.")  # fmt: skip
    names = list(measured)
    stored = xr.concat([measured[n].drop_attrs() for n in names], dim="model")
    configs = [measured[n].attrs["run_config"] for n in names]
    coords: dict[str, Any] = {
        "model": names, "hidden": ("model", [_label(c["hidden"]) for c in configs]),
        **{key: ("model", [c[key] for c in configs])
           for key in ("lr", "batch_size", "dropout", "seed", "train_accuracy",
                       "test_accuracy")},
    }  # fmt: skip
    stored = stored.assign_coords(coords)
    stored.attrs["diverged"] = diverged
    notes = sorted({measured[n].attrs["baselines_note"] for n in names} - {""})
    if notes:
        stored.attrs["baselines_note"] = "; ".join(notes)
    population = (
        f"{len(grid)} MLPs on {ws.dataset}: hidden {[list(h) for h in s.measures_hidden]} x "
        f"learning rate {list(s.measures_lrs)} x batch size {list(s.measures_batch_sizes)} x "
        f"dropout {list(s.measures_dropouts)} x {len(s.measures_seeds)} seeds, SGD (momentum "
        f"0.9) for {s.measures_epochs} epochs; every measure on the training data alone "
        f"(ablation: {s.orderings} orderings, {s.fractions} fractions; noise: "
        f"{s.noise_repeats} repeats). Networks not clearly above chance on their training "
        "data are left out before any score (and counted)"
        + (f"; {len(diverged)} diverged in training (NaN or Inf activity) and are left out: "
           f"{', '.join(diverged)}." if diverged else ".")
    )  # fmt: skip
    return stored, population


def _candidates(stored: xr.Dataset, keep: np.ndarray) -> list[str]:
    names = [*DIRECTION_MEASURES, *BASELINES]
    return [
        n for n in names
        if n in stored and np.all(np.isfinite(floats(stored, n)[keep]))
        and np.unique(floats(stored, n)[keep]).size > 1
    ]  # fmt: skip


def _statistics(stored: xr.Dataset) -> Stats:
    near = np.asarray(stored["near_chance"].values, dtype=bool)
    keep = ~near
    gap = generalization_gap(stored)[keep]
    names = _candidates(stored, keep)
    measures = {n: oriented(floats(stored, n), n)[keep] for n in names}
    measures[RANDOM] = np.random.default_rng(0).normal(size=int(keep.sum()))
    settings = {h: fig.text_values(stored[h].values)[keep] for h in HYPERPARAMETERS}
    out: Stats = {"n_models": int(keep.size), "left_out_near_chance": int(near.sum()),
                  "measures": list(measures)}  # fmt: skip
    if keep.sum() < 4:
        out["why_not_scored"] = f"{int(keep.sum())} networks above chance (4 needed)"
        return out
    if AUC not in measures:
        out["why_not_scored"] = "the ablation AUC is not finite for every network above chance"
        return out
    scores = ranking_scores(measures, gap, settings, resamples=RESAMPLES, seed=0)
    n = int(keep.sum())
    for score in RANKING_SCORES:
        for name in measures:
            row = scores.sel(measure=name)
            out[f"{score}:{name}"] = float(row[score])
            out[f"{score}:{name}_ci"] = [float(row[f"{score}_low"]), float(row[f"{score}_high"])]
    others = [m for m in measures if m not in (AUC, AUC_CORRECTED, RANDOM)]
    if others:
        best = max(others, key=lambda m: out[f"pgdl_score:{m}"])
        draws = scores["draws"].sel(score="pgdl_score")
        difference = (draws.sel(measure=AUC) - draws.sel(measure=best)).values
        difference = difference[np.isfinite(difference)]
        out["best_measure"] = best
        out["auc_minus_best"] = out[f"pgdl_score:{AUC}"] - out[f"pgdl_score:{best}"]
        out["auc_minus_best_ci"] = (
            [float(np.quantile(difference, 0.025)), float(np.quantile(difference, 0.975))]
            if difference.size else [math.nan, math.nan]
        )  # fmt: skip
        out["auc_minus_best_n"] = n
    out["tau_auc"] = out[f"kendall_tau:{AUC}"]
    out["tau_auc_ci"] = out[f"kendall_tau:{AUC}_ci"]
    out["tau_auc_n"] = n
    out["conditioning"] = int(scores.attrs["conditioning"])
    out["table"] = _table(out, list(measures))
    out["interval"] = (
        f"paired bootstrap over networks ({RESAMPLES} resamples, the same networks for "
        "every measure); PGDL score conditioned on every pair of hyperparameters (minimum)"
    )
    return out


def ranked(s: Stats) -> list[str]:
    """The measures, best PGDL score first."""
    names = [m for m in s.get("measures", []) if f"pgdl_score:{m}" in s]
    return sorted(names, key=lambda m: -s[f"pgdl_score:{m}"])


def _table(s: Stats, names: list[str]) -> list[str]:
    lines = [
        "| rank | measure | PGDL score (x100) [95% CI] | Kendall tau [95% CI] | Psi [95% CI] |",
        "|---|---|---|---|---|",
    ]
    for rank, name in enumerate(ranked(s), start=1):
        cells = []
        for score, digits in (("pgdl_score", 2), ("kendall_tau", 3), ("granulated_psi", 3)):
            low, high = s[f"{score}:{name}_ci"]
            cells.append(f"{num(s[f'{score}:{name}'], digits)} "
                         f"[{num(low, digits)}, {num(high, digits)}]")  # fmt: skip
        bold = "**" if name in (AUC, AUC_CORRECTED) else ""
        lines.append(f"| {rank} | {bold}{name}{bold} | " + " | ".join(cells) + " |")
    return lines


def _summary(s: Stats) -> str:
    if "best_measure" not in s:
        return f"not scored: {s.get('why_not_scored', 'no other measure to compare with')}"
    order, best = ranked(s), s["best_measure"]
    return (
        f"ablation AUC ranks {order.index(AUC) + 1} of {len(order)} by PGDL score "
        f"({num(s[f'pgdl_score:{AUC}'], 2)}; best: {best} "
        f"{num(s[f'pgdl_score:{best}'], 2)}; random measure "
        f"{num(s[f'pgdl_score:{RANDOM}'], 2)}); AUC minus best = "
        f"{estimate_text(s, 'auc_minus_best', 2)}; Kendall tau(-AUC, gap) = "
        f"{estimate_text(s, 'tau_auc')}"
    )


def _ranking_figure(s: Stats) -> Figure:
    figure = fig.new_figure(figsize=(7.4, 1.2 + 0.32 * len(ranked(s))))
    axes = figure.subplots(1, 2, sharey=True)
    order = ranked(s)[::-1]
    ys = np.arange(len(order))
    for ax, score, title in zip(axes, ("pgdl_score", "kendall_tau"),
                                ("PGDL score (x100)", "Kendall tau with the gap"),
                                strict=True):  # fmt: skip
        values = np.array([s[f"{score}:{m}"] for m in order])
        cis = np.array([s[f"{score}:{m}_ci"] for m in order])
        colours = ["C3" if m in (AUC, AUC_CORRECTED) else "0.5" if m == RANDOM else "C0"
                   for m in order]  # fmt: skip
        # a bootstrap percentile interval need not contain the estimate (resampled models
        # pair with their copies, which pushes the PGDL score up): the bar is the interval
        ax.hlines(ys, cis[:, 0], cis[:, 1], color="0.6")
        ax.scatter(values, ys, c=colours, zorder=3)
        ax.axvline(0, color="0.8", linewidth=0.8)
        ax.set_xlabel(title)
    axes[0].set_yticks(ys, order, fontsize=8)
    figure.suptitle("Every measure on the training data, scored against the generalization "
                    "gap\n(95% paired bootstrap intervals over networks; red: ablation AUC)",
                    fontsize=9)  # fmt: skip
    return figure


def _scatters(stored: xr.Dataset, s: Stats) -> Figure:
    from directionkit.report.plots import measures_against_gap

    names = [m for m in ranked(s) if m != RANDOM]
    keep = ~np.asarray(stored["near_chance"].values, dtype=bool)
    gap = generalization_gap(stored)[keep]
    return measures_against_gap(
        {name: floats(stored, name)[keep] for name in names}, gap,
        taus={name: s[f"kendall_tau:{name}"] for name in names}, highlight={AUC, AUC_CORRECTED},
    )  # fmt: skip


def _figures(stored: xr.Dataset, s: Stats) -> dict[str, Figure]:
    if "best_measure" not in s:
        return {}
    return {"measures_ranking": _ranking_figure(s), "measures_vs_gap": _scatters(stored, s)}


def _protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    n = len(_grid(scale))
    return [
        data_row(dataset, "CIFAR-10 and MNIST (Fig. 3: 200 networks)", scale.train_limit,
                 scale.test_limit),
        protocol_row("population", "not done in the paper (AUC vs generalization only)",
                     f"{n} MLPs on a 4-hyperparameter grid x {len(scale.measures_seeds)} "
                     "seeds"),
        protocol_row("measures", "ablation AUC (and noise, selectivity)",
                     "ablation AUC, its chance-corrected form, noise AUC, mean selectivity, "
                     f"and {', '.join(BASELINES)}"),
        protocol_row("score", "Spearman correlation with test accuracy",
                     "PGDL conditional mutual information, Kendall tau, granulated Psi "
                     "against train - test accuracy"),
    ]


@dataclass(frozen=True)
class _NotBeaten(Claim):
    """Competitive: the interval of (AUC's score - the best other measure's) reaches 0."""

    def text(self) -> str:
        return (
            f"{self.what} ({self.key}): reproduced if its 95% interval reaches 0 or above "
            "(ablation AUC not clearly worse than the best of the other measures, chosen "
            "on the same data, which favours it); not reproduced if the whole interval is "
            f"below 0; inconclusive if n < {self.min_n}."
        )

    def __call__(self, stats: Any) -> str:
        n = stats.get(f"{self.key}_n")
        interval = stats.get(f"{self.key}_ci")
        if not isinstance(n, int) or n < self.min_n or not interval:
            return INCONCLUSIVE
        high = float(interval[1])
        if math.isnan(high):
            return INCONCLUSIVE
        return REPRODUCED if high >= 0 else NOT_REPRODUCED


#: The rule, fixed before any run.
RULE = all_of(
    [
        Claim(
            "tau_auc",
            "Kendall tau of the negated ablation AUC (a lower AUC, a larger gap) and the "
            "generalization gap (train - test accuracy) over the networks above chance",
            direction=+1, margin=NEGLIGIBLE_TAU, min_n=MIN_MODELS, needs_p=False,
        ),
        _NotBeaten(
            "auc_minus_best",
            "PGDL score (x100, conditioned on every pair of hyperparameters) of ablation AUC "
            "minus that of the best other measure (paired bootstrap over networks)",
            min_n=MIN_MODELS,
        ),
    ],
    lead="Ablation AUC is competitive with the field's generalization measures: it ranks the "
    "gap (1) and is not clearly beaten by the best other measure on the PGDL score (2).",
)

#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
    "measures",
    "Beyond the paper: ablation AUC among the field's generalization measures",
    "Reliance on single directions (ablation AUC on the training data) ranks networks by "
    "their generalization gap about as well as the field's other measures.",
    "not tested in the paper (AUC vs generalization, Fig. 3; hyperparameter selection, Fig. "
    "4c); the PGDL competition (2020) did not score an ablation measure",
    RULE,
    _population,
    _statistics,
    _summary,
    _figures,
    _protocol,
)
