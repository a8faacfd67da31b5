"""What :func:`~directionkit.reference_models.train.train` returns: :class:`TrainResult`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import xarray as xr
from torch import nn

from directionkit.reference_models.train._config import TrainConfig
from directionkit.reference_models.train._models import load_model


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
