"""The one-call API: :func:`analyze` a model on data, the :class:`Analysis` it returns,
:func:`open` to read one back, and :func:`as_adapter`, which turns a torch module, an
ONNX file or an adapter into the seam the experiments drive.

This is the floor users call; the ones below it (experiments, results, report) do
the work.  ``import directionkit as dk`` re-exports these names.

Examples
--------
>>> import directionkit as dk
>>> from directionkit.testing import example_model
>>> net, X, y = example_model()
>>> result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
>>> sorted(result.dataset.data_vars)[:3]
['accuracy', 'chance_accuracy', 'class_mean']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directionkit._utils.lazy import attach

if TYPE_CHECKING:
    from directionkit.api._adapters import as_adapter, site_info
    from directionkit.api._analysis import Analysis, open
    from directionkit.api._analyze import analyze

# imported on first use: see directionkit._utils.lazy
__getattr__, __dir__ = attach(
    __name__,
    {
        "as_adapter": "directionkit.api._adapters",
        "site_info": "directionkit.api._adapters",
        "Analysis": "directionkit.api._analysis",
        "open": "directionkit.api._analysis",
        "analyze": "directionkit.api._analyze",
    },
)

__all__ = ["Analysis", "analyze", "as_adapter", "open", "site_info"]
