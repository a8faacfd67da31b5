"""Metrics: pure functions over labelled arrays (numpy or xarray in, xarray out).

Per-unit measures take activations with dims ``(example, unit)`` and integer
labels with dim ``example``; unit coordinates (``site``, ``unit_index``) are
carried through to the result.  Streaming accumulators compute the same
numbers batch by batch without holding the raw activations.
"""

from directionkit.metrics._binning import bin_edges
from directionkit.metrics._chance import (
    chance_accuracy,
    chance_margin,
    chance_note,
    near_chance,
)
from directionkit.metrics._correlation import spearman
from directionkit.metrics._covariance import UnitCovariance
from directionkit.metrics._curves import ablation_auc
from directionkit.metrics._generalization import (
    RANKING_SCORES,
    granulated_psi,
    kendall_tau,
    pgdl_score,
    ranking_scores,
)
from directionkit.metrics._information import mutual_information
from directionkit.metrics._selectivity import class_mean, class_selectivity
from directionkit.metrics._streaming import (
    ClassConditionalSums,
    JointHistogram,
    UnitMoments,
    UnitRange,
)

__all__ = [
    "RANKING_SCORES",
    "ClassConditionalSums",
    "JointHistogram",
    "UnitCovariance",
    "UnitMoments",
    "UnitRange",
    "ablation_auc",
    "bin_edges",
    "chance_accuracy",
    "chance_margin",
    "chance_note",
    "class_mean",
    "class_selectivity",
    "granulated_psi",
    "kendall_tau",
    "mutual_information",
    "near_chance",
    "pgdl_score",
    "ranking_scores",
    "spearman",
]
