"""Deprecated: moved to :mod:`directionkit.report`.

Every name of the old module still resolves here, with a :class:`DeprecationWarning`
naming its new home.
"""

from directionkit._utils.lazy import moved

__getattr__ = moved(
    __name__,
    (
        "directionkit.report",
        "directionkit.report._compare",
        "directionkit.report._comparison_figures",
    ),
)

#: The old module's public names (``from ... import *`` warns for each).
__all__ = [
    "Comparison",
    "compare",
    "model_labels",
]
