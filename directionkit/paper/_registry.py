"""The paper's experiments by name, in the paper's order (:data:`EXPERIMENTS`), each from its
own module."""

from __future__ import annotations

from directionkit.paper._ablation_method import EXPERIMENT as ABLATION_METHOD
from directionkit.paper._batchnorm import EXPERIMENT as BATCHNORM
from directionkit.paper._corrupted_labels import EXPERIMENT as CORRUPTED_LABELS
from directionkit.paper._depth import EXPERIMENT as DEPTH
from directionkit.paper._directions import EXPERIMENT as DIRECTIONS
from directionkit.paper._dropout import EXPERIMENT as DROPOUT
from directionkit.paper._early_stopping import EXPERIMENT as EARLY_STOPPING
from directionkit.paper._ensemble import EXPERIMENT as ENSEMBLE
from directionkit.paper._experiment import Experiment
from directionkit.paper._hyperparameters import EXPERIMENT as HYPERPARAMETERS
from directionkit.paper._l1 import EXPERIMENT as L1
from directionkit.paper._measures import EXPERIMENT as MEASURES
from directionkit.paper._noise import EXPERIMENT as NOISE
from directionkit.paper._selectivity_importance import EXPERIMENT as SELECTIVITY_IMPORTANCE

__all__ = ["EXPERIMENTS"]

#: Every experiment by its name, in the paper's order.
EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        CORRUPTED_LABELS,
        NOISE,
        ENSEMBLE,
        EARLY_STOPPING,
        HYPERPARAMETERS,
        DROPOUT,
        BATCHNORM,
        SELECTIVITY_IMPORTANCE,
        ABLATION_METHOD,
        DEPTH,
        L1,
        DIRECTIONS,
        MEASURES,
    )
}
