"""The zarr store: identical round trips, plain-xarray readability, atomic writes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import DirectionKitError, StoreError
from directionkit.results import SCHEMA, fingerprint


def example() -> dk.Analysis:
    rng = np.random.default_rng(0)
    units = {"site": ("unit", ["fc1", "fc1", "fc2"]), "unit_index": ("unit", [0, 1, 0])}
    return dk.Analysis(
        xr.Dataset(
            {
                "selectivity": ("unit", rng.random(3)),
                "class_mean": (("unit", "class"), rng.random((3, 4))),
                "ablation_accuracy": (("scope", "ordering", "fraction"), rng.random((2, 3, 5))),
                "ablation_order": (("scope", "ordering", "rank"), rng.integers(0, 3, (2, 3, 3))),
                "accuracy": 0.93,
            },
            coords={**units, "scope": ["all", "fc2"], "fraction": np.linspace(0, 1, 5)},
            attrs={
                "parameters": {"orderings": 3, "fractions": (0.0, 1.0), "seed": np.int64(2)},
                "model": fingerprint(np.ones(3)),
            },
        )
    )


def test_round_trip_is_identical_and_plain_xarray_reads_it_without_warnings(tmp_path: Path) -> None:
    result = example()
    path = result.save(tmp_path / "run.zarr")
    back = dk.open(path)
    xr.testing.assert_identical(back.dataset, result.dataset)
    assert back.attrs["parameters"] == {"orderings": 3, "fractions": [0.0, 1.0], "seed": 2}
    assert back.attrs["directionkit_version"] == dk.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = xr.open_zarr(path).load()
    # plain xarray also sees the integrity record that dk.open checks and drops
    record = plain.attrs.pop("directionkit_integrity")
    assert len(record["id"]) == 32 and "selectivity/c/0" in record["files"]
    xr.testing.assert_identical(plain, result.dataset)
    assert "selectivity" in repr(back) and "fc1" in list(back["site"].values)


def test_existing_target_needs_overwrite_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    example().save(path)
    with pytest.raises(StoreError, match="overwrite=True"):
        example().save(path)
    small = dk.Analysis(xr.Dataset({"accuracy": 0.5}))
    small.save(path, overwrite=True)
    assert set(dk.open(path).dataset.data_vars) == {"accuracy"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


def test_a_failure_mid_write_leaves_nothing_behind(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.zarr"
    original = xr.Dataset.to_zarr

    def half_then_fail(self, store, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["encoding"] = {"accuracy": kwargs["encoding"]["accuracy"]}
        original(self[["accuracy"]], store, **kwargs)  # some files are written ...
        raise OSError("disk full")  # ... then the write fails

    monkeypatch.setattr(xr.Dataset, "to_zarr", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        example().save(path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    example().save(path)
    monkeypatch.setattr(xr.Dataset, "to_zarr", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        dk.Analysis(xr.Dataset({"accuracy": 0.1})).save(path, overwrite=True)
    xr.testing.assert_identical(dk.open(path).dataset, example().dataset)  # old store intact
    assert [p.name for p in tmp_path.iterdir()] == ["run.zarr"]


def test_schema_dims_are_enforced_and_extra_variables_allowed() -> None:
    with pytest.raises(
        DirectionKitError, match=r"'selectivity' of an Analysis must have dims \('unit',\)"
    ):
        dk.Analysis(xr.Dataset({"selectivity": ("neuron", [0.1])}))
    dk.Analysis(xr.Dataset({"my_measure": ("neuron", [0.1])}))
    with pytest.raises(DirectionKitError, match="JSON-serialisable"):
        dk.Analysis(xr.Dataset(attrs={"model": object()}))
    with pytest.raises(DirectionKitError, match=r"xarray\.Dataset"):
        dk.Analysis({"selectivity": [1.0]})  # type: ignore[arg-type]
    assert SCHEMA["ablation_accuracy"] == ("scope", "ordering", "fraction")


def test_a_population_puts_model_or_epoch_in_front_of_the_schema_dims(tmp_path: Path) -> None:
    auc = np.array([[0.6], [0.7]])
    sweep_like = xr.Dataset(
        {"ablation_auc": (("model", "scope"), auc), "near_chance": ("model", [False, True])},
        coords={"model": ["a", "b"], "scope": ["all"]},
    )
    result = dk.Analysis(sweep_like)
    assert result.population == ("model",)
    back = dk.open(result.save(tmp_path / "p.zarr"))
    assert back.population == ("model",)
    np.testing.assert_array_equal(back["ablation_auc"].values, auc)
    over_training = xr.Dataset({"ablation_auc": (("model", "epoch", "scope"), auc[None])})
    assert dk.Analysis(over_training).population == ("model", "epoch")
    for dims in [("scope", "model"), ("model", "model2", "scope"), ("epoch", "epoch", "scope")]:
        shape = (1,) * len(dims)
        with pytest.raises(DirectionKitError, match="after any of the population dims"):
            dk.Analysis(xr.Dataset({"ablation_auc": (dims, np.zeros(shape))}))
    assert dk.Analysis(xr.Dataset({"accuracy": 0.5})).population == ()


def test_opening_what_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such folder"):
        dk.open(tmp_path / "missing.zarr")
    (tmp_path / "model.onnx").write_bytes(b"not a store")
    with pytest.raises(StoreError, match=r"is a file, not a directionkit store.*analyze MODEL"):
        dk.open(tmp_path / "model.onnx")
    xr.Dataset({"x": ("a", [1.0])}).to_zarr(
        tmp_path / "other.zarr", zarr_format=3, consolidated=False
    )
    with pytest.raises(StoreError, match="has no integrity record"):
        dk.open(tmp_path / "other.zarr")
    with (
        pytest.warns(dk.DirectionKitWarning, match="without verifying"),
        pytest.raises(StoreError, match="not a directionkit analysis"),
    ):
        dk.open(tmp_path / "other.zarr", verify=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError):
        dk.open(tmp_path / "empty")
    with pytest.raises(StoreError, match="does not exist"):
        example().save(tmp_path / "no" / "such" / "run.zarr")
