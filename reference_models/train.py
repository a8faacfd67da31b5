"""Train the paper's reference models: one :class:`TrainConfig` in, one run directory out.

A run directory holds everything a later analysis needs, and enough to resume:

=============================== ============================================================
``config.json``                 the :class:`TrainConfig` (``TrainConfig.from_dict`` reads it)
``run.json``                    what the data gave: input shape, classes, example counts
``checkpoints/epoch_XXXX.pt``   the model's ``state_dict`` at each requested epoch and the
                                last one (plain tensors: ``torch.load(..., weights_only=True)``)
``resume.pt``                   model, optimiser and history after the latest finished epoch
``history.zarr``                per-epoch ``train_loss``, ``train_accuracy``, ``test_loss``,
                                ``test_accuracy`` and ``epoch_seconds`` (dim ``epoch``)
``model.onnx``                  the final model, batch axis free, in one file (no external
                                data file: every reference model is far below ONNX's 2 GB)
``model.onnx.error``            only when the export failed: why (``analyze`` reports it)
=============================== ============================================================

Checkpoints and ``model.onnx`` always take the data set's own inputs (as
:func:`~directionkit.reference_models.datasets.load` returns them), also when the MLP was
trained on standardised ones (``standardize``): the standardisation is folded into its
first layer when it is saved.

Training is deterministic for a seed on CPU (on one machine, at one torch thread count, which
sets the order of floating-point sums): the initial weights come from a generator
seeded from ``seed``, and at the start of every epoch both the shuffling order and the
dropout masks are re-seeded from ``(seed, epoch)``.  So a run killed after epoch ``k`` and
rerun resumes from ``resume.pt`` and ends with bit-identical weights to an uninterrupted run.
Every file is written under a temporary name and renamed into place, so an interruption
never leaves a half-written file behind.  A write that fails (a full disk, say) is a
:class:`~directionkit.errors.StoreError` naming the file: the run directory then holds the
epochs saved so far, and a rerun resumes there; when no epoch was saved yet, the files the
run had written are removed again.

Only a run directory of :func:`train` (or an empty folder) is ever written into or replaced,
and one ``train`` at a time: it holds a lock on the run directory throughout (a second
``train`` into it fails at once, naming the first one's process id).  A run directory carries
directionkit's ownership marker (``.directionkit``); ``overwrite`` replaces only a marked run
that holds nothing but what ``train`` writes, and anything else is refused before anything
is written.  A replaced run is not deleted up front: the new run saves its first epoch in a
folder beside it, and the two swap places in one atomic rename; only then is the old one
deleted.  A kill at any moment leaves either the old run complete or the new one, never a
mixture; the next ``train`` (or ``open``) removes the leftover.

The training metrics of an epoch are measured after it, in eval mode, on the labels the model
was trained on (corrupted labels included); the test metrics on the true test labels.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import numbers
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import nn

from directionkit._ownership import MARKER, mark, marker_id, writer_lock
from directionkit._validation import check_choice, check_int, parameter_error
from directionkit._version import __version__
from directionkit.errors import (
    DirectionKitError,
    InvalidDataError,
    InvalidParameterError,
    StoreError,
)
from directionkit.reference_models.datasets import DATASETS
from directionkit.reference_models.models import MLP, ConvNet, ResNet
from directionkit.reference_models.runs import EXPORT_ERROR, REPLACED_RUN, split_data
from directionkit.store import (
    _ACTIVE,
    VERSION_ATTR,
    _cleanup,
    _commit,
    _json_attrs,
    _scratch,
    open_dataset,
    recover,
    replaceable,
    write_zarr,
)

__all__ = [
    "HISTORY_VARIABLES",
    "MODELS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "load_model",
    "train",
]

#: Model families :class:`TrainConfig` accepts.
MODELS: tuple[str, ...] = ("mlp", "convnet", "resnet")
#: Optimisers :class:`TrainConfig` accepts.
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
#: Variables of ``history.zarr``, each with the single dim ``epoch``.
HISTORY_VARIABLES: tuple[str, ...] = (
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
    "epoch_seconds",
)

_DEVICES = ("cpu", "cuda", "auto")
_FORMAT = 1  # version of resume.pt's layout
_EVAL_BATCH = 1024
# purposes a seed is derived for, so no two random streams share a seed
_SEED_INIT, _SEED_EPOCH = 0, 1


# --------------------------------------------------------------------------- config


def _is_real(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(float(value))
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run's result.

    Validated on construction; a bad value raises
    :class:`~directionkit.errors.InvalidParameterError` naming the field, what it must be
    and what it got.  Sequences are stored as tuples and paths as strings, so a config
    compares equal to its JSON round trip.

    Parameters
    ----------
    dataset : {"digits", "fashion-mnist", "mnist", "cifar10"} or path to a ``.npz`` file
        Passed to :func:`directionkit.reference_models.datasets.load`.
    data_root : str, optional
        Directory of the data set's files (required for ``"mnist"`` and ``"cifar10"``).
    corruption : float in [0, 1], default 0
        Fraction of training labels shuffled among themselves
        (:func:`~directionkit.reference_models.datasets.corrupt_labels`); test labels stay true.
    label_seed : int >= 0, optional
        Seed of the label shuffle; defaults to ``seed`` (set it to train several
        initialisations on the same corrupted labels).
    train_limit, test_limit : int >= 1, optional
        Use only the first N examples of the split (before corruption).
    model : {"mlp", "convnet", "resnet"}, default "mlp"
        :func:`~directionkit.reference_models.models.MLP`,
        :class:`~directionkit.reference_models.models.ConvNet` or a bottleneck
        :class:`~directionkit.reference_models.models.ResNet` (3x3 stem for inputs of 32
        pixels or fewer).
    hidden : tuple of int, default (512, 512)
        MLP hidden widths.
    dropout : float in [0, 1), default 0
        MLP dropout after each ReLU.
    standardize : bool, default False
        MLP only: train on inputs minus the training set's per-feature mean, divided by
        its overall standard deviation.  This conditions the first layer, which speeds up
        training (memorising shuffled labels most of all).  The shift and scale are folded
        into the first ``Linear`` of every saved checkpoint and of the ONNX export, so saved
        models take the data set's usual inputs.
    batch_norm : bool, default True
        ConvNet batch normalisation (the ResNet always has it).
    width : float > 0, default 1
        ConvNet channel multiplier; for the ResNet, the first stage has ``round(64 * width)``
        planes.
    blocks : tuple of int, default (3, 4, 6, 3)
        ResNet bottleneck blocks per stage (``(3, 4, 6, 3)`` is ResNet-50).
    epochs : int >= 1, default 10
        Epochs to train (at most; see ``stop_at_train_accuracy``).
    optimizer : {"adam", "sgd"}, default "adam"
    lr : float > 0, default 1e-3
    momentum : float in [0, 1), default 0.9
        SGD momentum (ignored by Adam).
    weight_decay : float >= 0, default 0
    batch_size : int >= 1, default 128
    seed : int >= 0, default 0
        Seeds initial weights, shuffling and dropout (and the label shuffle, unless
        ``label_seed`` is given).
    device : {"auto", "cpu", "cuda"}, default "auto"
        ``"auto"`` is CUDA when available.  Only CPU runs are guaranteed bit-reproducible.
    checkpoint_epochs : tuple of int, default ()
        Epochs after which to save the model's weights, ``0`` for the initial ones; the last
        epoch is always saved.
    stop_at_train_accuracy : float in (0, 1], optional
        Stop once the training accuracy reaches this (e.g. 0.95 to train until memorised);
        the last epoch trained is then the final one.

    Examples
    --------
    >>> config = TrainConfig(dataset="digits", corruption=1.0, hidden=[64], epochs=3)
    >>> config.hidden, config.model, config.optimizer
    ((64,), 'mlp', 'adam')
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    >>> TrainConfig(corruption=1.5)
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidParameterError: The 'corruption' parameter of TrainConfig must be a float in [0, 1]. Got 1.5 instead.
    """  # noqa: E501

    dataset: str = "digits"
    data_root: str | None = None
    corruption: float = 0.0
    label_seed: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    model: str = "mlp"
    hidden: tuple[int, ...] = (512, 512)
    dropout: float = 0.0
    standardize: bool = False
    batch_norm: bool = True
    width: float = 1.0
    blocks: tuple[int, ...] = (3, 4, 6, 3)
    epochs: int = 10
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    checkpoint_epochs: tuple[int, ...] = field(default=())
    stop_at_train_accuracy: float | None = None

    def __post_init__(self) -> None:
        func = "TrainConfig"

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        def real(name: str, expected: str, ok: Callable[[float], bool]) -> None:
            value = getattr(self, name)
            if not _is_real(value) or not ok(float(value)):
                raise parameter_error(name, func, expected, value)
            put(name, float(value))

        def optional_int(name: str, minimum: int) -> None:
            value = getattr(self, name)
            if value is not None:
                put(name, check_int(value, name, func, minimum=minimum))

        def ints(name: str, minimum: int) -> tuple[int, ...]:
            value = getattr(self, name)
            expected = f"a sequence of ints >= {minimum}"
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise parameter_error(name, func, expected, value)
            if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in value):
                raise parameter_error(name, func, expected, value)
            if any(v < minimum for v in value):
                raise parameter_error(name, func, expected, value)
            result = tuple(int(v) for v in value)
            put(name, result)
            return result

        dataset = self.dataset
        if isinstance(dataset, os.PathLike):
            dataset = os.fspath(dataset)
        if not isinstance(dataset, str) or not (dataset in DATASETS or dataset.endswith(".npz")):
            listed = ", ".join(repr(d) for d in DATASETS)
            raise parameter_error(
                "dataset", func, f"one of {{{listed}}} or a path to a .npz file", self.dataset
            )
        put("dataset", dataset)
        if self.data_root is not None:
            if not isinstance(self.data_root, str | os.PathLike):
                raise parameter_error("data_root", func, "a path or None", self.data_root)
            put("data_root", os.fspath(self.data_root))
        real("corruption", "a float in [0, 1]", lambda v: 0.0 <= v <= 1.0)
        optional_int("label_seed", 0)
        optional_int("train_limit", 1)
        optional_int("test_limit", 1)
        check_choice(self.model, "model", func, MODELS)
        if not ints("hidden", 1):
            raise parameter_error("hidden", func, "a non-empty sequence of ints >= 1", ())
        real("dropout", "a float in [0, 1)", lambda v: 0.0 <= v < 1.0)
        if self.dropout and self.model != "mlp":
            raise parameter_error(
                "dropout",
                func,
                f"0 for model={self.model!r} (only the MLP has dropout)",
                self.dropout,
            )
        if not isinstance(self.standardize, bool | np.bool_):
            raise parameter_error("standardize", func, "a bool", self.standardize)
        put("standardize", bool(self.standardize))
        if self.standardize and self.model != "mlp":
            raise parameter_error(
                "standardize",
                func,
                f"False for model={self.model!r} (only the MLP's first layer can absorb it; "
                "the conv nets have batch normalisation)",
                self.standardize,
            )
        if not isinstance(self.batch_norm, bool | np.bool_):
            raise parameter_error("batch_norm", func, "a bool", self.batch_norm)
        put("batch_norm", bool(self.batch_norm))
        real("width", "a float > 0", lambda v: v > 0.0)
        if not ints("blocks", 1):
            raise parameter_error("blocks", func, "a non-empty sequence of ints >= 1", ())
        put("epochs", check_int(self.epochs, "epochs", func, minimum=1))
        check_choice(self.optimizer, "optimizer", func, OPTIMIZERS)
        real("lr", "a float > 0", lambda v: v > 0.0)
        real("momentum", "a float in [0, 1)", lambda v: 0.0 <= v < 1.0)
        real("weight_decay", "a float >= 0", lambda v: v >= 0.0)
        put("batch_size", check_int(self.batch_size, "batch_size", func, minimum=1))
        put("seed", check_int(self.seed, "seed", func, minimum=0))
        check_choice(self.device, "device", func, _DEVICES)
        epochs = ints("checkpoint_epochs", 0)
        if any(e > self.epochs for e in epochs):
            raise parameter_error(
                "checkpoint_epochs", func, f"epochs in [0, epochs={self.epochs}]", epochs
            )
        put("checkpoint_epochs", tuple(sorted(set(epochs))))
        if self.stop_at_train_accuracy is not None:
            real("stop_at_train_accuracy", "a float in (0, 1] or None", lambda v: 0 < v <= 1)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict (tuples become lists).

        Examples
        --------
        >>> TrainConfig(hidden=(32,)).to_dict()["hidden"]
        [32]
        """
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build a config from :meth:`to_dict`'s output; missing fields take their defaults.

        Raises
        ------
        InvalidParameterError
            An unknown field (the message lists the valid ones) or a bad value.

        Examples
        --------
        >>> TrainConfig.from_dict({"epochs": 2, "hidden": [8, 8]}).hidden
        (8, 8)
        >>> TrainConfig.from_dict({"epoch": 2})
        Traceback (most recent call last):
        ...
        directionkit.errors.InvalidParameterError: Unknown TrainConfig field 'epoch'. Valid fields are: 'dataset', 'data_root', 'corruption', 'label_seed', 'train_limit', 'test_limit', 'model', 'hidden', 'dropout', 'standardize', 'batch_norm', 'width', 'blocks', 'epochs', 'optimizer', 'lr', 'momentum', 'weight_decay', 'batch_size', 'seed', 'device', 'checkpoint_epochs', 'stop_at_train_accuracy'.
        """  # noqa: E501
        if not isinstance(data, Mapping):
            raise parameter_error("data", "TrainConfig.from_dict", "a mapping", data)
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                listed = ", ".join(repr(n) for n in names)
                raise InvalidParameterError(
                    f"Unknown TrainConfig field {key!r}. Valid fields are: {listed}."
                )
        return cls(**dict(data))

    def to_json(self) -> str:
        """The config as indented, key-sorted JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# --------------------------------------------------------------------------- result


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` wrote.

    Attributes
    ----------
    out_dir : Path
        The run directory.
    config : TrainConfig
    history : xarray.Dataset
        Dim ``epoch`` (1, 2, ... up to the last epoch trained); variables
        :data:`HISTORY_VARIABLES`; ``attrs["config"]`` is the config as JSON.
    checkpoints : dict of int to Path
        Epoch -> ``state_dict`` file, the requested epochs and the last one.
    final_epoch : int
        The last epoch trained (``config.epochs`` unless stopped early).
    onnx_path : Path or None
        ``model.onnx``, or None when the export was not asked for.
    resumed_from : int
        The epoch this call started from: 0 for a fresh run, ``final_epoch`` when the run
        was already complete.
    """

    out_dir: Path
    config: TrainConfig
    history: xr.Dataset
    checkpoints: dict[int, Path]
    final_epoch: int
    onnx_path: Path | None
    resumed_from: int

    @property
    def final_checkpoint(self) -> Path:
        """The ``state_dict`` file of the final model."""
        return self.checkpoints[self.final_epoch]

    def load_model(self, epoch: int | None = None) -> nn.Module:
        """The model at ``epoch`` (default: the final one), on CPU, in eval mode."""
        return load_model(self.out_dir, epoch)


