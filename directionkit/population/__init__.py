"""Populations of models: :func:`sweep` analyses many models (seeds, a hyperparameter
grid, label corruption levels, checkpoints) as independent tasks on ``dask.distributed``
into one zarr store with a ``model`` dim (:func:`open_sweep`); :func:`select` and
:func:`selection_report` rank and judge them; :class:`AUCMonitor` follows one model's
ablation AUC over training.

Examples
--------
>>> import xarray as xr
>>> from directionkit.population import select
>>> population = xr.Dataset({"accuracy": ("model", [0.9, 0.95, 0.8])},
...                         coords={"model": ["a", "b", "c"]})
>>> select(population, by="accuracy", k=1)["model"].values.tolist()
['b']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directionkit._utils.lazy import attach

if TYPE_CHECKING:
    from directionkit.population._config import read_sweep_config
    from directionkit.population._models import RUN_SPLITS, Checkpoint
    from directionkit.population._monitor import AUCMonitor, estimate_auc
    from directionkit.population._ranking import describe_sweep
    from directionkit.population._selection import (
        HIGHER_IS_BETTER,
        NEAR_CHANCE_CHOICES,
        measure_values,
        near_chance_models,
        select,
        selection_report,
    )
    from directionkit.population._store import SweepResult, open_sweep
    from directionkit.population._sweep import sweep

# imported on first use: see directionkit._utils.lazy
__getattr__, __dir__ = attach(
    __name__,
    {
        "read_sweep_config": "directionkit.population._config",
        "RUN_SPLITS": "directionkit.population._models",
        "Checkpoint": "directionkit.population._models",
        "AUCMonitor": "directionkit.population._monitor",
        "estimate_auc": "directionkit.population._monitor",
        "describe_sweep": "directionkit.population._ranking",
        "HIGHER_IS_BETTER": "directionkit.population._selection",
        "NEAR_CHANCE_CHOICES": "directionkit.population._selection",
        "measure_values": "directionkit.population._selection",
        "near_chance_models": "directionkit.population._selection",
        "select": "directionkit.population._selection",
        "selection_report": "directionkit.population._selection",
        "SweepResult": "directionkit.population._store",
        "open_sweep": "directionkit.population._store",
        "sweep": "directionkit.population._sweep",
    },
)

__all__ = [
    "HIGHER_IS_BETTER",
    "NEAR_CHANCE_CHOICES",
    "RUN_SPLITS",
    "AUCMonitor",
    "Checkpoint",
    "SweepResult",
    "describe_sweep",
    "estimate_auc",
    "measure_values",
    "near_chance_models",
    "open_sweep",
    "read_sweep_config",
    "select",
    "selection_report",
    "sweep",
]
