"""Integrity that binds every byte that decides a value (issue 23, S1, S2, copied chunks).

Each edit below changes what a reader gets back while keeping the store readable zarr: a
decoding attribute (``scale_factor``, ``add_offset``), a removed checksum codec with its
chunk deleted, a removed integrity record, a chunk copied from another store of the same
shape.  Each must be a StoreError from every reader of the library (analysis stores, sweep
stores, activation stores, training histories), never a number the store was not written
with.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.cli import main
from directionkit.errors import StoreError
from directionkit.results import ActivationWriter, open_activations, open_dataset, write_zarr


def an_analysis(value: float) -> dk.Analysis:
    units = {"site": ("unit", ["fc1", "fc1", "fc2"]), "unit_index": ("unit", [0, 1, 0])}
    return dk.Analysis(
        xr.Dataset(
            {
                "accuracy": value,
                "ablation_auc": ("scope", [value, value / 2]),
                "selectivity": ("unit", np.array([0.1, 0.2, 0.3]) + value),
            },
            coords={**units, "scope": ["all", "fc1"]},
        )
    )


def _meta(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def set_attribute(variable: str, key: str, value: Any) -> Callable[[Path], None]:
    """Add a decoding attribute to ``variable``, in its own zarr.json and in the root's
    consolidated copy (where xarray reads it): a consistent edit."""

    def edit(root: Path) -> None:
        own = root / variable / "zarr.json"
        meta = _meta(own)
        meta["attributes"][key] = value
        own.write_text(json.dumps(meta))
        top = _meta(root / "zarr.json")
        consolidated = top.get("consolidated_metadata")
        if consolidated:
            consolidated["metadata"][variable]["attributes"][key] = value
            (root / "zarr.json").write_text(json.dumps(top))

    return edit


def drop_codec_and_chunk(variable: str) -> Callable[[Path], None]:
    """Remove the crc32c codec of ``variable`` (both copies) and delete its chunks: zarr then
    reads fill values (NaN) without complaint."""

    def edit(root: Path) -> None:
        def strip(meta: dict[str, Any]) -> None:
            meta["codecs"] = [c for c in meta["codecs"] if c["name"] != "crc32c"]

        own = root / variable / "zarr.json"
        meta = _meta(own)
        strip(meta)
        own.write_text(json.dumps(meta))
        top = _meta(root / "zarr.json")
        if top.get("consolidated_metadata"):
            strip(top["consolidated_metadata"]["metadata"][variable])
            (root / "zarr.json").write_text(json.dumps(top))
        shutil.rmtree(root / variable / "c")

    return edit


def drop_record(root: Path) -> None:
    top = _meta(root / "zarr.json")
    del top["attributes"]["directionkit_integrity"]
    (root / "zarr.json").write_text(json.dumps(top))


def copy_chunk_from(other: Path, relative: str) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        shutil.copyfile(other / relative, root / relative)

    return edit


def _edits(variable: str, chunk: str, other: Path) -> dict[str, Callable[[Path], None]]:
    return {
        "scale_factor": set_attribute(variable, "scale_factor", 2.0),
        "add_offset": set_attribute(variable, "add_offset", 0.5),
        "removed codec and chunk": drop_codec_and_chunk(variable),
        "removed record": drop_record,
        "copied chunk": copy_chunk_from(other, f"{variable}/{chunk}"),
    }


EDITS = ["scale_factor", "add_offset", "removed codec and chunk", "removed record", "copied chunk"]


def _plain_reads_a_different_value(root: Path, variable: str, before: np.ndarray) -> bool:
    """Whether plain xarray now reads other values (the edit matters): the probe's point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        after = xr.open_zarr(root, consolidated=True)[variable].values
    return not np.array_equal(np.asarray(after, dtype=float), before, equal_nan=True)


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_that_changes_values_is_a_store_error_on_an_analysis(
    tmp_path: Path, edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = an_analysis(0.9062).save(tmp_path / "a.zarr")
    other = an_analysis(0.5).save(tmp_path / "other.zarr")
    before = dk.open(path)["ablation_auc"].values
    _edits("ablation_auc", "c/0", other)[edit](path)
    if edit != "removed record":
        assert _plain_reads_a_different_value(path, "ablation_auc", before)
    expected = "no integrity record" if edit == "removed record" else "'ablation_auc"
    with pytest.raises(StoreError, match=expected):
        dk.open(path)
    assert main(["show", str(path)]) == 2  # the CLI too: an error, not AUC 1.8125
    assert "ablation_auc" in capsys.readouterr().err or edit == "removed record"


def _a_history(path: Path) -> Path:
    history = xr.Dataset(
        {"test_accuracy": ("epoch", [0.12, 0.169]), "train_loss": ("epoch", [2.0, 1.5])},
        coords={"epoch": [1, 2]},
        attrs={"config": "{}"},
    )
    return write_zarr(history, path)


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_that_changes_values_is_a_store_error_on_a_training_history(
    tmp_path: Path, edit: str
) -> None:
    from directionkit.reference_models.runs import run_summary

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "digits"}))
    history = _a_history(run / "history.zarr")
    other = _a_history(tmp_path / "other.zarr")
    shutil.copyfile(other / "test_accuracy" / "c" / "0", tmp_path / "chunk")
    assert run_summary(run)["test_accuracy"] == pytest.approx(0.169)
    if edit == "copied chunk":  # a history of the same shape with other values
        data = xr.Dataset({"test_accuracy": ("epoch", [0.5, 0.6])}, coords={"epoch": [1, 2]})
        other = write_zarr(data, tmp_path / "other2.zarr")
    _edits("test_accuracy", "c/0", other)[edit](history)
    with pytest.raises(StoreError):
        run_summary(run)  # never test_accuracy 0.338, nor NaN
    with pytest.raises(StoreError):
        open_dataset(history)


