"""``early-stopping`` (Fig. 4a-b): over training, ablation AUC and test loss are negatively
correlated, and AUC turns where test loss does; Spearman(AUC, test loss) per seed, AUC-peak lag."""

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
from directionkit.paper._shared import ablation_analysis, estimate_text, every, floats, n_seeds, num
from directionkit.paper._statistics import Stats
from directionkit.paper._workspace import Workspace
from directionkit.results import open_dataset

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not to read a store
    from matplotlib.figure import Figure


__all__ = ["EXPERIMENT", "TIMING_TOLERANCE"]


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
            float(ablation_analysis(ws, run, epoch=e)["ablation_auc"])
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
        f"{n_seeds(s.early_seeds)} of one MLP {list(s.early_hidden)} on {ws.dataset} with "
        f"its true labels, {s.early_epochs} epochs; losses and ablation AUC on the training "
        f"data at {every(s.early_every, 'epoch')}."
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
        loss, auc = floats(one, "test_loss"), floats(one, "ablation_auc")
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
        f"{estimate_text(s, 'rho')} (per seed {', '.join(num(r) for r in s['rho_by_seed'])});"
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
            f"AUC vs test loss, {stored.sizes['seed']} seeds (mean per-seed rho = {num(s['rho'])})",
            np.asarray(flat["epoch"].values, dtype=np.float64),
            "epoch",
        ),
    }


def _early_protocol(scale: Scale, dataset: str) -> list[ProtocolRow]:
    return [
        data_row(dataset, MNIST + ", true labels", scale.train_limit, scale.test_limit),
        protocol_row(
            "model",
            "MLP of 2048 units per layer (Fig. 4a); 11-layer CIFAR-10 ConvNet (Fig. 4b)",
            f"MLP {list(scale.early_hidden)} only",
        ),
        protocol_row(
            "training",
            "640 epochs",
            f"{scale.early_epochs} epochs, AUC {every(scale.early_every, 'epoch')}",
        ),
        protocol_row("population", "one network", f"{n_seeds(scale.early_seeds)}"),
    ]


#: The experiment, as the registry lists it.
EXPERIMENT = Experiment(
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
)
