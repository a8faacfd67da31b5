"""Deprecated: moved to :mod:`directionkit.report.plots`.

Every name of the old module still resolves here, with a :class:`DeprecationWarning`
naming its new home.
"""

from directionkit._utils.lazy import moved

__getattr__ = moved(
    __name__,
    (
        "directionkit.report.plots",
        "directionkit.report._figures",
        "directionkit.report._drawing",
        "directionkit.report._comparison_figures",
    ),
)

#: The old module's public names (``from ... import *`` warns for each).
__all__ = [
    "ablation_curves",
    "compare_ablation_curves",
    "compare_distributions",
    "compare_noise_curves",
    "noise_curve",
    "population_ablation_curves",
    "plot_analysis",
    "selectivity_by_depth",
    "selectivity_histograms",
    "selectivity_vs_importance",
    "selectivity_vs_weight_l1",
]
