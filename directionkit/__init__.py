"""directionkit: how much does a trained network rely on single directions?

The method of Morcos et al., "On the importance of single directions for
generalization" (ICLR 2018), for any PyTorch module or ONNX file.

Examples
--------
>>> import numpy as np
>>> import directionkit as dk
>>> acts = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
>>> dk.class_selectivity(acts, labels=[0, 1, 1]).values.round(3).tolist()
[0.333, 1.0]
"""

from directionkit._api import analyze
from directionkit._monitor import AUCMonitor, estimate_auc
from directionkit._selection import select, selection_report
from directionkit._sweep import Checkpoint, SweepResult, open_sweep, sweep
from directionkit._version import __version__
from directionkit.adapter import Interventions, ModelAdapter, RunOutput, Site
from directionkit.compare import Comparison, compare
from directionkit.errors import (
    DirectionKitError,
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    StoreError,
    UnsupportedModelError,
)
from directionkit.metrics import (
    ablation_auc,
    class_mean,
    class_selectivity,
    mutual_information,
    spearman,
)
from directionkit.store import Analysis, open

__all__ = [
    "AUCMonitor",
    "Analysis",
    "Checkpoint",
    "Comparison",
    "DirectionKitError",
    "Interventions",
    "InvalidDataError",
    "InvalidParameterError",
    "ModelAdapter",
    "RunOutput",
    "Site",
    "SiteNotFoundError",
    "StoreError",
    "SweepResult",
    "UnsupportedModelError",
    "__version__",
    "ablation_auc",
    "analyze",
    "class_mean",
    "class_selectivity",
    "compare",
    "estimate_auc",
    "mutual_information",
    "open",
    "open_sweep",
    "select",
    "selection_report",
    "spearman",
    "sweep",
]