# --------------------------------------------------------------------------- model


def build_model(config: TrainConfig, input_shape: Sequence[int], n_classes: int) -> nn.Module:
    """The untrained model ``config`` describes, for inputs of ``input_shape`` (no batch axis).

    Uses torch's current random state; :func:`train` seeds it first.

    Examples
    --------
    >>> net = build_model(TrainConfig(hidden=(16,)), (1, 8, 8), 10)
    >>> net(torch.zeros(3, 1, 8, 8)).shape
    torch.Size([3, 10])
    """
    shape = tuple(int(s) for s in input_shape)
    if config.model == "mlp":
        return MLP(math.prod(shape), config.hidden, n_classes, config.dropout)
    if len(shape) != 3:
        raise InvalidDataError(
            f"model={config.model!r} needs images of shape (C, H, W); the data have examples "
            f"of shape {shape}. Use model='mlp' for flat inputs."
        )
    if config.model == "convnet":
        return ConvNet(shape[0], n_classes, batch_norm=config.batch_norm, width=config.width)
    return ResNet(
        config.blocks,
        n_classes,
        shape[0],
        base=max(1, round(64 * config.width)),
        small_input=max(shape[1:]) <= 32,
    )


def load_model(out_dir: str | os.PathLike[str], epoch: int | None = None) -> nn.Module:
    """Rebuild a trained model from a run directory of :func:`train`.

    Parameters
    ----------
    out_dir : str or path-like
        The run directory.
    epoch : int, optional
        A checkpointed epoch; default the final one.

    Returns
    -------
    torch.nn.Module
        On CPU, in eval mode.

    Raises
    ------
    StoreError
        ``out_dir`` is not a run directory, or has no checkpoint for ``epoch`` (the message
        lists the ones it has).
    """
    run = Path(out_dir)
    try:
        config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        meta = json.loads((run / "run.json").read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{str(run)!r} is not a training run directory: {err}") from err
    saved = _saved_checkpoints(run)
    if epoch is None:
        if not saved:
            raise StoreError(f"{str(run)!r} has no checkpoints yet.")
        epoch = max(saved)
    if epoch not in saved:
        raise StoreError(
            f"{str(run)!r} has no checkpoint for epoch {epoch!r}; it has epochs {sorted(saved)}."
        )
    model = build_model(config, meta["input_shape"], meta["n_classes"])
    model.load_state_dict(torch.load(saved[epoch], map_location="cpu", weights_only=True))
    return model.eval()


# --------------------------------------------------------------------------- training


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    onnx: bool = True,
    on_epoch_end: Callable[[int, Mapping[str, float]], None] | None = None,
) -> TrainResult:
    """Train the model ``config`` describes and write a run directory (see the module doc).

    Parameters
    ----------
    config : TrainConfig
    out_dir : str or path-like
        The run directory; created (with its parents) if missing.
    progress : bool, default True
        Show a tqdm bar advancing once per epoch, with the latest accuracies.
    resume : bool, default True
        If ``out_dir`` holds a run of the same config, continue from its latest epoch (or just
        return it when it is complete).  False starts that run again from scratch.
    overwrite : bool, default False
        Replace a run of a *different* config in ``out_dir``.  The new run saves its first
        epoch beside the old one, then the two swap places in one atomic rename and the
        old one is deleted; if training stops before that, the old run is untouched.
        Only a run carrying directionkit's ownership marker and holding nothing but what
        ``train`` writes is replaced (anything else in it is named in the error).  Without
        ``overwrite`` such a directory is refused before anything is written.  A non-empty
        ``out_dir`` that is not recognisably a run of ``train`` is refused either way,
        naming what it holds: a run has a ``config.json`` that is a :class:`TrainConfig`
        and, beside it, the ``run.json`` ``train`` writes with it.
    onnx : bool, default True
        Export the final model to ``out_dir/model.onnx`` (a free batch axis; input
        ``input``, output ``logits``).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, metrics)`` once an epoch's checkpoints are saved;
        ``metrics`` maps :data:`HISTORY_VARIABLES` to that epoch's values.  An exception it
        raises stops training there, leaving a resumable run.

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidParameterError
        ``config`` is not a :class:`TrainConfig`, or its device is unavailable.
    StoreError
        ``out_dir`` holds something else (see ``overwrite``), or another ``train`` is
        writing it (the error names its process id); nothing is written then.  Or a
        file could not be written (a full disk, say): the message names it, and ``out_dir``
        holds the epochs saved so far (rerun to resume), or, when no epoch was saved, none of
        this run's files (a folder ``train`` created is removed again).
    DirectionKitError
        The ONNX export failed after training was saved; the reason is also written to
        ``out_dir/model.onnx.error``, and a rerun of the same config only exports (a
        :class:`StoreError` when ``model.onnx`` could not be written).
    DatasetNotFoundError, InvalidDataError
        The data set cannot be loaded; nothing is written then.

    Examples
    --------
    >>> import tempfile
    >>> config = TrainConfig(dataset="digits", hidden=(32,), epochs=3, lr=1e-2, seed=0)
    >>> with tempfile.TemporaryDirectory() as run:
    ...     result = train(config, run, progress=False, onnx=False)
    >>> result.history.sizes["epoch"], sorted(result.checkpoints)
    (3, [3])
    >>> float(result.history["test_accuracy"][-1]) > 0.85
    True
    """
    if not isinstance(config, TrainConfig):
        raise parameter_error("config", "train", "a TrainConfig", config)
    run = Path(out_dir)
    device = _resolve_device(config.device)
    created = _first_missing(run)  # removed again if the run fails before saving an epoch
    _make_folder(run.parent)
    try:
        with writer_lock(run, "train"):
            return _train_locked(
                config, run, created, device, progress=progress, resume=resume,
                overwrite=overwrite, onnx=onnx, on_epoch_end=on_epoch_end,
            )  # fmt: skip
    except BaseException:
        if created is not None and created != run:  # the parents this call made, if empty
            for folder in run.parents:
                try:
                    folder.rmdir()
                except OSError:
                    break
                if folder == created:
                    break
        raise


