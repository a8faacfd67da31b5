"""Experiments: sets of interventions evaluated over a data set, driving any adapter.

Every function takes a :class:`~directionkit.adapter.ModelAdapter` and data given as
an ``(X, y)`` tuple of arrays or any iterable of ``(x, y)`` batches (e.g. a torch
``DataLoader``), and returns labelled xarray results with the names of the
directionkit data model.
"""

from directionkit.experiments._ablation import ablation_curve, n_clamped, unit_importance
from directionkit.experiments._baselines import BASELINES, baseline_measures
from directionkit.experiments._recording import record_activations
from directionkit.experiments._statistics import activation_statistics, noise_curve

__all__ = [
    "BASELINES",
    "ablation_curve",
    "activation_statistics",
    "baseline_measures",
    "n_clamped",
    "noise_curve",
    "record_activations",
    "unit_importance",
]
