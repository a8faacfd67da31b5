"""The training run's configuration: :class:`TrainConfig` and the choices it accepts."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.errors import InvalidParameterError
from directionkit.reference_models.datasets import DATASETS

#: Model families :class:`TrainConfig` accepts.
MODELS: tuple[str, ...] = ("mlp", "convnet", "resnet")
#: Optimisers :class:`TrainConfig` accepts.
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")

_DEVICES = ("cpu", "cuda", "auto")


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
        # in the order of the fields, so the first bad one is the one reported
        _check_data(self)
        _check_model(self)
        _check_training(self)

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


# --------------------------------------------------------------------------- validation

_FUNC = "TrainConfig"  # the function validation errors name


def _put(config: TrainConfig, name: str, value: Any) -> None:
    object.__setattr__(config, name, value)


def _real(config: TrainConfig, name: str, expected: str, ok: Callable[[float], bool]) -> None:
    value = getattr(config, name)
    if not _is_real(value) or not ok(float(value)):
        raise parameter_error(name, _FUNC, expected, value)
    _put(config, name, float(value))


def _optional_int(config: TrainConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if value is not None:
        _put(config, name, check_int(value, name, _FUNC, minimum=minimum))


def _ints(config: TrainConfig, name: str, minimum: int) -> tuple[int, ...]:
    value = getattr(config, name)
    expected = f"a sequence of ints >= {minimum}"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise parameter_error(name, _FUNC, expected, value)
    if any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in value):
        raise parameter_error(name, _FUNC, expected, value)
    if any(v < minimum for v in value):
        raise parameter_error(name, _FUNC, expected, value)
    result = tuple(int(v) for v in value)
    _put(config, name, result)
    return result


def _check_data(config: TrainConfig) -> None:
    """Check and normalise the fields that choose the data, ``dataset`` to ``test_limit``."""
    dataset = config.dataset
    if isinstance(dataset, os.PathLike):
        dataset = os.fspath(dataset)
    if not isinstance(dataset, str) or not (dataset in DATASETS or dataset.endswith(".npz")):
        listed = ", ".join(repr(d) for d in DATASETS)
        raise parameter_error(
            "dataset", _FUNC, f"one of {{{listed}}} or a path to a .npz file", config.dataset
        )
    _put(config, "dataset", dataset)
    if config.data_root is not None:
        if not isinstance(config.data_root, str | os.PathLike):
            raise parameter_error("data_root", _FUNC, "a path or None", config.data_root)
        _put(config, "data_root", os.fspath(config.data_root))
    _real(config, "corruption", "a float in [0, 1]", lambda v: 0.0 <= v <= 1.0)
    _optional_int(config, "label_seed", 0)
    _optional_int(config, "train_limit", 1)
    _optional_int(config, "test_limit", 1)


def _check_model(config: TrainConfig) -> None:
    """Check and normalise the fields of the model, ``model`` to ``blocks``."""
    check_choice(config.model, "model", _FUNC, MODELS)
    if not _ints(config, "hidden", 1):
        raise parameter_error("hidden", _FUNC, "a non-empty sequence of ints >= 1", ())
    _real(config, "dropout", "a float in [0, 1)", lambda v: 0.0 <= v < 1.0)
    if config.dropout and config.model != "mlp":
        raise parameter_error(
            "dropout",
            _FUNC,
            f"0 for model={config.model!r} (only the MLP has dropout)",
            config.dropout,
        )
    if not isinstance(config.standardize, bool | np.bool_):
        raise parameter_error("standardize", _FUNC, "a bool", config.standardize)
    _put(config, "standardize", bool(config.standardize))
    if config.standardize and config.model != "mlp":
        raise parameter_error(
            "standardize",
            _FUNC,
            f"False for model={config.model!r} (only the MLP's first layer can absorb it; "
            "the conv nets have batch normalisation)",
            config.standardize,
        )
    if not isinstance(config.batch_norm, bool | np.bool_):
        raise parameter_error("batch_norm", _FUNC, "a bool", config.batch_norm)
    _put(config, "batch_norm", bool(config.batch_norm))
    _real(config, "width", "a float > 0", lambda v: v > 0.0)
    if not _ints(config, "blocks", 1):
        raise parameter_error("blocks", _FUNC, "a non-empty sequence of ints >= 1", ())


def _check_training(config: TrainConfig) -> None:
    """Check and normalise the fields of training, ``epochs`` to ``stop_at_train_accuracy``."""
    _put(config, "epochs", check_int(config.epochs, "epochs", _FUNC, minimum=1))
    check_choice(config.optimizer, "optimizer", _FUNC, OPTIMIZERS)
    _real(config, "lr", "a float > 0", lambda v: v > 0.0)
    _real(config, "momentum", "a float in [0, 1)", lambda v: 0.0 <= v < 1.0)
    _real(config, "weight_decay", "a float >= 0", lambda v: v >= 0.0)
    _put(config, "batch_size", check_int(config.batch_size, "batch_size", _FUNC, minimum=1))
    _put(config, "seed", check_int(config.seed, "seed", _FUNC, minimum=0))
    check_choice(config.device, "device", _FUNC, _DEVICES)
    epochs = _ints(config, "checkpoint_epochs", 0)
    if any(e > config.epochs for e in epochs):
        raise parameter_error(
            "checkpoint_epochs", _FUNC, f"epochs in [0, epochs={config.epochs}]", epochs
        )
    _put(config, "checkpoint_epochs", tuple(sorted(set(epochs))))
    if config.stop_at_train_accuracy is not None:
        _real(config, "stop_at_train_accuracy", "a float in (0, 1] or None", lambda v: 0 < v <= 1)
