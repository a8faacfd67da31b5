"""Single directions beyond single units (issue 25): bases of directions at a site, as
labelled orthonormal rows ``(direction, unit)`` carrying their provenance in their attrs,
and :func:`along`, which lets every experiment measure a model along them.

The paper's single directions include "some linear combination of units".  Bases:
:func:`units` (today's single units), :func:`random` (Haar-random rotations),
:func:`pca` (principal components of the activity), :func:`class_means` (the
between-class span) and :func:`from_array` (rows you give).

Examples
--------
>>> from directionkit.adapter import Site
>>> from directionkit import directions
>>> directions.random(Site("fc1", n_units=8), k=3, seed=1).shape
(3, 8)
"""

from directionkit.directions._adapter import AlongDirections, along
from directionkit.directions._bases import ORTHONORMAL_TOLERANCE, from_array, random, units
from directionkit.directions._measured import class_means, pca

__all__ = [
    "ORTHONORMAL_TOLERANCE",
    "AlongDirections",
    "along",
    "class_means",
    "from_array",
    "pca",
    "random",
    "units",
]
