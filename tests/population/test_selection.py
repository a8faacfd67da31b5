"""Model selection: select() ranks, selection_report() against brute force and scipy."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import rankdata

import directionkit as dk
from directionkit.testing import NumpyMLPAdapter


def store(n: int = 12, seed: int = 0) -> xr.Dataset:
    """A hand-made sweep dataset: AUC tracks test accuracy with noise, loss is unrelated."""
    rng = np.random.default_rng(seed)
    accuracy = rng.uniform(0.5, 0.95, n)
    return xr.Dataset(
        {
            "done": ("model", np.ones(n, dtype=bool)),
            "seconds": ("model", rng.uniform(size=n)),
            "test_accuracy": ("model", accuracy),
            "test_loss": ("model", 1 - accuracy),
            "ablation_auc": (
                ("model", "scope"),
                np.stack([accuracy + rng.normal(0, 0.05, n), rng.uniform(size=n)], axis=1),
            ),
            "train_loss": ("model", rng.uniform(size=n)),
            "config_optimizer": ("model", np.array(["adam"] * n, dtype=object)),
        },
        coords={"model": [f"m{i}" for i in range(n)], "scope": ["all", "fc1"]},
    )


def test_select_ranks_best_first_in_each_measure_direction() -> None:
    ds = store()
    auc = ds["ablation_auc"].sel(scope="all").values
    ranked = dk.select(ds, "ablation_auc", k=3)
    assert list(ranked["model"].values) == [f"m{i}" for i in np.argsort(-auc)[:3]]
    np.testing.assert_array_equal(ranked.values, np.sort(auc)[::-1][:3])
    by_loss = dk.select(ds, "train_loss")  # lower is better
    assert list(by_loss["model"].values) == [f"m{i}" for i in np.argsort(ds["train_loss"].values)]
    other_scope = dk.select(ds, "ablation_auc", scope="fc1", k=1)
    assert str(other_scope["model"].values[0]) == f"m{np.argmax(ds['ablation_auc'][:, 1].values)}"
    assert list(dk.select(ds, "train_loss", higher_is_better=True)["model"].values) == list(
        by_loss["model"].values[::-1]
    )


def test_select_leaves_out_unfinished_and_nan_models() -> None:
    ds = store(5)
    ds["done"][1] = False
    ds["ablation_auc"][3, 0] = np.nan
    assert sorted(dk.select(ds)["model"].values) == ["m0", "m2", "m4"]


def test_select_names_the_measures_it_knows() -> None:
    with pytest.raises(dk.InvalidParameterError, match=r"'by' parameter .*'train_loss'.* 'auc'"):
        dk.select(store(), by="auc")
    with pytest.raises(dk.InvalidParameterError, match=r"'scope' parameter .*'fc9'"):
        dk.select(store(), scope="fc9")
    with pytest.raises(dk.InvalidParameterError, match="'k' parameter"):
        dk.select(store(), k=0)


def _exact(x: np.ndarray, y: np.ndarray, size: int, tops: list[int]) -> tuple[np.ndarray, float]:
    """Brute force: every sub-selection of ``size`` models, the rules written out again."""
    hits, gaps = np.zeros(len(tops)), []
    subsets = list(itertools.combinations(range(x.size), size))
    for subset in subsets:
        best_by_measure = max(subset, key=lambda i: x[i])
        better = sum(1 for j in subset if y[j] > y[best_by_measure])
        hits += [better + 1 <= k for k in tops]
        gaps.append(max(y[j] for j in subset) - y[best_by_measure])
    return hits / len(subsets), float(np.mean(gaps))


def test_selection_report_matches_every_subset_and_scipy() -> None:
    ds = store(10, seed=3)
    x = ds["ablation_auc"].sel(scope="all").values
    y = ds["test_accuracy"].values
    report = dk.selection_report(
        ds, ["ablation_auc"], subset_size=4, n_subsets=4000, top=(1, 2, 3), seed=1
    )
    rates, gap = _exact(x, y, 4, [1, 2, 3])
    # Monte Carlo over 4000 draws: within 4 standard errors of the exact rates
    got = report["top_hit_rate"].sel(measure="ablation_auc").values
    np.testing.assert_allclose(got, rates, atol=4 * np.sqrt(0.25 / 4000))
    assert float(report["gap_mean"][0]) == pytest.approx(gap, abs=0.01)
    ranks_x, ranks_y = rankdata(x), rankdata(y)
    assert float(report["spearman"][0]) == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert int(report["n_models"][0]) == 10 and int(report["subset_size"][0]) == 4


def test_selection_report_repeats_the_same_draws_as_a_loop() -> None:
    ds = store(30, seed=5)
    report = dk.selection_report(ds, ["train_loss"], n_subsets=50, seed=7)
    x, y = ds["train_loss"].values, ds["test_accuracy"].values
    rng = np.random.default_rng(7)
    gaps, top5 = [], 0
    for _ in range(50):  # lower loss selects; the default subset is half of 30
        pick = rng.choice(30, size=15, replace=False)
        chosen = pick[np.argmin(x[pick])]
        gaps.append(y[pick].max() - y[chosen])
        top5 += int(np.sum(y[pick] > y[chosen])) + 1 <= 5
    assert float(report["gap_mean"][0]) == pytest.approx(np.mean(gaps))
    assert float(report["gap_sd"][0]) == pytest.approx(np.std(gaps, ddof=1))
    assert float(report["top_hit_rate"].sel(measure="train_loss", top=5)) == top5 / 50


def test_selection_report_default_measures_and_paper_subset_size() -> None:
    report = dk.selection_report(store(100), n_subsets=20)
    # bookkeeping, text and test-set variables are never measures
    assert list(report["measure"].values) == ["ablation_auc", "train_loss"]
    assert report["subset_size"].values.tolist() == [48, 48]
    assert report["top_hit_rate"].dims == ("measure", "top")
    assert report["top"].values.tolist() == [1, 5, 10]
    assert float(report["spearman"].sel(measure="ablation_auc")) > 0.8


def test_selection_report_refuses_too_few_models() -> None:
    with pytest.raises(dk.InvalidDataError, match="at least 4 finished models"):
        dk.selection_report(store(3))
    with pytest.raises(dk.InvalidParameterError, match=r"'subset_size' parameter .* 12 models"):
        dk.selection_report(store(12), subset_size=13)


def test_selection_on_a_real_sweep_store(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    nets = {f"n{i}": NumpyMLPAdapter.random(4, (8,), 3, seed=i) for i in range(6)}
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = nets["n0"].predict(X)
    y[:3] = [0, 1, 2]
    given = {name: {"test_accuracy": 0.5 + i / 20} for i, name in enumerate(nets)}
    with distributed.Client(
        processes=False,
        n_workers=1,
        threads_per_worker=1,
        dashboard_address=":0",
        set_as_default=False,
    ) as client:
        result = dk.sweep(
            nets, (X, y), store=tmp_path / "s.zarr", client=client, metadata=given,
            progress=False, orderings=2, fractions=5,
        )  # fmt: skip
    auc = result["ablation_auc"].sel(scope="all").values
    ranked = dk.select(result, k=2, near_chance="keep")
    assert list(ranked["model"].values) == [f"n{i}" for i in np.argsort(-auc)[:2]]
    # by default a model at chance (here: the nets whose predictions are not the labels)
    # ranks after every model that learned them, whatever its AUC
    flagged = result["near_chance"].values.astype(bool)
    assert flagged.any() and not flagged[0]  # n0 made the labels
    accuracy = result["accuracy"].values
    from directionkit.metrics import near_chance

    chance = result["chance_accuracy"].values
    assert [near_chance(a, c, 60) for a, c in zip(accuracy, chance, strict=True)] == list(flagged)
    with pytest.warns(dk.DirectionKitWarning, match="select ranks them last"):
        everyone = dk.select(result)
    want = [f"n{i}" for i in np.lexsort((-auc, flagged))]
    assert list(everyone["model"].values) == want
    assert list(everyone["near_chance"].values) == sorted(flagged)
    report = dk.selection_report(
        result, ["ablation_auc", "weight_l1_mean"], n_subsets=10, near_chance="keep"
    )
    assert report["subset_size"].values.tolist() == [3, 3]
    want = np.corrcoef(rankdata(auc), rankdata([0.5 + i / 20 for i in range(6)]))[0, 1]
    assert float(report["spearman"].sel(measure="ablation_auc")) == pytest.approx(want)


def test_models_at_chance_are_left_out_of_the_selection_statistics_and_named() -> None:
    rng = np.random.default_rng(3)
    n = 30
    test_accuracy = rng.uniform(0.5, 0.9, n)
    auc = test_accuracy + rng.normal(0, 0.05, n)
    flagged = np.zeros(n, dtype=bool)
    flagged[[2, 7, 11]] = True
    auc[flagged] = 1.2  # at chance: the highest AUC of all, which says nothing
    ds = xr.Dataset(
        {
            "test_accuracy": ("model", test_accuracy),
            "ablation_auc": (("model", "scope"), auc[:, None]),
            "near_chance": ("model", flagged),
        },
        coords={"model": [f"m{i}" for i in range(n)], "scope": ["all"]},
    )
    with pytest.warns(dk.DirectionKitWarning, match=r"3 model\(s\) .*'m2', 'm7', 'm11'"):
        report = dk.selection_report(ds, ["ablation_auc"], n_subsets=50)
    assert report.attrs["near_chance_left_out"] == ["m2", "m7", "m11"]
    assert int(report["n_models"].sel(measure="ablation_auc")) == n - 3
    # the same numbers as a store that never held them
    kept = ds.isel(model=np.flatnonzero(~flagged)).drop_vars("near_chance")
    alone = dk.selection_report(kept, ["ablation_auc"], n_subsets=50)
    xr.testing.assert_allclose(report.drop_attrs(), alone.drop_attrs())
    everyone = dk.selection_report(ds, ["ablation_auc"], n_subsets=50, near_chance="keep")
    assert int(everyone["n_models"].sel(measure="ablation_auc")) == n
    assert float(everyone["top_hit_rate"].sel(measure="ablation_auc", top=1)) < float(
        report["top_hit_rate"].sel(measure="ablation_auc", top=1)
    )  # with them in, the AUC picks a model that learned nothing
    with pytest.raises(dk.InvalidParameterError, match="'near_chance' parameter"):
        dk.selection_report(ds, ["ablation_auc"], near_chance="last")


def test_selection_report_scores_each_measure_against_the_generalization_gap() -> None:
    # a measure that falls exactly as the gap grows (ablation AUC: higher is better) ranks
    # every pair: tau, Psi and the PGDL score at their best; one unrelated to it does not
    from directionkit.metrics import pgdl_score

    rng = np.random.default_rng(0)
    lr, depth, _ = np.meshgrid(range(3), range(3), range(6), indexing="ij")
    gap = 0.1 * lr.ravel() + 0.05 * depth.ravel() + 0.02 * rng.normal(size=54)
    test = rng.uniform(0.6, 0.8, 54)
    unrelated = rng.normal(size=54)
    ds = xr.Dataset(
        {"train_accuracy": ("model", test + gap), "test_accuracy": ("model", test),
         "ablation_auc": (("model", "scope"), (1 - gap)[:, None]),
         "train_loss": ("model", unrelated),
         "config_lr": ("model", lr.ravel()), "config_depth": ("model", depth.ravel()),
         "config_epochs": ("model", np.full(54, 10))},
        coords={"model": np.arange(54), "scope": ["all"]},
    )  # fmt: skip
    report = dk.selection_report(ds, ["ablation_auc", "train_loss"], n_subsets=50)
    auc = report.sel(measure="ablation_auc")
    assert float(auc["kendall_tau"]) == 1.0 and float(auc["granulated_psi"]) == 1.0
    assert float(auc["pgdl_score"]) == pytest.approx(100.0)
    loss = report.sel(measure="train_loss")  # lower is better: the measure as it is
    assert float(loss["pgdl_score"]) == pytest.approx(
        pgdl_score(unrelated, gap, {"lr": lr.ravel(), "depth": depth.ravel()})
    )
    assert abs(float(loss["kendall_tau"])) < 0.3
    assert report.attrs["hyperparameters"] == ["lr", "depth"]  # epochs does not vary
    plain = dk.selection_report(ds.drop_vars(["config_lr", "config_depth"]), n_subsets=50)
    assert "pgdl_score" not in plain  # no hyperparameters: nothing to condition on
