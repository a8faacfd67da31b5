"""The activation store: written batch by batch, read lazily, same numbers as streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import DirectionKitError, StoreError
from directionkit.experiments import activation_statistics, record_activations
from directionkit.metrics import _blocks, bin_edges
from directionkit.results import open_activations
from directionkit.testing import NumpyMLPAdapter


@pytest.fixture
def problem() -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    net = NumpyMLPAdapter.random(n_in=5, hidden=(8, 6), n_classes=3, seed=1)
    x = np.random.default_rng(2).normal(size=(150, 5))
    return net, x, np.tile([0, 1, 2], 50)


@pytest.mark.parametrize("binning", ["equal-width", "equal-frequency"])
def test_metrics_on_a_lazy_store_equal_the_streamed_pass(
    problem, tmp_path: Path, monkeypatch, binning
) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    path = record_activations(net, (x, y), tmp_path / "acts.zarr", batch_size=40, chunk_size=16)
    acts = open_activations(path)
    assert not acts.variable._in_memory  # nothing read yet
    assert acts.dims == ("example", "unit") and acts.shape == (150, 14)
    np.testing.assert_array_equal(acts["label"].values, y)
    assert list(acts["site"].values) == ["hidden0"] * 8 + ["hidden1"] * 6
    monkeypatch.setattr(_blocks, "BLOCK_VALUES", 14 * 20)  # force many blocks of 16 rows
    streamed = activation_statistics(net, (x, y), n_bins=6, binning=binning)
    np.testing.assert_allclose(dk.class_mean(acts), streamed["class_mean"], rtol=1e-6)
    np.testing.assert_allclose(
        dk.class_selectivity(acts), streamed["selectivity"], rtol=1e-5, atol=1e-7
    )
    lazy_mi = dk.mutual_information(acts, n_bins=6, binning=binning)
    np.testing.assert_allclose(
        lazy_mi, dk.mutual_information(acts.values, y, n_bins=6, binning=binning)
    )
    assert list(dk.class_selectivity(acts)["site"].values) == list(streamed["site"].values)
    np.testing.assert_allclose(bin_edges(acts, 6, binning), bin_edges(acts.values, 6, binning))
    # the recorded values are the adapter's activations (float32 in the store)
    direct = net.run(x, record=["hidden0", "hidden1"]).activations
    np.testing.assert_allclose(
        acts.values, np.concatenate([direct["hidden0"], direct["hidden1"]], 1), rtol=1e-6
    )


def test_a_failure_mid_recording_leaves_no_store(problem, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem

    def batches():  # type: ignore[no-untyped-def]
        yield x[:50], y[:50]
        yield x[50:100], y[50:100] + 5  # labels outside the model's classes

    with pytest.raises(DirectionKitError, match=r"must lie in \[0, 3\)"):
        record_activations(net, list(batches()), tmp_path / "acts.zarr")
    assert list(tmp_path.iterdir()) == []


def test_bad_stores_and_missing_labels_are_refused(problem, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    with pytest.raises(StoreError, match="no such folder"):
        open_activations(tmp_path / "missing.zarr")
    dk.Analysis(xr.Dataset({"accuracy": 1.0})).save(tmp_path / "analysis.zarr")
    with pytest.raises(StoreError, match="not a directionkit activation store"):
        open_activations(tmp_path / "analysis.zarr")
    with pytest.raises(DirectionKitError, match="needs labels"):
        dk.class_selectivity(xr.DataArray(np.ones((3, 2)), dims=("example", "unit")))
    path = record_activations(net, (x, y), tmp_path / "a.zarr")
    with pytest.raises(StoreError, match="overwrite=True"):
        record_activations(net, (x, y), path)