def _train_locked(
    config: TrainConfig,
    run: Path,
    created: Path | None,
    device: torch.device,
    *,
    progress: bool,
    resume: bool,
    overwrite: bool,
    onnx: bool,
    on_epoch_end: Callable[[int, Mapping[str, float]], None] | None,
) -> TrainResult:
    """:func:`train` once it holds the run's lock (see there)."""
    previous = _check_out_dir(run, config, overwrite=overwrite)
    fresh = previous != config or not resume
    replacing = fresh and previous is not None
    if replacing:
        _check_replacing(run)
    data = _prepare_data(config, device)  # may raise: nothing written yet
    if fresh and not replacing:
        _remove_outputs(run)  # scratch files of a killed write, in a new or empty folder
    # a replaced run stays in place until the new one has an epoch: it is written beside
    home = _scratch(run, "tmp") if replacing else run
    state_path = home / "resume.pt"
    state = None
    if not fresh and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
    saved = 0 if state is None else int(state["epoch"])  # what a rerun would resume from
    complete = False  # every epoch trained and saved: a rerun only writes what is missing
    _ACTIVE.add(home)
    try:
        _make_folder(home / "checkpoints")
        _write_text(home / "config.json", config.to_json() + "\n")
        _write_text(home / "run.json", json.dumps(data.meta, indent=2, sort_keys=True) + "\n")
        if marker_id(home) is None:  # ours: a later overwrite may replace it
            mark(home, "training run")
        torch.manual_seed(_derive_seed(config.seed, _SEED_INIT))
        model = build_model(config, data.input_shape, data.n_classes).to(device)
        optimizer = _optimizer(config, model)
        history: dict[str, list[float]] = {name: [] for name in HISTORY_VARIABLES}
        start = 0
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            history = {name: list(state["history"][name]) for name in HISTORY_VARIABLES}
            start = saved
        resumed_from = start
        if start == 0 and 0 in config.checkpoint_epochs:
            _save(_saved_state(model, data), _checkpoint_path(home, 0))

        done = _finished(config, history)
        bar = _progress(progress, config, start)
        try:
            for epoch in range(start + 1, config.epochs + 1):
                if done:
                    break
                began = time.perf_counter()
                _train_epoch(model, optimizer, data, config, epoch, device)
                metrics = {
                    **_evaluate(model, data.x_train, data.y_train, "train"),
                    **_evaluate(model, data.x_test, data.y_test, "test"),
                    "epoch_seconds": time.perf_counter() - began,
                }
                for name in HISTORY_VARIABLES:
                    history[name].append(metrics[name])
                done = _finished(config, history)
                if epoch in config.checkpoint_epochs or done:
                    _save(_saved_state(model, data), _checkpoint_path(home, epoch))
                _save(
                    {
                        "format": _FORMAT,
                        "epoch": epoch,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "history": history,
                    },
                    state_path,
                )
                saved = epoch
                if home != run:  # the new run has an epoch: it takes the old one's place
                    home = _take_place(home, run)
                    state_path = home / "resume.pt"
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        train_acc=f"{metrics['train_accuracy']:.3f}",
                        test_acc=f"{metrics['test_accuracy']:.3f}",
                    )
                if on_epoch_end is not None:
                    on_epoch_end(epoch, dict(metrics))
        finally:
            if bar is not None:
                bar.close()

        if home != run:  # (no epoch was trained: the config asked for none)
            home = _take_place(home, run)
        complete = True
        final_epoch = len(history["train_loss"])
        final = _checkpoint_path(run, final_epoch)
        if not final.exists():  # e.g. killed between the two saves of the last epoch
            _save(_saved_state(model, data), final)
        dataset = _history_dataset(history, config, data.meta)
        history_path = run / "history.zarr"
        if not _holds(history_path, dataset):  # (a finished run found again: left as it is)
            write_zarr(dataset, history_path, overwrite=history_path.exists())
    except StoreError as err:  # a write failed: say what the run directory holds now
        if home != run:
            now = (
                f"No epoch had been saved, so nothing of this run was kept; the run in "
                f"{str(run)!r} that it was to replace is untouched. Free some space (or fix "
                "what stopped the write) and rerun the same command."
            )
        else:
            now = _after_failed_write(run, saved, created, complete=complete)
        raise StoreError(f"{err} {now}") from err
    finally:
        _ACTIVE.discard(home)
        if home != run:  # stopped before the new run saved an epoch: the old one stays
            _cleanup(home)
    onnx_path = None
    if onnx:
        onnx_path = run / "model.onnx"
        if fresh or resumed_from < final_epoch or not onnx_path.exists():
            # two rows, so the exporter does not specialise the batch axis to a size of 1
            example = data.x_train[:1].expand(2, *data.input_shape)
            _export_or_record(model, _saved_state(model, data), example, onnx_path)
    checkpoints = {
        e: p
        for e, p in _saved_checkpoints(run).items()
        if e in config.checkpoint_epochs or e == final_epoch
    }
    return TrainResult(run, config, dataset, checkpoints, final_epoch, onnx_path, resumed_from)


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    n_classes: int
    meta: dict[str, Any]
    #: with ``standardize``: the per-feature training mean (flat, float64, on CPU) and the
    #: overall std that ``x_train`` and ``x_test`` were standardised with
    shift: torch.Tensor | None = None
    scale: float = 1.0


