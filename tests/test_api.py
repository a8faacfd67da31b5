"""directionkit.analyze end to end: numpy reference adapter and a torch module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import DirectionKitError, UnsupportedModelError
from directionkit.testing import NumpyMLPAdapter


@pytest.fixture
def problem() -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    net = NumpyMLPAdapter.random(n_in=5, hidden=(8, 6), n_classes=3, seed=1)
    x = np.random.default_rng(2).normal(size=(60, 5))
    return net, x, net.predict(x)


def test_analyze_returns_every_variable_labelled_and_is_deterministic(
    problem, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    kwargs = dict(train_data=(x, y), scopes=["all", "last:1"], orderings=3, fractions=5,
                  noise_scales=[0.0, 1.0], noise_repeats=2, progress=False)  # fmt: skip
    result = dk.analyze(net, (x, y), **kwargs)
    for name in ["accuracy", "loss", "ablation_accuracy", "ablation_order", "ablation_auc",
                 "noise_accuracy", "class_mean", "selectivity", "mutual_info", "unit_mean",
                 "unit_std", "importance_loss", "importance_accuracy", "weight_l1"]:  # fmt: skip
        assert name in result, name
    assert result["selectivity"].sizes["unit"] == 14
    assert list(result["scope"].values) == ["all", "last:1"]
    # the shorter scope's ranks are padded with -1
    assert (result["ablation_order"].sel(scope="last:1").values[:, 6:] == -1).all()
    np.testing.assert_allclose(result["ablation_accuracy"].sel(fraction=0.0), 1.0)
    np.testing.assert_allclose(
        result["weight_l1"], np.concatenate([np.abs(w).sum(0) for w in net.weights[:2]])
    )
    again = dk.analyze(net, (x, y), **kwargs)
    xr.testing.assert_identical(result.dataset, again.dataset)
    result.save(tmp_path / "run.zarr")
    xr.testing.assert_identical(dk.open(tmp_path / "run.zarr").dataset, result.dataset)


def test_analyze_skips_noise_without_training_data_unless_asked(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    result = dk.analyze(net, (x, y), orderings=1, fractions=2, progress=False)
    assert "noise_accuracy" not in result
    with pytest.raises(DirectionKitError, match="'train_data' parameter of analyze"):
        dk.analyze(net, (x, y), metrics=["noise"], progress=False)
    with pytest.raises(DirectionKitError, match="'metrics' parameter of analyze"):
        dk.analyze(net, (x, y), metrics=["magic"], progress=False)


@pytest.mark.parametrize("metrics", [["statistics"], ["ablation"], ["importance"]])
def test_labels_beyond_the_models_outputs_are_named(problem, metrics) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    y = y.copy()
    y[7] = 3  # the model has 3 outputs
    with pytest.raises(
        DirectionKitError, match=r"must lie in \[0, 3\) \(the model has 3 outputs\)\. Got 3"
    ):
        dk.analyze(net, (x, y), metrics=metrics, orderings=1, fractions=2, progress=False)
    with pytest.raises(DirectionKitError, match="must be integer class indices"):
        dk.analyze(net, (x, y + 0.5), metrics=metrics, orderings=1, fractions=2, progress=False)


def test_unknown_models_are_refused_with_what_is_supported(problem) -> None:  # type: ignore[no-untyped-def]
    _, x, y = problem
    with pytest.raises(UnsupportedModelError, match=r"torch\.nn\.Module"):
        dk.analyze(object(), (x, y), progress=False)


@pytest.mark.requires_torch
def test_analyze_a_torch_module_with_a_dataloader() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(64, 5)
    y = model(x).argmax(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    result = dk.analyze(model, loader, train_data=loader, orderings=2, fractions=3,
                        noise_scales=[0.0], noise_repeats=1, progress=False)  # fmt: skip
    assert float(result["accuracy"]) == 1.0
    assert list(np.unique(result["site"].values)) == ["1"]
    np.testing.assert_allclose(result["noise_accuracy"], 1.0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(DirectionKitError, match="does not fit the model"):
        dk.analyze(model, (np.zeros((4, 7), np.float32), np.zeros(4, int)), progress=False)


class _General:
    """A numpy MLP without its LinearChain: importance goes the general way (one
    intervention per unit), where a budget applies."""

    def __init__(self, net: NumpyMLPAdapter) -> None:
        self.net = net
        self.sites = net.sites

    def run(self, x, interventions=None, record=()):  # type: ignore[no-untyped-def]
        return self.net.run(x, interventions, record)


def test_importance_beyond_the_budget_is_a_stated_stratified_sample(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    general = _General(net)
    full = dk.analyze(general, (x, y), metrics=["importance"], progress=False)
    assert "importance_sampled" not in full.attrs
    sampled = dk.analyze(general, (x, y), metrics=["importance"], importance_units=5,
                         progress=False)  # fmt: skip
    measured = ~np.isnan(sampled["importance_loss"].values)
    assert sampled.attrs["importance_sampled"].startswith("4 of 14 units, stratified by site")
    assert measured.sum() == 4 and measured[:8].sum() == 2 and measured[8:].sum() == 2
    np.testing.assert_allclose(
        sampled["importance_loss"].values[measured], full["importance_loss"].values[measured]
    )
    again = dk.analyze(general, (x, y), metrics=["importance"], importance_units=5,
                       progress=False)  # fmt: skip
    np.testing.assert_array_equal(np.isnan(again["importance_loss"].values), ~measured)
    with pytest.raises(DirectionKitError, match="'importance_units' parameter of analyze"):
        dk.analyze(general, (x, y), importance_units=0, progress=False)
    # the incremental path of plain MLPs measures every unit whatever the budget
    chain = dk.analyze(net, (x, y), metrics=["importance"], importance_units=5, progress=False)
    assert not np.isnan(chain["importance_loss"].values).any()


def test_options_of_an_adapter_are_set_on_the_adapter(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    with pytest.raises(DirectionKitError, match=r"'output', 'inputs' are set on the adapter"):
        dk.analyze(net, (x, y), output="logits", inputs={"a": 1}, progress=False)


def test_site_info_records_each_sites_shape_and_unit_axis(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    result = dk.analyze(net, (x, y), metrics=["statistics"], progress=False)
    assert result.attrs["site_info"]["hidden0"] == {
        "kind": "dense", "n_units": 8, "shape": [8], "unit_axis": 0,
    }  # fmt: skip
    assert result.attrs["skipped"] == {} and result.attrs["assumptions"] == []
