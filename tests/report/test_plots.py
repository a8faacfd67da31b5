"""The figures: drawn from a real analysis, showing its data, without pyplot."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from sklearn.datasets import load_digits

import directionkit as dk
from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.report import plots
from directionkit.testing import NumpyMLPAdapter

ALL_FIGURES = [
    "ablation_curves",
    "noise_curve",
    "selectivity_histograms",
    "selectivity_vs_importance",
    "selectivity_vs_weight_l1",
    "selectivity_by_depth",
]
SITES = ["hidden0", "hidden1"]
#: Site labels a reader sees: name and width (from the analysis's site_info attrs)
LABELS = ["hidden0 \N{MIDDLE DOT} 16 units", "hidden1 \N{MIDDLE DOT} 12 units"]


def digits_analysis() -> dk.Analysis:
    """Every metric of a small MLP on 300 digits: random hidden layers, fitted readout."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    net = NumpyMLPAdapter.random(n_in=64, hidden=(16, 12), n_classes=10, seed=0)
    hidden = net.run(X, record=["hidden1"]).activations["hidden1"]
    readout, *_ = np.linalg.lstsq(np.c_[hidden, np.ones(len(y))], np.eye(10)[y], rcond=None)
    net.weights[-1], net.biases[-1] = readout[:-1], readout[-1]
    return dk.analyze(
        net, (X, y), train_data=(X, y), scopes=["all", "hidden0", "last:1"], orderings=3,
        fractions=6, noise_repeats=3, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def result() -> dk.Analysis:
    return digits_analysis()


def scope_lines(fig: Figure) -> list:  # type: ignore[type-arg]
    return [line for line in fig.axes[0].lines if str(line.get_gid()).startswith("scope:")]


def test_plot_analysis_draws_every_figure_of_a_full_analysis(result: dk.Analysis) -> None:
    figures = plots.plot_analysis(result)
    assert list(figures) == ALL_FIGURES
    assert all(isinstance(f, Figure) for f in figures.values())
    # a Dataset works as well as the Analysis
    assert list(plots.plot_analysis(result.dataset)) == ALL_FIGURES


def test_ablation_curves_draw_the_mean_over_orderings_per_scope(result: dk.Analysis) -> None:
    ds = result.dataset
    fig = plots.ablation_curves(result)
    assert len(fig.axes) == 1
    lines = scope_lines(fig)
    assert [line.get_gid() for line in lines] == ["scope:all", "scope:hidden0", "scope:last:1"]
    mean = ds["ablation_accuracy"].mean("ordering")
    for line, scope in zip(lines, ds["scope"].values, strict=True):
        np.testing.assert_allclose(line.get_xdata(), ds["fraction"].values)
        np.testing.assert_allclose(line.get_ydata(), mean.sel(scope=scope).values)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    auc = float(ds["ablation_auc"].sel(scope="hidden0"))
    assert f"hidden0 (AUC {auc:.3f})" in labels
    (chance,) = [line for line in fig.axes[0].lines if line.get_gid() == "chance"]
    assert chance.get_linestyle() == "--"
    # the stored chance: the majority class's share of digits' nearly balanced labels
    chance_value = float(ds["chance_accuracy"])
    assert 0.1 <= chance_value < 0.12
    np.testing.assert_allclose(chance.get_ydata(), [chance_value] * 2)
    assert len(fig.axes[0].collections) == 3  # one sd band per scope


def test_ablation_curves_without_known_classes_or_auc_draw_no_chance_line(
    result: dk.Analysis,
) -> None:
    ds = result.dataset.drop_vars(["class_mean", "ablation_auc", "chance_accuracy"])
    ds = ds.drop_dims("class")
    ds.attrs.pop("n_classes", None)
    fig = plots.ablation_curves(ds.isel(ordering=[0]))  # one ordering: a zero-width band
    assert [line.get_gid() for line in fig.axes[0].lines] == [
        "scope:all", "scope:hidden0", "scope:last:1",
    ]  # fmt: skip
    assert "AUC" not in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_ablation_curves_use_a_known_class_count_from_attrs(result: dk.Analysis) -> None:
    ds = result.dataset.drop_dims("class").drop_vars("chance_accuracy")
    ds.attrs = {"n_classes": 4}
    fig = plots.ablation_curves(ds)
    (chance,) = [line for line in fig.axes[0].lines if line.get_gid() == "chance"]
    np.testing.assert_allclose(chance.get_ydata(), [0.25, 0.25])


def test_noise_curve_is_on_a_log_axis_and_draws_the_mean_over_repeats(
    result: dk.Analysis,
) -> None:
    ds = result.dataset
    assert 0.0 in ds["noise_scale"].values
    fig = plots.noise_curve(result)
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog"  # the clean model (scale 0) is kept, at the left
    (line,) = [line for line in ax.lines if line.get_gid() == "noise"]
    np.testing.assert_allclose(line.get_xdata(), ds["noise_scale"].values)
    np.testing.assert_allclose(line.get_ydata(), ds["noise_accuracy"].mean("repeat").values)
    positive = ds.sel(noise_scale=ds["noise_scale"] > 0)
    assert plots.noise_curve(positive).axes[0].get_xscale() == "log"


def test_selectivity_histograms_have_a_panel_per_measure_and_a_histogram_per_site(
    result: dk.Analysis,
) -> None:
    fig = plots.selectivity_histograms(result)
    labels = ["class selectivity", "mutual information (bits)"]
    assert [ax.get_xlabel() for ax in fig.axes] == labels
    for ax, name in zip(fig.axes, ["selectivity", "mutual_info"], strict=True):
        assert len(ax.patches) == len(SITES)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == LABELS
        assert name in result
    only = plots.selectivity_histograms(result.dataset.drop_vars("mutual_info"))
    assert len(only.axes) == 1


def test_selectivity_vs_importance_has_a_panel_per_site_and_measure_with_spearman(
    result: dk.Analysis,
) -> None:
    fig = plots.selectivity_vs_importance(result)
    assert len(fig.axes) == 2 * len(SITES)
    rho = dk.spearman(result["selectivity"], result["importance_loss"])["rho"]
    first = fig.axes[0]
    assert first.get_title() == f"{LABELS[0]}  (\N{GREEK SMALL LETTER RHO} = {float(rho[1]):+.2f})"
    (points,) = [c for c in first.collections if isinstance(c, PathCollection)]
    site = result.dataset.where(result.dataset["site"] == "hidden0", drop=True)
    np.testing.assert_allclose(
        points.get_offsets(), np.c_[site["selectivity"].values, site["importance_loss"].values]
    )
    assert f"{float(rho[0]):+.2f}" in fig.get_suptitle()
    one = plots.selectivity_vs_importance(result, measures=["importance_accuracy"])
    assert [ax.get_ylabel() for ax in one.axes] == ["Δ accuracy when ablated"] * len(SITES)


@pytest.mark.parametrize("measures", ["importance_loss", [], ["weight_l1"]])
def test_selectivity_vs_importance_refuses_unknown_measures(
    result: dk.Analysis, measures: object
) -> None:
    with pytest.raises(InvalidParameterError, match="'measures' parameter"):
        plots.selectivity_vs_importance(result, measures=measures)  # type: ignore[arg-type]


def test_selectivity_vs_weight_l1_scatters_each_site(result: dk.Analysis) -> None:
    fig = plots.selectivity_vs_weight_l1(result)
    assert len(fig.axes) == len(SITES)
    (points,) = fig.axes[1].collections
    site = result.dataset.where(result.dataset["site"] == "hidden1", drop=True)
    np.testing.assert_allclose(
        points.get_offsets(), np.c_[site["selectivity"].values, site["weight_l1"].values]
    )


def test_many_sites_wrap_into_rows_without_empty_panels(result: dk.Analysis) -> None:
    ds = result.dataset.assign_coords(site=("unit", [f"s{i % 5}" for i in range(28)]))
    assert len(plots.selectivity_vs_weight_l1(ds).axes) == 5
    assert len(plots.selectivity_vs_importance(ds).axes) == 10


def test_selectivity_by_depth_orders_sites_and_draws_their_means(result: dk.Analysis) -> None:
    fig = plots.selectivity_by_depth(result)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == LABELS
    (mean,) = [line for line in ax.lines if line.get_gid() == "mean"]
    expected = result["selectivity"].groupby("site").mean().sel(site=SITES).values
    np.testing.assert_allclose(mean.get_ydata(), expected)


def test_units_without_a_site_coordinate_form_one_group(result: dk.Analysis) -> None:
    ds = result.dataset.drop_vars(["site", "unit_index"])
    assert len(plots.selectivity_vs_weight_l1(ds).axes) == 1
    assert [t.get_text() for t in plots.selectivity_by_depth(ds).axes[0].get_xticklabels()] == [
        "all units"
    ]


@pytest.mark.parametrize(
    ("func", "variable"),
    [
        (plots.ablation_curves, "ablation_accuracy"),
        (plots.noise_curve, "noise_accuracy"),
        (plots.selectivity_by_depth, "selectivity"),
        (plots.selectivity_vs_weight_l1, "weight_l1"),
        (plots.selectivity_vs_importance, "importance_loss"),
    ],
)
def test_a_missing_variable_is_named_in_the_error(
    result: dk.Analysis, func: object, variable: str
) -> None:
    ds = result.dataset.drop_vars([variable, "importance_accuracy"])
    with pytest.raises(InvalidDataError, match=f"needs the variable '{variable}'"):
        func(ds)  # type: ignore[operator]


def test_histograms_need_one_of_their_variables(result: dk.Analysis) -> None:
    with pytest.raises(InvalidDataError, match=r"'selectivity'.*'statistics'"):
        plots.selectivity_histograms(result.dataset.drop_vars(["selectivity", "mutual_info"]))


def test_plot_analysis_draws_only_what_the_variables_allow() -> None:
    net = NumpyMLPAdapter.random(n_in=4, hidden=(6, 5), n_classes=3, seed=0)
    X = np.random.default_rng(0).normal(size=(60, 4))
    only_ablation = dk.analyze(net, (X, net.predict(X)), metrics=["ablation"], orderings=2,
                               fractions=4, progress=False)  # fmt: skip
    assert list(plots.plot_analysis(only_ablation)) == ["ablation_curves"]
    assert plots.plot_analysis(xr.Dataset({"accuracy": 0.5})) == {}


def test_sweeps_and_other_objects_are_refused_clearly(result: dk.Analysis) -> None:
    sweep = xr.concat([result.dataset, result.dataset], dim="model")
    with pytest.raises(InvalidDataError, match=r"isel\(model=0\)"):
        plots.ablation_curves(sweep)
    with pytest.raises(InvalidDataError, match=r"Analysis or an xarray\.Dataset\. Got dict"):
        plots.plot_analysis({"selectivity": [1.0]})  # type: ignore[arg-type]


def test_figures_are_drawn_without_pyplot(tmp_path: object) -> None:
    code = (
        "import sys, numpy as np, directionkit as dk\n"
        "from directionkit.testing import NumpyMLPAdapter\n"
        "from directionkit.report.plots import plot_analysis\n"
        "net = NumpyMLPAdapter.random(n_in=4, hidden=(6, 5), n_classes=3, seed=0)\n"
        "X = np.random.default_rng(0).normal(size=(40, 4))\n"
        "r = dk.analyze(net, (X, net.predict(X)), orderings=2, fractions=4, progress=False)\n"
        f"for name, fig in plot_analysis(r).items(): fig.savefig(r'{tmp_path}/' + name + '.png')\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"



def test_site_labels_fall_back_to_the_name_without_site_info(result: dk.Analysis) -> None:
    ds = result.dataset.copy()
    ds.attrs = {k: v for k, v in ds.attrs.items() if k != "site_info"}
    assert [t.get_text() for t in plots.selectivity_by_depth(ds).axes[0].get_xticklabels()] == (
        SITES
    )


def test_torch_and_onnx_sites_are_labelled_with_their_layer_type(tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import onnx

    from tests.adapters.onnx_models import dense_graph, random_dense

    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    X, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    result = dk.analyze(model, (X, y), metrics=["statistics"], progress=False)
    assert result.attrs["site_info"] == {"1": {
        "kind": "dense", "n_units": 6, "op": "ReLU", "shape": [6], "unit_axis": 0,
        "unit_axis_from": "Linear",
    }}  # fmt: skip
    ticks = plots.selectivity_by_depth(result).axes[0].get_xticklabels()
    assert [t.get_text() for t in ticks] == ["1 \N{MIDDLE DOT} ReLU \N{MIDDLE DOT} 6 units"]

    path = tmp_path / "m.onnx"
    onnx.save(dense_graph(*random_dense(0, (4, 5, 3))), str(path))
    audit = dk.analyze(str(path), (X.numpy(), y.numpy()), metrics=["statistics"], progress=False)
    (entry,) = audit.attrs["site_info"].values()
    assert entry == {
        "kind": "dense", "n_units": 5, "op": "Relu", "shape": [5], "unit_axis": 0,
        "unit_axis_from": "MatMul",
    }  # fmt: skip


def _title_box(fig: Figure) -> tuple[float, float, float, float]:
    """The drawn figure title's (x0, x1, y1) and the figure's width, in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    title = fig.get_suptitle()
    assert title
    box = next(t for t in fig.texts if t.get_text() == title).get_window_extent(
        canvas.get_renderer()
    )
    return box.x0, box.x1, box.y1, fig.bbox.width


@pytest.mark.parametrize("hidden", [(16, 12), (6,)])
def test_scatter_titles_fit_inside_the_figure(hidden: tuple[int, ...]) -> None:
    """Both importance measures in the title of a two-site and a one-site (narrow) figure."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:120] / 16.0, y[:120]
    net = NumpyMLPAdapter.random(n_in=64, hidden=hidden, n_classes=10, seed=0)
    result = dk.analyze(net, (X, y), metrics=["statistics", "importance", "weight_l1"],
                        progress=False)  # fmt: skip
    for fig in (plots.selectivity_vs_importance(result), plots.selectivity_vs_weight_l1(result)):
        x0, x1, top, width = _title_box(fig)
        assert 0 <= x0 < x1 <= width and top <= fig.bbox.height, fig.get_suptitle()
        rho = dk.spearman(result["selectivity"], result["importance_loss"])["rho"].values[0]
        if "loss" in fig.get_suptitle():
            assert f"{rho:+.2f}" in fig.get_suptitle()  # the overall rho is still given
