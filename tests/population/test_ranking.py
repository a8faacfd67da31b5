"""Baseline measures in a sweep store, and the report's ranking of a sweep's measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import directionkit as dk
from directionkit.cli import main
from directionkit.experiments import BASELINES
from directionkit.testing import NumpyMLPAdapter


def test_a_sweep_stores_each_models_baselines_and_the_report_ranks_them(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    rng = np.random.default_rng(0)
    base = NumpyMLPAdapter.random(4, (8,), 3, seed=0)
    nets = {  # the same net, perturbed: every one above chance on its labels
        f"n{i}": NumpyMLPAdapter([w + 0.05 * i * rng.normal(size=w.shape) for w in base.weights],
                                 base.biases)
        for i in range(8)
    }  # fmt: skip
    X = rng.normal(size=(80, 4))
    y = base.predict(X)
    test = rng.uniform(0.5, 0.7, 8)
    given = {
        name: {"train_accuracy": float(test[i] + 0.05 * i), "test_accuracy": float(test[i]),
               "config_lr": float(i % 2), "config_depth": float(i // 4)}
        for i, name in enumerate(nets)
    }  # fmt: skip
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=":0", set_as_default=False) as client:  # fmt: skip
        result = dk.sweep(
            nets, (X, y), store=tmp_path / "s.zarr", client=client, metadata=given,
            progress=False, metrics=["ablation", "baselines"], orderings=2, fractions=5,
        )  # fmt: skip
    for name, net in nets.items():  # each row is the model's own analysis
        alone = dk.analyze(net, (X, y), metrics=["baselines"], progress=False).dataset
        for measure in BASELINES:
            if measure in alone:
                assert float(result[measure].sel(model=name)) == float(alone[measure])
    assert np.isnan(result["weightwatcher_alpha"].values).all()  # numpy nets: no torch module
    report = dk.selection_report(result, n_subsets=20, near_chance="keep", resamples=40)
    assert {"output_margin", "log_path_norm", "pacbayes_mag_flatness"} <= set(
        report["measure"].values.tolist()
    )
    for score in ("pgdl_score", "kendall_tau", "granulated_psi"):
        low, high = (report[f"{score}{e}"] for e in ("_low", "_high"))
        assert bool((low <= high).all())
    # the command line's report of the store: its measures ranked, one scatter per measure
    assert main(["report", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert "#1 " in page and "PGDL score" in page and "conditioned on depth, lr" in page
    assert sorted(p.name for p in (tmp_path / "r").glob("*.png")) == [
        "ablation_curves_per_model.png", "measures_vs_gap.png",
    ]  # fmt: skip


def test_a_sweep_without_a_gap_says_why_it_is_not_ranked() -> None:
    import xarray as xr

    from directionkit.population import describe_sweep

    ds = xr.Dataset({"ablation_auc": ("model", np.linspace(0, 1, 6)),
                     "test_accuracy": ("model", np.linspace(0.5, 0.9, 6))},
                    coords={"model": np.arange(6)})  # fmt: skip
    rows, figures = describe_sweep(ds)
    assert figures == {}
    assert rows[0][0] == "generalization measures" and "train_accuracy" in rows[0][1]


def test_an_unfinished_sweep_is_scored_on_its_finished_models_and_seeds_never_condition() -> None:
    import xarray as xr

    from directionkit.metrics import ranking_scores
    from directionkit.population import describe_sweep

    rng = np.random.default_rng(1)
    lr, seed = np.repeat([0, 1, 2], 8), np.tile(np.arange(8), 3)
    test = rng.uniform(0.6, 0.8, 24)
    gap = 0.05 * lr + 0.02 * rng.normal(size=24)
    done = np.ones(24, bool)
    done[[3, 17]] = False  # a sweep still running: two rows not written yet
    train = np.where(done, test + gap, np.nan)
    noise = rng.normal(size=24)
    ds = xr.Dataset({"train_accuracy": ("model", train), "test_accuracy": ("model", test),
                     "noise_auc": ("model", np.where(done, noise, np.nan)),
                     "config_lr": ("model", lr), "config_seed": ("model", seed),
                     "done": ("model", done)},
                    coords={"model": np.arange(24)})  # fmt: skip
    report = dk.selection_report(ds, ["noise_auc"], n_subsets=20)
    assert report.attrs["hyperparameters"] == ["lr"]  # the seed is not a hyperparameter
    alone = ranking_scores({"noise_auc": -noise[done]}, gap[done], {"lr": lr[done]},
                           resamples=0).sel(measure="noise_auc")  # fmt: skip
    for score in ("pgdl_score", "kendall_tau", "granulated_psi"):
        assert float(report[score].sel(measure="noise_auc")) == float(alone[score])
    rows, figures = describe_sweep(ds, resamples=10)
    assert rows[0][0].startswith("#1 ") and "over 22 models" in rows[-1][1]
    assert sorted(figures) == ["measures_vs_gap"]
