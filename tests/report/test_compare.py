"""Comparing analyses: values carried over exactly, outer joins, labels, figures, the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.cli import main
from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.report import model_labels, plots
from directionkit.testing import example_model


@pytest.fixture(scope="module")
def runs() -> dict[str, dk.Analysis]:
    """Two analyses of one net (different seeds) and one of a narrower net."""
    net, X, y = example_model(n=90)
    small = dk.testing.NumpyMLPAdapter.random(n_in=4, hidden=(3,), n_classes=3, seed=5)
    out = {
        f"seed {s}": dk.analyze(net, (X, y), train_data=(X, y), orderings=3, fractions=5,
                                noise_scales=[0.0, 0.5, 2.0], noise_repeats=2, seed=s,
                                progress=False)
        for s in (0, 1)
    }
    out["small"] = dk.analyze(small, (X, y), metrics=["statistics", "ablation"], orderings=2,
                              fractions=[0.0, 0.3, 1.0], progress=False)  # fmt: skip
    for i, (name, result) in enumerate(out.items()):
        result.dataset.attrs["run_config"] = {"corruption": [0.5, 0.0, 1.0][i], "name": name}
    return out


def test_model_level_variables_are_the_analyses_own_values(runs: dict[str, dk.Analysis]) -> None:
    comparison = dk.compare(runs)
    ds = comparison.dataset
    assert ds["model"].values.tolist() == list(runs)
    for name, result in runs.items():
        row = ds.sel(model=name)
        assert float(row["accuracy"]) == float(result["accuracy"])
        np.testing.assert_array_equal(
            row["ablation_auc"].sel(scope="all").values, result["ablation_auc"].sel(scope="all")
        )
        mine = result["ablation_accuracy"].sel(scope="all")
        np.testing.assert_array_equal(
            row["ablation_accuracy"].sel(scope="all", fraction=mine["fraction"],
                                         ordering=mine["ordering"]).values, mine.values,
        )  # fmt: skip
        expected = np.nanmean(result["selectivity"].values)
        assert float(row["mean_selectivity"]) == pytest.approx(expected)


def test_points_a_model_lacks_are_nan_not_invented(runs: dict[str, dk.Analysis]) -> None:
    ds = dk.compare(runs).dataset
    fractions = sorted({*np.linspace(0, 1, 5).tolist(), 0.3})
    assert ds["fraction"].values.tolist() == pytest.approx(fractions)
    small = ds["ablation_accuracy"].sel(model="small", scope="all")
    assert np.isnan(small.sel(fraction=0.5).values).all()  # small has 0, 0.3, 1 only
    assert np.isnan(small.sel(ordering=2).values).all()  # and 2 orderings of 3
    assert np.isnan(ds["noise_accuracy"].sel(model="small").values).all()  # no noise run


def test_by_orders_and_labels_models_by_their_config(runs: dict[str, dk.Analysis]) -> None:
    comparison = dk.compare(runs, by="corruption")
    assert comparison.dataset["corruption"].values.tolist() == [0.5, 0.0, 1.0]
    fig = plots.compare_ablation_curves(comparison)
    gids = [line.get_gid() for line in fig.axes[0].lines if line.get_gid() != "chance"]
    assert gids == ["model:seed 1", "model:seed 0", "model:small"]  # corruption 0, 0.5, 1
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    auc = float(runs["seed 1"]["ablation_auc"].sel(scope="all"))
    assert texts[0] == f"seed 1 (corruption = 0.0) (AUC {auc:.3f})"


def test_curves_drawn_are_the_means_over_orderings(runs: dict[str, dk.Analysis]) -> None:
    comparison = dk.compare(runs)
    ax = plots.compare_ablation_curves(comparison).axes[0]
    (line,) = [line for line in ax.lines if line.get_gid() == "model:seed 0"]
    expected = runs["seed 0"]["ablation_accuracy"].sel(scope="all").mean("ordering")
    np.testing.assert_allclose(line.get_ydata(), expected.values)
    ax = plots.compare_noise_curves(comparison).axes[0]
    (line,) = [line for line in ax.lines if line.get_gid() == "model:seed 1"]
    np.testing.assert_allclose(line.get_ydata(), runs["seed 1"]["noise_accuracy"].mean("repeat"))
    assert not [line for line in ax.lines if line.get_gid() == "model:small"]


def test_distributions_histogram_every_models_units(runs: dict[str, dk.Analysis]) -> None:
    ax = plots.compare_distributions(dk.compare(runs), "mutual_info").axes[0]
    assert len(ax.patches) == 3
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[2].startswith("small (n=3,")
    assert legend[0].startswith("seed 0 (n=11,")


def test_auc_table_lists_every_model_and_scope(runs: dict[str, dk.Analysis]) -> None:
    table = dk.compare(runs, by="corruption").auc_table().splitlines()
    assert table[0] == "| model | corruption | accuracy | AUC (all) | mean selectivity |"
    assert len(table) == 2 + 3
    auc = float(runs["small"]["ablation_auc"].sel(scope="all"))
    assert "| small | 1.0 | " in table[-1] and f"{auc:.4f}" in table[-1]


def test_bad_input_is_refused_with_a_clear_message(runs: dict[str, dk.Analysis]) -> None:
    with pytest.raises(InvalidParameterError, match="at least one"):
        dk.compare({})
    with pytest.raises(InvalidParameterError, match="has no 'dropout' in attrs"):
        dk.compare(runs, by="dropout")
    with pytest.raises(InvalidParameterError, match=r"must be a directionkit\.Analysis"):
        dk.compare({"a": 3})  # type: ignore[dict-item]
    with pytest.raises(InvalidDataError, match="found none of"):
        dk.compare({"a": xr.Dataset({"x": 1})})
    with pytest.raises(InvalidParameterError, match="'scope' parameter"):
        plots.compare_ablation_curves(dk.compare(runs), scope="nope")


def test_paths_are_labelled_by_store_name(tmp_path: Path, runs: dict[str, dk.Analysis]) -> None:
    paths = [runs["seed 0"].save(tmp_path / "p.zarr"),
             runs["small"].save(tmp_path / "q.zarr")]  # fmt: skip
    assert dk.compare(paths).dataset["model"].values.tolist() == ["p", "q"]
    assert model_labels([tmp_path / "x" / "r.zarr", tmp_path / "y" / "r.zarr"]) == ["x/r", "y/r"]


def test_train_analyze_and_report_several_runs_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    stores = []
    for corruption in ("0", "1"):
        run = tmp_path / f"p{corruption}"
        assert main(["train", "--dataset", "digits", "--hidden", "16", "--epochs", "2",
                     "--corruption", corruption, "--out", str(run), "--no-progress"]) == 0
        store = tmp_path / f"p{corruption}.zarr"
        assert main(["analyze", str(run), "--data", str(run), "--split", "train", "--out",
                     str(store), "--metrics", "statistics", "ablation", "--orderings", "2",
                     "--fractions", "3", "--no-progress"]) == 0  # fmt: skip
        config = dk.open(store).attrs["run_config"]
        final = xr.open_zarr(run / "history.zarr").isel(epoch=-1)
        assert config["corruption"] == float(corruption)
        assert config["test_accuracy"] == float(final["test_accuracy"])
        assert config["epochs_trained"] == 2
        stores.append(str(store))
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", *stores, "--label", "corruption", "--out", str(out)]) == 0
    assert str(out / "report.html") in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert "p0 (corruption = 0.0)" not in page  # the table holds the value in its own column
    assert "<td>p1</td><td>1.0</td>" in page.replace("\n", "")
    # the configs: what the runs share on one line (an MLP's fields only), what differs as
    # a row per setting, a column per model
    flat = page.replace("\n", "")
    assert "<tr><th>corruption</th><td>0.0</td><td>1.0</td></tr>" in flat
    shared = re.search(r'<p class="shared">Shared by every model: (.*?)\.</p>', page)
    assert shared is not None and "hidden = [16]" in shared[1] and "epochs = 2" in shared[1]
    for convnet_only in ("width", "blocks", "batch_norm"):
        assert f"{convnet_only} =" not in shared[1] and f"<th>{convnet_only}</th>" not in flat
    assert "word-break: break-all" not in page  # values are not broken inside ("0. 01")
    assert sorted(p.name for p in out.glob("*.png")) == [
        "ablation_curves.png", "mutual_info.png", "selectivity.png"
    ]
    both = tmp_path / "both"
    assert main(["report", *stores, "--label", "corruption", "--format", "both",
                 "--out", str(both)]) == 0  # fmt: skip
    assert {p.stem for p in both.glob("*.svg")} == {p.stem for p in out.glob("*.png")}
    assert {p.stem for p in both.glob("*.png")} == {p.stem for p in out.glob("*.png")}
    svg = tmp_path / "svg"
    assert main(["report", *stores, "--format", "svg", "--out", str(svg)]) == 0
    assert not list(svg.glob("*.png")) and len(list(svg.glob("*.svg"))) == 3
    assert (svg / "report.html").read_text().count("data:image/svg+xml;base64,") == 3
    assert main(["report", *stores, "--label", "colour", "--out", str(tmp_path / "r2")]) == 2
    assert "has no 'colour'" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_a_store_read_by_path_is_checked_against_the_schema(tmp_path: Path) -> None:
    """A path is read as an analysis: a variable with the wrong dims is refused by name,
    as building an Analysis from it would be."""
    from directionkit.results import write_zarr

    path = write_zarr(
        xr.Dataset({"selectivity": ("x", [0.1, 0.2])}, attrs={"directionkit_version": "t"}),
        tmp_path / "odd.zarr",
    )
    with pytest.raises(InvalidDataError, match="'selectivity' of an Analysis must have dims"):
        dk.compare({"a": path, "b": path})


def test_an_object_that_merely_holds_a_dataset_is_not_an_analysis() -> None:
    """A sweep's result (or anything else with a ``dataset``) is refused, as before the
    report stopped importing the Analysis class."""
    from directionkit.report.plots import plot_analysis

    class Holder:
        dataset = xr.Dataset({"selectivity": ("unit", [0.1, 0.5])})

    with pytest.raises(InvalidDataError, match=r"needs a directionkit\.Analysis"):
        plot_analysis(Holder())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"must be a directionkit\.Analysis"):
        dk.compare([Holder(), Holder()])  # type: ignore[list-item]
