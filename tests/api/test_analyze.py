"""directionkit.analyze end to end: numpy reference adapter and a torch module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import (
    DirectionKitError,
    DirectionKitWarning,
    InvalidParameterError,
    UnsupportedModelError,
)
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


def test_data_without_every_class_gives_every_measure_that_is_defined(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    keep = y != 1  # no example of class 1
    x, y = x[keep], y[keep]
    with pytest.warns(dk.DirectionKitWarning, match=r"no example of 1 of the model's 3 classes"):
        result = dk.analyze(net, (x, y), train_data=(x, y), orderings=2, fractions=3,
                            noise_scales=[0.0, 1.0], noise_repeats=1, progress=False)  # fmt: skip
    for name in ("ablation_auc", "noise_accuracy", "importance_loss", "selectivity",
                 "mutual_info", "class_mean"):  # fmt: skip
        assert name in result, name
    assert result.attrs["classes_missing"] == [1] and result.attrs["classes_present"] == 2
    assert np.isnan(result["class_mean"].sel({"class": 1})).all()
    # selectivity over the two classes present, as the one-shot function computes it
    acts = net.run(x, record=list(net.sites)).activations
    stacked = np.concatenate([acts[n] for n in net.sites], axis=1)
    np.testing.assert_allclose(
        result["selectivity"].values,
        dk.class_selectivity(stacked, y, n_classes=3, classes="present").values,
    )
    with pytest.raises(DirectionKitError, match=r"classes \[1\] have none.*classes='present'"):
        dk.analyze(net, (x, y), metrics=["statistics"], classes="all", progress=False)


def test_a_model_at_chance_is_flagged_where_its_numbers_are(problem, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    shuffled = np.random.default_rng(5).permutation(y)  # labels the model cannot predict
    with pytest.warns(dk.DirectionKitWarning, match="not clearly above chance"):
        at_chance = dk.analyze(net, (x, shuffled), metrics=["ablation"], orderings=3,
                               fractions=5, progress=False)  # fmt: skip
    counts = np.bincount(shuffled, minlength=3)
    assert float(at_chance["chance_accuracy"]) == pytest.approx(counts.max() / counts.sum())
    assert bool(at_chance["near_chance"]) and "near_chance_note" in at_chance.attrs
    # the corrected AUC, by hand: the mean curve mapped so that clean = 1 and chance = 0
    curve = at_chance["ablation_accuracy"].sel(scope="all").values  # (ordering, fraction)
    chance, f = float(at_chance["chance_accuracy"]), at_chance["fraction"].values
    clean = curve[:, 0]
    mapped = (curve - chance) / (clean[:, None] - chance)
    want = np.mean(np.sum((mapped[:, 1:] + mapped[:, :-1]) / 2 * np.diff(f), axis=1))
    got = float(at_chance["ablation_auc_corrected"].sel(scope="all"))
    if np.all(clean > chance):
        assert got == pytest.approx(want)
    else:
        assert np.isnan(got)
    # stored, and read back with its flag
    back = dk.open(at_chance.save(tmp_path / "chance.zarr"))
    assert bool(back["near_chance"]) and "(near chance" in repr(back)
    # the model on its own predictions is clearly above chance: no flag, no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", dk.DirectionKitWarning)
        learned = dk.analyze(net, (x, y), metrics=["ablation"], orderings=3, fractions=5,
                             progress=False)  # fmt: skip
    assert not bool(learned["near_chance"]) and "near chance" not in repr(learned)


@pytest.mark.parametrize(
    ("option", "value", "name"),
    [
        ("orderings", -1, "orderings"),
        ("fractions", 1, "fractions"),
        ("seed", -3, "seed"),
        ("noise_repeats", 0, "noise_repeats"),
        ("noise_scales", [-1.0], "noise_scales"),
        ("batch_size", 0, "batch_size"),
    ],
)
def test_every_option_is_checked_before_the_model_runs(problem, option, value, name) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    calls = []
    original = net.run

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(*args, **kwargs)

    net.run = counted  # type: ignore[method-assign]
    with pytest.raises(dk.InvalidParameterError, match=rf"'{name}' parameter of analyze"):
        dk.analyze(net, (x, y), train_data=(x, y), progress=False, **{option: value})
    assert calls == []  # refused before a single pass over the data


def test_a_model_right_on_no_example_keeps_every_measure_and_a_nan_auc() -> None:
    # nothing to normalise the curve by: the AUC is NaN and the attrs say why; the
    # curve itself and every other measure are kept
    net = NumpyMLPAdapter.random(n_in=4, hidden=(6,), n_classes=3, seed=0)
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = (net.predict(X) + 1) % 3  # every prediction wrong
    with pytest.warns(DirectionKitWarning, match="not clearly above chance"):
        result = dk.analyze(net, (X, y), orderings=2, fractions=3, progress=False)
    assert float(result["accuracy"]) == 0.0
    assert np.isnan(result["ablation_auc"].values).all()
    assert np.isnan(result["ablation_auc_corrected"].values).all()
    assert "clean accuracy is 0" in result.attrs["ablation_auc_note"]
    assert np.isfinite(result["ablation_accuracy"].values).all()
    assert "selectivity" in result.dataset and "importance_loss" in result.dataset


def test_fractions_without_both_ends_are_refused_before_any_pass() -> None:
    net = NumpyMLPAdapter.random(n_in=4, hidden=(6,), n_classes=3, seed=0)
    X = np.random.default_rng(0).normal(size=(30, 4))
    with pytest.raises(InvalidParameterError, match=r"'fractions'.*include 0 and 1"):
        dk.analyze(_Exploding(net), (X, net.predict(X)), fractions=[0.5, 1.0], progress=False)
    # without ablation there is no AUC, and any fractions may be given
    dk.analyze(net, (X, net.predict(X)), fractions=[0.5, 1.0], metrics=["statistics"],
               progress=False)  # fmt: skip


class _Exploding:
    """An adapter that fails if it is ever run: a refusal must come before any pass."""

    def __init__(self, inner: NumpyMLPAdapter) -> None:
        self.sites = inner.sites

    def run(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran before the options were checked")
