"""Presentation: the text summary of a result (``show``, ``repr``), the paper's figures
(:mod:`directionkit.report.plots`), several analyses overlaid (:func:`compare`), and the
self-contained HTML report (:func:`write_report`, :func:`write_comparison_report`).

Everything here reads labelled datasets (an :class:`~directionkit.Analysis` or an
:class:`xarray.Dataset`, or a store's path) and never runs a model.

Examples
--------
>>> import xarray as xr
>>> from directionkit.report import summary_table
>>> print(summary_table(xr.Dataset({"accuracy": 0.5, "ablation_auc": ("scope", [0.25])},
...                                coords={"scope": ["all"]})))
accuracy            0.5000
ablation AUC [all]  0.2500
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from directionkit._utils.lazy import attach

if TYPE_CHECKING:
    from directionkit.report._compare import Comparison, compare, model_labels
    from directionkit.report._html import (
        FORMATS,
        PRINT_DPI,
        Describe,
        summary_table,
        write_comparison_report,
        write_report,
    )

# imported on first use: see directionkit._utils.lazy
__getattr__, __dir__ = attach(
    __name__,
    {
        "Comparison": "directionkit.report._compare",
        "compare": "directionkit.report._compare",
        "model_labels": "directionkit.report._compare",
        "FORMATS": "directionkit.report._html",
        "PRINT_DPI": "directionkit.report._html",
        "Describe": "directionkit.report._html",
        "summary_table": "directionkit.report._html",
        "write_comparison_report": "directionkit.report._html",
        "write_report": "directionkit.report._html",
    },
)

__all__ = [
    "FORMATS",
    "PRINT_DPI",
    "Comparison",
    "Describe",
    "compare",
    "model_labels",
    "summary_table",
    "write_comparison_report",
    "write_report",
]
