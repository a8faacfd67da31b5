"""The covariance of a site's activity, streamed batch by batch, and its principal
components: the directions of largest variance, one basis of single directions the paper
invites beside the units themselves (issue 25)."""

from __future__ import annotations

from typing import Any

import numpy as np

from directionkit._utils.validation import check_int
from directionkit.errors import InvalidDataError
from directionkit.metrics._streaming import _batch, _same


class UnitCovariance:
    """Running count, mean and centred cross-products of ``n_units`` activities (Chan et
    al.'s pairwise merge, the matrix form of :class:`UnitMoments`).

    Each row given to :meth:`update` is one sample of the site's activity vector: one
    example of a dense site, or one position (pixel, token) of one example of a map,
    whose unit (channel) vector a direction acts on at every position.  The matrix is
    ``(n_units, n_units)`` float64: 128 MiB for 4,096 units.

    Examples
    --------
    >>> c = UnitCovariance(2)
    >>> c.update([[1.0, 2.0], [2.0, 4.0]]); c.update([[3.0, 6.0]])
    >>> c.covariance(ddof=1).tolist()
    [[1.0, 2.0], [2.0, 4.0]]
    >>> c.principal_components(1).round(4).tolist()  # along (1, 2), normalised
    [[0.4472, 0.8944]]
    """

    def __init__(self, n_units: int) -> None:
        self.n_units = check_int(n_units, "n_units", "UnitCovariance", minimum=1)
        self.count = 0
        self.mean = np.zeros(self.n_units)
        self.cross = np.zeros((self.n_units, self.n_units))

    @property
    def shape_key(self) -> tuple[int]:
        return (self.n_units,)

    def _combine(self, count: int, mean: np.ndarray, cross: np.ndarray) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.cross = self.cross + cross + np.outer(delta, delta) * (self.count * count / total)
        self.mean = self.mean + delta * (count / total)
        self.count = total

    def update(self, activations: Any) -> None:
        """Add one batch of activity vectors ``(B, n_units)`` (finite values)."""
        acts = _batch(activations, self.n_units, "UnitCovariance")
        if acts.shape[0] == 0:
            return
        mean = acts.mean(axis=0)
        centred = acts - mean
        self._combine(acts.shape[0], mean, centred.T @ centred)

    def merge(self, other: UnitCovariance) -> UnitCovariance:
        """A new accumulator holding both sets of samples."""
        _same(self, other, "units must agree")
        out = UnitCovariance(self.n_units)
        out.count, out.mean, out.cross = self.count, self.mean.copy(), self.cross.copy()
        if other.count:
            out._combine(other.count, other.mean, other.cross)
        return out

    def covariance(self, ddof: int = 0) -> np.ndarray:
        """The ``(n_units, n_units)`` covariance with ``ddof`` degrees of freedom removed."""
        if self.count - ddof <= 0:
            raise InvalidDataError(
                f"UnitCovariance has {self.count} samples; a covariance with ddof={ddof} "
                "needs more."
            )
        return self.cross / (self.count - ddof)

    def principal_components(self, k: int) -> np.ndarray:
        """The ``k`` directions of largest variance, as orthonormal rows ``(k, n_units)``.

        Ordered by decreasing variance; each row's sign is fixed so that its entry of
        largest magnitude is positive (the first such entry on a tie), so the same
        activity always gives the same basis.  Directions of equal variance are any
        orthonormal basis of their common space (as every eigensolver returns them).
        """
        k = check_int(k, "k", "UnitCovariance.principal_components", minimum=1)
        if k > self.n_units:
            raise InvalidDataError(
                f"UnitCovariance.principal_components: k={k} exceeds the {self.n_units} units."
            )
        _, vectors = np.linalg.eigh(self.covariance())  # ascending eigenvalues
        return sign_fixed(vectors[:, ::-1][:, :k].T)

    def explained_variance(self, k: int | None = None) -> np.ndarray:
        """The variance along each of the first ``k`` principal components (all by
        default), in decreasing order."""
        values = np.linalg.eigvalsh(self.covariance())[::-1]
        return values if k is None else values[: check_int(k, "k", "explained_variance", minimum=1)]


def sign_fixed(rows: np.ndarray) -> np.ndarray:
    """``rows`` with each sign fixed so that its entry of largest magnitude is positive
    (the first such entry on a tie): the same directions always come out the same.

    Examples
    --------
    >>> sign_fixed(np.array([[0.6, -0.8], [0.8, 0.6]])).tolist()
    [[-0.6, 0.8], [0.8, 0.6]]
    """
    largest = np.argmax(np.abs(rows), axis=1)
    fixed: np.ndarray = rows * np.sign(rows[np.arange(rows.shape[0]), largest])[:, None]
    return fixed
