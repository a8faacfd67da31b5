"""Bases of single directions at a site (issue 25): the unit basis, Haar-random rotations
and bases the user gives, as labelled orthonormal rows ``(direction, unit)`` that carry
their provenance in their attrs.

The paper's single directions include "some linear combination of units"; experiments
along a basis other than the units (random rotations, principal components, class-mean
differences) come next, built on these.

Examples
--------
>>> from directionkit.adapter import Site
>>> from directionkit import directions
>>> directions.random(Site("fc1", n_units=8), k=3, seed=1).shape
(3, 8)
"""

from directionkit.directions._bases import ORTHONORMAL_TOLERANCE, from_array, random, units

__all__ = ["ORTHONORMAL_TOLERANCE", "from_array", "random", "units"]