def _prepare_data(config: TrainConfig, device: torch.device) -> _Data:
    """Load, cut and corrupt the data; the tensors go to ``device`` whole (they are small)."""
    X_train, y_trained, y_train, mask = split_data(config.to_dict(), "train")
    X_test, y_test, _, _ = split_data(config.to_dict(), "test")
    if X_train.shape[1:] != X_test.shape[1:]:
        raise InvalidDataError(
            f"The train and test examples of {config.dataset!r} differ in shape: "
            f"{X_train.shape[1:]} and {X_test.shape[1:]}."
        )
    n_classes = max(int(y_trained.max()), int(y_test.max())) + 1
    meta = {
        "input_shape": list(X_train.shape[1:]),
        "n_classes": n_classes,
        "n_train": int(X_train.shape[0]),
        "n_test": int(X_test.shape[0]),
        "n_corrupted": int(mask.sum()),
        "n_changed_labels": int((y_trained != y_train).sum()),
    }

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    shift, scale = None, 1.0
    if config.standardize:
        mean = X_train.mean(axis=0, dtype=np.float64)
        centred = X_train - mean
        scale = float(np.sqrt(np.mean(centred**2)))
        if not scale > 0.0:
            raise InvalidDataError(
                f"standardize=True needs training inputs that vary; all {X_train.shape[0]} "
                f"training examples of {config.dataset!r} are identical."
            )
        X_train = centred / scale
        X_test = (X_test - mean) / scale
        shift = torch.from_numpy(mean.reshape(-1))  # stays on CPU: only saving reads it
        meta["input_mean_range"] = [float(mean.min()), float(mean.max())]
        meta["input_std"] = scale

    return _Data(
        tensor(X_train.astype(np.float32, copy=False)),
        tensor(y_trained),
        tensor(X_test.astype(np.float32, copy=False)),
        tensor(y_test),
        tuple(X_train.shape[1:]),
        n_classes,
        meta,
        shift,
        scale,
    )


