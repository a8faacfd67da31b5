"""The data of a training run, re-created from its ``config.json`` without torch.

A run of :func:`directionkit.reference_models.train.train` records its config, not its data:
the examples come from the data set and the corrupted labels from the label seed.
:func:`split_data` re-creates both exactly (training uses it too), so a memorising network
can be audited on the shuffled labels it memorised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from directionkit._utils.validation import check_choice
from directionkit.errors import StoreError
from directionkit.reference_models.datasets import corrupt_labels, load

__all__ = [
    "EXPORT_ERROR", "REPLACED_RUN", "RunSplit", "export_error", "is_run_dir", "read_config",
    "run_data", "split_data",
]  # fmt: skip

#: File of a run directory that holds why its ONNX export failed (absent otherwise).
EXPORT_ERROR = "model.onnx.error"
#: Folder of a run directory where the run that ``train --overwrite`` replaces waits until
#: the new run has saved its first epoch (absent otherwise).
REPLACED_RUN = ".replaced-run"


class RunSplit(NamedTuple):
    """One split of a run's data (see :func:`split_data`)."""

    X: np.ndarray
    y: np.ndarray
    y_true: np.ndarray
    corrupted: np.ndarray


def split_data(config: Mapping[str, Any], split: str) -> RunSplit:
    """One split of a run's data: examples, the labels it used, the true labels, the mask.

    Parameters
    ----------
    config : mapping
        A training config as a dict (``TrainConfig.to_dict()`` or ``config.json``); reads
        ``dataset``, ``data_root``, ``train_limit``, ``test_limit``, ``corruption``,
        ``label_seed`` and ``seed``.
    split : {"train", "test"}
        Training labels are corrupted as the config says; test labels are always true.

    Returns
    -------
    RunSplit
        ``X`` (float32, as :func:`~directionkit.reference_models.datasets.load` returns
        them); ``y``, the labels the run trained on (``"train"``) or the true labels
        (``"test"``); ``y_true``, the data set's labels; ``corrupted``, the examples
        eligible for the shuffle (all False for ``"test"``).

    Examples
    --------
    >>> config = {"dataset": "digits", "corruption": 1.0, "seed": 3, "train_limit": 500}
    >>> data = split_data(config, "train")
    >>> data.X.shape, int(data.corrupted.sum())
    ((500, 1, 8, 8), 500)
    >>> bool((data.y == data.y_true).mean() < 0.3)
    True
    """
    check_choice(split, "split", "split_data", ("train", "test"))
    dataset = config["dataset"]
    source = Path(dataset) if str(dataset).endswith(".npz") else dataset
    limit = config.get(f"{split}_limit")
    X, y = load(source, split, root=config.get("data_root"), limit=limit)  # reads only those
    if split == "test":
        return RunSplit(X, y, y, np.zeros(len(y), dtype=bool))
    label_seed = config.get("label_seed")
    seed = int(config.get("seed", 0)) if label_seed is None else int(label_seed)
    used, corrupted = corrupt_labels(y, float(config.get("corruption", 0.0)), seed=seed)
    return RunSplit(X, used, y, corrupted)


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a training run directory (it holds a ``config.json``).

    Examples
    --------
    >>> is_run_dir("/nonexistent"), is_run_dir(__file__)
    (False, False)
    """
    return (Path(path) / "config.json").is_file()


def export_error(run_dir: str | os.PathLike[str]) -> str | None:
    """Why the ONNX export of a training run failed, or None (no failure recorded).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     before = export_error(run)
    ...     _ = (Path(run) / EXPORT_ERROR).write_text("ModuleNotFoundError: onnxscript\\n")
    ...     before, export_error(run)
    (None, 'ModuleNotFoundError: onnxscript')
    """
    try:
        return (Path(run_dir) / EXPORT_ERROR).read_text().strip()
    except OSError:
        return None


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a run directory, as a dict.

    Raises
    ------
    StoreError
        ``run_dir`` holds no readable ``config.json``, or it has no ``dataset`` field.

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = (Path(run) / "config.json").write_text(json.dumps({"dataset": "digits"}))
    ...     read_config(run)
    {'dataset': 'digits'}
    """
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(
            f"{str(run_dir)!r} is not a training run directory (no readable config.json: {err})."
        ) from err
    if not isinstance(config, dict) or "dataset" not in config:
        raise StoreError(f"{str(path)!r} is not a training config (no 'dataset' field).")
    return config


def run_data(
    run_dir: str | os.PathLike[str], split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a run directory's split, with the labels it was trained on.

    Parameters
    ----------
    run_dir : str or path-like
        A directory written by :func:`~directionkit.reference_models.train.train`.
    split : {"train", "test"}, default "train"

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = (Path(run) / "config.json").write_text(json.dumps({"dataset": "digits"}))
    ...     X, y = run_data(run, "test")
    >>> X.shape
    (450, 1, 8, 8)
    """
    data = split_data(read_config(run_dir), split)
    return data.X, data.y


def run_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's training config plus its final history numbers, as one flat dict.

    The config of ``config.json`` (``corruption``, ``dropout``, ``batchnorm``,
    ``seed``, ``epochs``, ...) and, when ``history.zarr`` is readable,
    ``epochs_trained`` and the last epoch's ``train_accuracy``, ``test_accuracy``,
    ``train_loss`` and ``test_loss``.  The history is checked as
    :func:`directionkit.open` checks a store: a damaged one is a
    :class:`~directionkit.errors.StoreError`, never numbers it was not written with.
    ``directionkit analyze`` copies it into an analysis's ``attrs["run_config"]``, where
    :func:`directionkit.compare` reads it.

    Examples
    --------
    >>> import json, tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = (Path(run) / "config.json").write_text(json.dumps({"dataset": "digits"}))
    ...     run_summary(run)
    {'dataset': 'digits'}
    """
    summary = dict(read_config(run_dir))
    history = Path(run_dir) / "history.zarr"
    if history.is_dir():
        from directionkit.results import open_dataset

        ds = open_dataset(history)  # checked: a damaged history is a StoreError
        if ds.sizes.get("epoch", 0):
            summary["epochs_trained"] = int(ds.sizes["epoch"])
            for name in ("train_accuracy", "test_accuracy", "train_loss", "test_loss"):
                if name in ds:
                    summary[name] = float(ds[name].values[-1])
    return summary
