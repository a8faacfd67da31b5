"""Streaming accumulators: metrics over a data set, batch by batch.

Each accumulator takes batches with :meth:`update`, combines partial results
(from other workers or chunks) with :meth:`merge`, and gives the same numbers as
the one-shot functions for any batching.  Everything is accumulated in float64.

Examples
--------
>>> import numpy as np
>>> acts, y = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]]), np.array([0, 0, 1])
>>> sums = ClassConditionalSums(n_units=2, n_classes=2)
>>> sums.update(acts[:2], y[:2]); sums.update(acts[2:], y[2:])
>>> sums.class_mean()
array([[2., 0.],
       [1., 4.]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from directionkit._utils.validation import check_int, check_labels
from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.metrics._binning import assign_bins, equal_width_edges, mi_from_counts
from directionkit.metrics._selectivity import (
    Classes,
    Negative,
    class_sums,
    means_from_sums,
    selectivity_from_means,
)


def _batch(values: Any, n_units: int, owner: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != n_units:
        raise InvalidDataError(
            f"{owner}.update needs activations of shape (B, {n_units}). "
            f"Got shape {np.shape(values)} instead."
        )
    if not np.all(np.isfinite(array)):
        raise InvalidDataError(f"{owner}.update got NaN or Inf activations.")
    return array


def _labels(labels: Any, n: int, n_classes: int, owner: str) -> np.ndarray:
    return check_labels(labels, n, f"{owner}.update", n_classes, allow_empty=True)[0]


def _same(a: Any, b: Any, what: str) -> None:
    if type(a) is not type(b) or a.shape_key != b.shape_key:
        raise InvalidParameterError(
            f"Cannot merge {type(a).__name__} of {a.shape_key} with {type(b).__name__} of "
            f"{getattr(b, 'shape_key', '?')} ({what})."
        )


class ClassConditionalSums:
    """Running per-class sums and counts of every unit's activity.

    Parameters
    ----------
    n_units, n_classes : int
    """

    def __init__(self, n_units: int, n_classes: int) -> None:
        self.n_units = check_int(n_units, "n_units", "ClassConditionalSums", minimum=1)
        self.n_classes = check_int(n_classes, "n_classes", "ClassConditionalSums", minimum=1)
        self.sums = np.zeros((self.n_units, self.n_classes))
        self.counts = np.zeros(self.n_classes)

    @property
    def shape_key(self) -> tuple[int, int]:
        return (self.n_units, self.n_classes)

    def update(self, activations: Any, labels: Any) -> None:
        """Add one batch: activations ``(B, n_units)`` and labels ``(B,)``."""
        acts = _batch(activations, self.n_units, "ClassConditionalSums")
        y = _labels(labels, acts.shape[0], self.n_classes, "ClassConditionalSums")
        sums, counts = class_sums(acts, y, self.n_classes)
        self.sums += sums
        self.counts += counts

    def merge(self, other: ClassConditionalSums) -> ClassConditionalSums:
        """A new accumulator holding both ``self``'s and ``other``'s examples."""
        _same(self, other, "units and classes must agree")
        out = ClassConditionalSums(self.n_units, self.n_classes)
        out.sums, out.counts = self.sums + other.sums, self.counts + other.counts
        return out

    def class_mean(self, classes: Classes = "all") -> np.ndarray:
        """Class means ``(n_units, n_classes)``: with ``classes="all"`` an error if a class
        has no example, with ``"present"`` NaN for it."""
        return means_from_sums(
            self.sums, self.counts, "ClassConditionalSums.class_mean", classes
        )

    def selectivity(self, negative: Negative = "shift", classes: Classes = "all") -> np.ndarray:
        """Selectivity index ``(n_units,)``, as :func:`directionkit.class_selectivity`."""
        return selectivity_from_means(self.class_mean(classes), negative)


class UnitMoments:
    """Running count, mean and centred sum of squares of every unit (Chan et al.'s merge).

    Examples
    --------
    >>> m = UnitMoments(1); m.update([[1.0], [2.0]]); m.update([[3.0], [4.0]])
    >>> m.mean.tolist(), m.variance().tolist()
    ([2.5], [1.25])
    """

    def __init__(self, n_units: int) -> None:
        self.n_units = check_int(n_units, "n_units", "UnitMoments", minimum=1)
        self.count = 0
        self.mean = np.zeros(self.n_units)
        self.m2 = np.zeros(self.n_units)

    @property
    def shape_key(self) -> tuple[int]:
        return (self.n_units,)

    def _combine(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.mean = self.mean + delta * (count / total)
        self.count = total

    def update(self, activations: Any) -> None:
        """Add one batch of activations ``(B, n_units)``."""
        acts = _batch(activations, self.n_units, "UnitMoments")
        if acts.shape[0] == 0:
            return
        mean = acts.mean(axis=0)
        self._combine(acts.shape[0], mean, ((acts - mean) ** 2).sum(axis=0))

    def merge(self, other: UnitMoments) -> UnitMoments:
        """A new accumulator holding both sets of examples."""
        _same(self, other, "units must agree")
        out = UnitMoments(self.n_units)
        out.count, out.mean, out.m2 = self.count, self.mean.copy(), self.m2.copy()
        if other.count:
            out._combine(other.count, other.mean, other.m2)
        return out

    def variance(self, ddof: int = 0) -> np.ndarray:
        """Per-unit variance with ``ddof`` degrees of freedom removed."""
        if self.count - ddof <= 0:
            raise InvalidDataError(
                f"UnitMoments has {self.count} examples; variance with ddof={ddof} needs more."
            )
        return self.m2 / (self.count - ddof)

    def std(self, ddof: int = 0) -> np.ndarray:
        """Per-unit standard deviation."""
        return np.sqrt(self.variance(ddof))


class UnitRange:
    """Running minimum and maximum of every unit (for equal-width bin edges).

    Examples
    --------
    >>> r = UnitRange(2); r.update([[0.0, 5.0], [4.0, 1.0]])
    >>> r.equal_width_edges(2)
    array([[2.],
           [3.]])
    """

    def __init__(self, n_units: int) -> None:
        self.n_units = check_int(n_units, "n_units", "UnitRange", minimum=1)
        self.min = np.full(self.n_units, np.inf)
        self.max = np.full(self.n_units, -np.inf)

    @property
    def shape_key(self) -> tuple[int]:
        return (self.n_units,)

    def update(self, activations: Any) -> None:
        """Add one batch of activations ``(B, n_units)``."""
        acts = _batch(activations, self.n_units, "UnitRange")
        if acts.shape[0]:
            self.min = np.minimum(self.min, acts.min(axis=0))
            self.max = np.maximum(self.max, acts.max(axis=0))

    def merge(self, other: UnitRange) -> UnitRange:
        """A new accumulator covering both ranges."""
        _same(self, other, "units must agree")
        out = UnitRange(self.n_units)
        out.min, out.max = np.minimum(self.min, other.min), np.maximum(self.max, other.max)
        return out

    def equal_width_edges(self, n_bins: int) -> np.ndarray:
        """Inner equal-width edges ``(n_units, n_bins - 1)``, as :func:`bin_edges`."""
        n_bins = check_int(n_bins, "n_bins", "UnitRange.equal_width_edges", minimum=2)
        if not np.all(np.isfinite(self.min)):
            raise InvalidDataError("UnitRange has seen no examples; it has no range yet.")
        return equal_width_edges(self.min, self.max, n_bins)


class JointHistogram:
    """Running joint counts of (bin of a unit's activity, class), for mutual information.

    Parameters
    ----------
    edges : array (n_units, n_bins - 1)
        Inner bin edges of each unit, e.g. from :func:`bin_edges` or
        :meth:`UnitRange.equal_width_edges` after a first pass.
    n_classes : int

    Examples
    --------
    >>> h = JointHistogram(np.array([[0.5]]), n_classes=2)
    >>> h.update([[0.0], [1.0]], [0, 1])
    >>> h.mutual_information().tolist()
    [1.0]
    """

    def __init__(self, edges: Any, n_classes: int) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 2 or self.edges.shape[1] < 1:
            raise InvalidParameterError(
                "The 'edges' of JointHistogram must have shape (n_units, n_bins - 1) with "
                f"n_bins >= 2. Got shape {self.edges.shape} instead."
            )
        if np.any(np.diff(self.edges, axis=1) < 0) or not np.all(np.isfinite(self.edges)):
            raise InvalidParameterError(
                "The 'edges' of JointHistogram must be finite and non-decreasing along each row."
            )
        self.n_classes = check_int(n_classes, "n_classes", "JointHistogram", minimum=1)
        self.n_units, self.n_bins = self.edges.shape[0], self.edges.shape[1] + 1
        self.counts = np.zeros((self.n_units, self.n_bins, self.n_classes), dtype=np.int64)

    @property
    def shape_key(self) -> tuple[int, int, int]:
        return (self.n_units, self.n_bins, self.n_classes)

    def update(self, activations: Any, labels: Any) -> None:
        """Add one batch: activations ``(B, n_units)`` and labels ``(B,)``."""
        acts = _batch(activations, self.n_units, "JointHistogram")
        y = _labels(labels, acts.shape[0], self.n_classes, "JointHistogram")
        bins = assign_bins(acts, self.edges)
        flat = (
            np.arange(self.n_units)[None, :] * (self.n_bins * self.n_classes)
            + bins * self.n_classes
            + y[:, None]
        )
        self.counts += np.bincount(flat.ravel(), minlength=self.counts.size).reshape(
            self.counts.shape
        )

    def merge(self, other: JointHistogram) -> JointHistogram:
        """A new histogram with both sets of counts (the edges must be the same)."""
        _same(self, other, "units, bins and classes must agree")
        if not np.array_equal(self.edges, other.edges):
            raise InvalidParameterError("Cannot merge JointHistograms with different edges.")
        out = JointHistogram(self.edges, self.n_classes)
        out.counts = self.counts + other.counts
        return out

    def mutual_information(self) -> np.ndarray:
        """I(bin; class) of every unit in bits, ``(n_units,)``."""
        if self.counts.sum() == 0:
            raise InvalidDataError("JointHistogram has seen no examples.")
        return mi_from_counts(self.counts)