def _a_sweep(path: Path, client: Any, seed: int = 0) -> dk.SweepResult:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)

    def model(seed: int) -> Any:
        torch = pytest.importorskip("torch")
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)
        ).eval()

    return dk.sweep(
        {"a": model(seed), "b": model(seed + 1)}, (X, y), store=path, client=client,
        metrics=["statistics", "ablation"], orderings=2, fractions=5, progress=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two finished sweep stores of the same shape (other weights), made once."""
    distributed = pytest.importorskip("distributed")
    folder = tmp_path_factory.mktemp("sweeps")
    with distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None
    ) as client:
        _a_sweep(folder / "s.zarr", client)
        _a_sweep(folder / "t.zarr", client, seed=5)
    return folder / "s.zarr", folder / "t.zarr"


#: (variable in the store, its chunk, the group it is in, how a reader reads it)
SWEEP_TARGETS = {
    "root row": ("ablation_auc", "c/1/0", "", lambda p: dk.open_sweep(p)),
    "root fixed": ("fraction", "c/0", "", lambda p: dk.open_sweep(p)),
    "model group": ("selectivity", "c/0", "units/b", lambda p: dk.open_sweep(p).units("b")),
}


@pytest.mark.requires_torch
@pytest.mark.parametrize("target", list(SWEEP_TARGETS))
@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_that_changes_values_is_a_store_error_on_a_sweep(
    tmp_path: Path, edit: str, target: str, sweeps: tuple[Path, Path]
) -> None:
    variable, chunk, group, read = SWEEP_TARGETS[target]
    if edit == "copied chunk" and target == "root fixed":
        pytest.skip("both sweeps share their fractions: a copied chunk changes nothing")
    made, other = sweeps
    path = tmp_path / "s.zarr"
    shutil.copytree(made, path)
    assert dk.open_sweep(path).done == ["a", "b"]
    root = path / group if group else path
    source = other / (group.replace("/b", "/a") if group else "")
    _edits(variable, chunk, source)[edit](root)
    with pytest.raises(StoreError):
        read(path)
    if group:  # the CLI reads a model's group as an analysis
        assert main(["show", str(root)]) == 2


def test_a_chunk_copied_from_another_analysis_is_caught_even_with_a_valid_crc(
    tmp_path: Path,
) -> None:
    path = an_analysis(0.25).save(tmp_path / "a.zarr")
    other = an_analysis(0.75).save(tmp_path / "b.zarr")
    shutil.copyfile(other / "selectivity" / "c" / "0", path / "selectivity" / "c" / "0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = xr.open_zarr(path)["selectivity"].values  # its CRC is valid: zarr reads it
    np.testing.assert_allclose(plain, [0.85, 0.95, 1.05])
    with pytest.raises(StoreError, match="copied from another store"):
        dk.open(path)


def test_activation_stores_check_each_chunk_as_read_and_their_metadata_when_opened(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.zarr"
        with ActivationWriter(path, {"fc": 3}, chunk_size=4) as writer:
            writer.append(rng.normal(size=(10, 3)), np.arange(10) % 2)
        paths.append(path)
    a, b = paths
    shutil.copyfile(b / "activations" / "c" / "1" / "0", a / "activations" / "c" / "1" / "0")
    opened = open_activations(a)  # lazy: chunk 0 reads, chunk 1 does not
    assert opened[:4].values.shape == (4, 3)
    with pytest.raises(StoreError, match="activations/c/1/0"):
        _ = opened[4:8].values
    strided = open_activations(a)  # rows 0, 2, 4, 6, 8: chunk 1 (rows 4-7, copied) between
    with pytest.raises(StoreError, match="activations/c/1/0"):
        _ = strided[0:10:2].values
    set_attribute("activations", "scale_factor", 2.0)(b)
    with pytest.raises(StoreError, match="metadata of variable 'activations'"):
        open_activations(b)
