"""A run's per-epoch history: ``history.zarr``, its variables, writing and checking it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from directionkit._version import __version__
from directionkit.errors import StoreError
from directionkit.reference_models.train._config import TrainConfig
from directionkit.results import VERSION_ATTR, open_dataset, write_zarr
from directionkit.results._schema import _json_attrs

#: Variables of ``history.zarr``, each with the single dim ``epoch``.
HISTORY_VARIABLES: tuple[str, ...] = (
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "epoch_seconds",
)


def _history_dataset(
    history: Mapping[str, Sequence[float]], config: TrainConfig, meta: Mapping[str, Any]
) -> xr.Dataset:
    epochs = np.arange(1, len(history["train_loss"]) + 1, dtype=np.int64)
    units = {
        "train_loss": "mean cross-entropy on the training labels (corrupted ones included)",
        "train_accuracy": "accuracy on the training labels (corrupted ones included)",
        "test_loss": "mean cross-entropy on the true test labels",
        "test_accuracy": "accuracy on the true test labels",
        "epoch_seconds": "wall-clock seconds of the epoch (training and evaluation)",
    }
    variables = {
        name: xr.DataArray(
            np.asarray(history[name], dtype=np.float64),
            dims=("epoch",),
            attrs={"description": units[name]},
        )
        for name in HISTORY_VARIABLES
    }
    attrs = {
        "config": config.to_json(), **meta, "torch_version": torch.__version__,
        VERSION_ATTR: __version__,  # also what makes the store replaceable on a resume
    }  # fmt: skip
    return xr.Dataset(variables, coords={"epoch": epochs}, attrs=attrs)


def _holds(path: Path, dataset: xr.Dataset) -> bool:
    """Whether the store at ``path`` verifies and holds exactly ``dataset``."""
    if not path.is_dir():
        return False
    try:
        stored = open_dataset(path)
    except StoreError:
        return False
    expected = dataset.copy()
    expected.attrs = _json_attrs(dataset.attrs)  # as the store gives them back
    return bool(stored.identical(expected))


def _write_history(
    run: Path, history: Mapping[str, Sequence[float]], config: TrainConfig, meta: Mapping[str, Any]
) -> xr.Dataset:
    """Write ``run/history.zarr`` unless it already holds this history; the history."""
    dataset = _history_dataset(history, config, meta)
    history_path = run / "history.zarr"
    if not _holds(history_path, dataset):  # (a finished run found again: left as it is)
        write_zarr(dataset, history_path, overwrite=history_path.exists())
    return dataset
