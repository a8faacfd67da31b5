"""The data a run trains on, loaded, cut, corrupted and (optionally) standardised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from directionkit.errors import InvalidDataError
from directionkit.reference_models.runs import split_data
from directionkit.reference_models.train._config import TrainConfig


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