def resolve_device(name: str) -> str:
    """The device ``name`` stands for: ``"auto"`` is ``"cuda"`` when torch sees a GPU.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    return _resolve_device(name).type


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise parameter_error(
            "device", "train", "'cpu' or 'auto' here (torch sees no CUDA device)", name
        )
    return torch.device(name)


def _derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for one purpose, derived from the run's seed (``SeedSequence``)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    bounds = [(i, min(i + size, n)) for i in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        # a batch of one example breaks batch norm in training mode; fold it into the last
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: _Data,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
) -> None:
    # everything random in an epoch depends on (seed, epoch) alone, so resuming is exact
    seed = _derive_seed(config.seed, _SEED_EPOCH, epoch)
    order = torch.randperm(data.x_train.shape[0], generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # dropout masks (CPU and CUDA generators)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    for lo, hi in _batches(len(order), config.batch_size):
        index = order[lo:hi].to(device)
        x, y = data.x_train[index], data.y_train[index]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for lo, hi in _batches(x.shape[0], _EVAL_BATCH):
        logits = model(x[lo:hi])
        target = y[lo:hi]
        total_loss += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    n = x.shape[0]
    return {f"{split}_loss": total_loss / n, f"{split}_accuracy": correct / n}


def _finished(config: TrainConfig, history: Mapping[str, Sequence[float]]) -> bool:
    trained = len(history["train_accuracy"])
    if trained >= config.epochs:
        return True
    target = config.stop_at_train_accuracy
    return bool(trained and target is not None and history["train_accuracy"][-1] >= target)


def _progress(enabled: bool, config: TrainConfig, start: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=config.epochs,
        initial=start,
        unit="epoch",
        desc=f"{config.model} on {config.dataset} (corruption {config.corruption:g})",
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


#: The files :func:`train` writes into a run directory, besides ``checkpoints/epoch_XXXX.pt``
#: and ``history.zarr`` (``model.onnx.data``: external ONNX weights of earlier versions).
_RUN_FILES = ("config.json", "run.json", "resume.pt", "model.onnx", "model.onnx.data", EXPORT_ERROR)
#: Names of the scratch files of an unfinished write (:func:`_replacing`, the zarr stores').
_SCRATCH = re.compile(r"^\..+\.(?:tmp|old|del)-[0-9a-f-]+$")


def _check_out_dir(run: Path, config: TrainConfig, *, overwrite: bool) -> TrainConfig | None:
    """The config of the run in ``run`` (None: ``run`` is missing or empty), if :func:`train`
    may write there; else a :class:`StoreError` naming ``run`` and what it holds.

    Called before anything is written: a folder that is not recognisably a training run is
    refused with or without ``overwrite``, so that ``overwrite`` never deletes a user's
    files; a run of another config is refused without ``overwrite``.
    """
    if os.path.lexists(run) and not run.is_dir():
        raise StoreError(f"{str(run)!r} exists and is not a directory; choose another out_dir.")
    recover(run)  # an overwrite killed half-way: finished or undone
    if (run / REPLACED_RUN).exists():
        raise StoreError(
            f"{str(run)!r} holds {REPLACED_RUN}, left by an overwrite that an older "
            "directionkit did not finish: it may hold the run that was being replaced. Move "
            "what you want to keep out of it and delete it, then rerun."
        )
    if not run.exists() or all(_SCRATCH.match(e.name) or e.name == MARKER for e in run.iterdir()):
        return None  # new or empty (but for scratch files of an interrupted write)
    previous, reason = _recognise_run(run)
    if previous is None:
        if overwrite:
            raise StoreError(
                f"Refusing to overwrite {str(run)!r}: it is not a training run of "
                f"directionkit ({reason}). Only a training run or an empty folder is "
                "overwritten; move its contents away yourself, or choose another out_dir."
            )
        raise StoreError(
            f"{str(run)!r} is not empty and holds no training run ({reason}); "
            "choose a new or empty out_dir."
        )
    if previous != config and not overwrite:
        difference = _describe_difference(previous, config)
        raise StoreError(
            f"{str(run)!r} holds a run of a different config ({difference}); "
            "pass overwrite=True to replace it, or choose another out_dir."
        )
    return previous


def _recognise_run(run: Path) -> tuple[TrainConfig | None, str]:
    """The config of the training run in the non-empty folder ``run``; or None and why
    ``run`` is not recognisably one.

    A run has a ``config.json`` that is a :class:`TrainConfig` and the ``run.json``
    :func:`train` writes right after it (alone, ``config.json`` is a run cut off between
    the two), and train's own names in it are what train writes there.
    """
    path = run / "config.json"
    if not path.is_file():
        return None, f"no config.json; it holds {_listing(run)}"
    try:
        config = TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:  # InvalidParameterError is a ValueError
        return None, f"its config.json is not a TrainConfig: {str(err).rstrip('.')}"
    others = [e for e in run.iterdir() if e.name != "config.json" and not _SCRATCH.match(e.name)]
    if others and not _is_run_meta(run / "run.json"):
        return None, (
            "it has a config.json but not the run.json that train writes beside it; "
            f"it holds {_listing(run)}"
        )
    for name in _RUN_FILES:
        entry = run / name
        if os.path.lexists(entry) and (entry.is_symlink() or not entry.is_file()):
            return None, f"its {name} is not a file"
    checkpoints = run / "checkpoints"
    if os.path.lexists(checkpoints) and (checkpoints.is_symlink() or not checkpoints.is_dir()):
        return None, "its checkpoints is not a folder"
    history = run / "history.zarr"
    if os.path.lexists(history) and (why := replaceable(history)) is not None:
        return None, f"its history.zarr: {why}"
    return config, ""


def _is_run_meta(path: Path) -> bool:
    """Whether ``path`` is the ``run.json`` of a run (what the data gave)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"input_shape", "n_classes"} <= meta.keys()


