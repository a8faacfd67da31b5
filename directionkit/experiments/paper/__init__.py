"""Deprecated: moved to :mod:`directionkit.paper`.

:mod:`directionkit.experiments` is the engine (ablation and noise curves driving an
adapter); the paper's experiments, which train networks, analyse them and write reports,
are :mod:`directionkit.paper`.  Every name of :mod:`directionkit.paper` still resolves
here, with a :class:`DeprecationWarning` naming its new home.
"""

from directionkit._utils.lazy import moved

__getattr__ = moved(__name__, ("directionkit.paper",))

#: The old module's public names (``from ... import *`` warns for each).
__all__ = [
    "DATASETS",
    "EXPERIMENTS",
    "SCALES",
    "VERDICTS",
    "Experiment",
    "ExperimentResult",
    "Rule",
    "Scale",
    "Workspace",
    "ablation_method",
    "batchnorm",
    "check_verdict",
    "corrupted_labels",
    "depth",
    "dropout",
    "early_stopping",
    "ensemble",
    "experiment_rows",
    "experiment_figures",
    "hyperparameters",
    "l1",
    "noise",
    "reproduce",
    "run_experiment",
    "selectivity_importance",
]
