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

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from directionkit._utils.lazy import attach
from directionkit._version import __version__

# the public names are imported on first use (PEP 562), so that `import directionkit` and
# the command line's `--help` stay fast: the modules behind them import xarray and scipy
_HOME = {
    "analyze": "directionkit.api",
    "AUCMonitor": "directionkit.population",
    "estimate_auc": "directionkit.population",
    "select": "directionkit.population",
    "selection_report": "directionkit.population",
    "Checkpoint": "directionkit.population",
    "SweepResult": "directionkit.population",
    "open_sweep": "directionkit.population",
    "sweep": "directionkit.population",
    "Interventions": "directionkit.adapter",
    "ModelAdapter": "directionkit.adapter",
    "RunOutput": "directionkit.adapter",
    "Site": "directionkit.adapter",
    "Comparison": "directionkit.report",
    "compare": "directionkit.report",
    "DirectionKitError": "directionkit.errors",
    "DirectionKitWarning": "directionkit.errors",
    "InvalidDataError": "directionkit.errors",
    "InvalidParameterError": "directionkit.errors",
    "SiteNotFoundError": "directionkit.errors",
    "StoreError": "directionkit.errors",
    "UnsupportedModelError": "directionkit.errors",
    "ablation_auc": "directionkit.metrics",
    "class_mean": "directionkit.metrics",
    "class_selectivity": "directionkit.metrics",
    "mutual_information": "directionkit.metrics",
    "spearman": "directionkit.metrics",
    "Analysis": "directionkit.api",
    "open": "directionkit.api",
}


__getattr__, __dir__ = attach(__name__, _HOME)


class _Package(types.ModuleType):
    """The package, whose public names stay what they are when a submodule of the same
    name is imported (Python sets ``directionkit.compare`` to the module ``compare``
    when that is first imported; the public name is the function)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOME and isinstance(value, types.ModuleType):
            value = getattr(importlib.import_module(_HOME[name]), name)  # not the module's
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:
    from directionkit.adapter import Interventions, ModelAdapter, RunOutput, Site
    from directionkit.api import Analysis, analyze, open
    from directionkit.errors import (
        DirectionKitError,
        DirectionKitWarning,
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
    from directionkit.population import (
        AUCMonitor,
        Checkpoint,
        SweepResult,
        estimate_auc,
        open_sweep,
        select,
        selection_report,
        sweep,
    )
    from directionkit.report import Comparison, compare

__all__ = [
    "AUCMonitor",
    "Analysis",
    "Checkpoint",
    "Comparison",
    "DirectionKitError",
    "DirectionKitWarning",
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
