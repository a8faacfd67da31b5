"""The model a :class:`TrainConfig` describes: built untrained, or loaded from a run."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from directionkit.errors import InvalidDataError, StoreError
from directionkit.reference_models.models import MLP, ConvNet, ResNet
from directionkit.reference_models.train._checkpoints import _saved_checkpoints
from directionkit.reference_models.train._config import TrainConfig


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