def _listing(folder: Path, limit: int = 6) -> str:
    """What ``folder`` holds, for a message: ``'checkpoints/, notes.txt'``."""
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in folder.iterdir())
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _describe_difference(saved: TrainConfig, given: TrainConfig) -> str:
    parts = [
        f"{f.name}: saved {getattr(saved, f.name)!r}, given {getattr(given, f.name)!r}"
        for f in dataclasses.fields(TrainConfig)
        if getattr(saved, f.name) != getattr(given, f.name)
    ]
    return "; ".join(parts)


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


def _check_replacing(run: Path) -> None:
    """A :class:`StoreError` unless the run in ``run`` may be replaced as a whole: it
    carries directionkit's ownership marker and holds nothing but what :func:`train`
    writes (so that replacing it deletes nothing else)."""
    if marker_id(run) is None:
        raise StoreError(
            f"Refusing to replace {str(run)!r}: it carries no directionkit ownership marker "
            f"({MARKER}), so it was not written by this version of train (or the marker was "
            "removed). Move it away yourself, or choose another out_dir."
        )
    saved = set(_saved_checkpoints(run).values())
    others = []
    for entry in run.iterdir():
        if entry.name in (*_RUN_FILES, MARKER, "history.zarr") or _SCRATCH.match(entry.name):
            continue
        if entry.name == "checkpoints" and entry.is_dir() and not entry.is_symlink():
            others += [
                f"checkpoints/{p.name}"
                for p in entry.iterdir()
                if p not in saved and not _SCRATCH.match(p.name)
            ]
            continue
        others.append(entry.name)
    if others:
        shown = ", ".join(sorted(others)[:6]) + (" and more" if len(others) > 6 else "")
        raise StoreError(
            f"Refusing to replace the run in {str(run)!r}: it also holds files train did "
            f"not write ({shown}), which replacing the run would delete. Move them out of "
            "it, then rerun."
        )


