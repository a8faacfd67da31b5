"""Figures of an analysis, drawn as in Morcos et al. (2018), and of several analyses
overlaid.

Every function returns a :class:`matplotlib.figure.Figure` built directly (never
through ``pyplot``).  The analysis' figures take an :class:`~directionkit.Analysis` or
its :class:`xarray.Dataset` (:func:`plot_analysis` draws every one whose variables are
present); the overlays take a :class:`~directionkit.Comparison`.

Examples
--------
>>> import xarray as xr
>>> from directionkit.report.plots import plot_analysis
>>> sorted(plot_analysis(xr.Dataset({"selectivity": ("unit", [0.1, 0.5])})))
['selectivity_by_depth', 'selectivity_histograms']
"""

from directionkit.report._comparison_figures import (
    compare_ablation_curves,
    compare_distributions,
    compare_noise_curves,
)
from directionkit.report._figures import (
    ablation_curves,
    noise_curve,
    plot_analysis,
    population_ablation_curves,
    selectivity_by_depth,
    selectivity_histograms,
    selectivity_vs_importance,
    selectivity_vs_weight_l1,
)
from directionkit.report._generalization_figures import measures_against_gap

__all__ = [
    "ablation_curves",
    "compare_ablation_curves",
    "compare_distributions",
    "compare_noise_curves",
    "measures_against_gap",
    "noise_curve",
    "plot_analysis",
    "population_ablation_curves",
    "selectivity_by_depth",
    "selectivity_histograms",
    "selectivity_vs_importance",
    "selectivity_vs_weight_l1",
]