def _take_place(home: Path, run: Path) -> Path:
    """Put the new run (in the scratch folder ``home``) at ``run`` in one atomic swap,
    then delete the old one; ``run``."""
    try:
        _commit(home, run, overwrite=True)
    except OSError as err:
        raise StoreError(f"Could not move the new run to {str(run)!r}: {err}.") from err
    _cleanup(home)  # the old run, now under the scratch name
    return run


def _remove_outputs(run: Path) -> None:
    """Delete what this run wrote into ``run`` (and nothing else): train's files, its
    ``epoch_XXXX.pt`` checkpoints (``checkpoints/`` goes when that empties it), its
    ``history.zarr`` and marker, and scratch files of a killed write."""

    def remove(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    for name in _RUN_FILES:
        remove(run / name)
        for scratch in run.glob(f".{name}.tmp-*"):  # of a write that was killed
            if _SCRATCH.match(scratch.name):
                scratch.unlink(missing_ok=True)
    checkpoints = run / "checkpoints"
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        saved = set(_saved_checkpoints(run).values())
        for path in checkpoints.iterdir():
            if _SCRATCH.match(path.name) or path in saved:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            checkpoints.rmdir()  # kept when it holds anything else
    history = run / "history.zarr"
    if history.is_dir() and replaceable(history) is None:
        remove(history)
    if (run / MARKER).is_file() and not any(e.name != MARKER for e in run.iterdir()):
        (run / MARKER).unlink()


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist (None: it exists)."""
    missing = None
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing = folder
    return missing


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"Could not create the folder {str(path)!r}: {err}.") from err


def _after_failed_write(run: Path, saved: int, created: Path | None, *, complete: bool) -> str:
    """What the run directory holds after a failed write, and what to do: the sentences a
    :class:`StoreError` of :func:`train` ends with.

    With an epoch saved, the run stays (a rerun resumes from ``saved``, or only writes what
    is missing when training was ``complete``); without one, nothing in it is worth keeping,
    and the files this run wrote are removed again, with the folders it created
    (``created``: the outermost one).
    """
    if saved:
        rerun = (
            "it finds the finished training and writes only what is missing"
            if complete
            else f"it resumes from epoch {saved}"
        )
        return (
            f"{str(run)!r} holds what was saved so far: training up to epoch {saved} "
            "(resume.pt, checkpoints). Free some space (or fix what stopped the write) and "
            f"rerun the same command: {rerun}."
        )
    try:
        _remove_outputs(run)
    except (OSError, StoreError) as err:
        return (
            f"No epoch had been saved, and removing this run's partial files from "
            f"{str(run)!r} failed too ({err}); delete them, then rerun the same command."
        )
    where = f"{str(run)!r} holds none of its files"
    if created is not None:
        with contextlib.suppress(OSError):
            run.rmdir()  # only while empty: nothing but ours is ever removed
            # (the folders made for it go once train has let go of its lock in them)
            where = f"{str(run)!r}, which it had created, was removed again" + (
                f" (with the folders it had created for it, from {str(created)!r} on)"
                if created != run
                else ""
            )
    return (
        f"No epoch had been saved, so nothing of this run was kept: {where}. Free "
        "some space (or fix what stopped the write) and rerun the same command."
    )


def _checkpoint_path(run: Path, epoch: int) -> Path:
    return run / "checkpoints" / f"epoch_{epoch:04d}.pt"


def _saved_checkpoints(run: Path) -> dict[int, Path]:
    found = {}
    for path in (run / "checkpoints").glob("epoch_*.pt"):
        suffix = path.stem.removeprefix("epoch_")
        if suffix.isdigit():
            found[int(suffix)] = path
    return dict(sorted(found.items()))


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it to ``path`` on success."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` on CPU, so a checkpoint loads on machines without a GPU."""
    return {name: value.detach().to("cpu") for name, value in model.state_dict().items()}


def _saved_state(model: nn.Module, data: _Data) -> dict[str, torch.Tensor]:
    """The ``state_dict`` to save: on CPU, the input standardisation folded into layer one.

    The model trains on ``(x - shift) / scale``; its first ``Linear`` computes
    ``W' x' + b'``, which equals ``(W' / scale) x + (b' - W' shift / scale)`` on raw inputs.
    """
    state = _cpu_state(model)
    if data.shift is None:
        return state
    name = next(n for n, m in model.named_modules() if isinstance(m, nn.Linear))
    weight = state[f"{name}.weight"].double()
    shift = data.shift
    dtype = state[f"{name}.weight"].dtype
    state[f"{name}.bias"] = (state[f"{name}.bias"].double() - weight @ shift / data.scale).to(dtype)
    state[f"{name}.weight"] = (weight / data.scale).to(dtype)
    return state


def _save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically; a failed write is a :class:`StoreError`."""
    try:
        # into a Python file, so that a failed write leaves its OSError (ENOSPC, say) in
        # the RuntimeError torch's writer raises, as its __context__
        with _replacing(path) as temporary, temporary.open("wb") as handle:
            torch.save(obj, handle)
    except (OSError, RuntimeError) as err:  # torch's writer fails with a RuntimeError
        raise _write_failed(path, err) from err


def _write_text(path: Path, text: str) -> None:
    try:
        with _replacing(path) as temporary:
            temporary.write_text(text)
    except OSError as err:
        raise _write_failed(path, err) from err


def _os_error(err: BaseException) -> OSError | None:
    """The OSError ``err`` is or was raised from (its ``__cause__``/``__context__`` chain)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _write_failed(path: Path, err: BaseException) -> StoreError:
    """The error for a file of a run that could not be written (a full disk, say)."""
    cause = _os_error(err)
    reason = str(cause) if cause is not None else f"{type(err).__name__}: {err}"
    return StoreError(f"Could not write {str(path)!r}: {reason}.")


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    # the exporter logs a warning per torchvision operator it cannot register when torchvision
    # is not installed; none of them matter for these models
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _export_or_record(
    model: nn.Module, state: Mapping[str, torch.Tensor], example: torch.Tensor, path: Path
) -> None:
    """Export ``model.onnx``; on failure record why in the run directory and raise.

    Training is done and saved by then, so a failing exporter (e.g. ``onnxscript``
    missing) must not look like a failed run: the reason goes to :data:`EXPORT_ERROR`
    (which ``directionkit analyze RUN`` reports) and the error says how to finish.  A file
    that could not be written (an OSError, a full disk say) is a :class:`StoreError`.
    """
    error = path.with_name(EXPORT_ERROR)
    try:
        _export_onnx(model, state, example, path)
    except Exception as err:  # any exporter failure: the run itself is complete
        reason = f"{type(err).__name__}: {err}".strip()
        with contextlib.suppress(StoreError):  # recorded if it can be (not on a full disk)
            _write_text(error, reason + "\n")
        if (cause := _os_error(err)) is not None:  # the exporter works; the file cannot be written
            raise StoreError(
                f"Could not write {str(path)!r}: {cause}. Training finished and is saved in "
                f"{str(path.parent)!r} (checkpoints, history.zarr); free some space (or fix "
                "what stopped the write) and rerun the same `directionkit train` command: it "
                "finds the finished run and only exports."
            ) from err
        raise DirectionKitError(
            f"Training finished and is saved in {str(path.parent)!r} (checkpoints, "
            f"history.zarr), but the ONNX export failed: {reason}. Install the exporter "
            "with pip install 'directionkit[torch]' (it brings onnxscript), then rerun the "
            "same `directionkit train` command: it finds the finished run and only exports."
        ) from err
    error.unlink(missing_ok=True)


def _export_onnx(
    model: nn.Module, state: Mapping[str, torch.Tensor], example: torch.Tensor, path: Path
) -> None:
    """Export a CPU copy of ``model`` holding the weights ``state`` (the saved ones)."""
    cpu = copy.deepcopy(model).to("cpu").eval()
    cpu.load_state_dict(state)
    batch = torch.export.Dim("batch")
    with _replacing(path) as temporary, warnings.catch_warnings(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes
        torch.onnx.export(
            cpu,
            (example.to("cpu").contiguous(),),
            str(temporary),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=["input"],
            output_names=["logits"],
            external_data=False,
            verbose=False,
        )
