"""Binning activity for the mutual information: bin edges (equal width or equal frequency),
bin assignment, and the mutual information of a joint histogram of counts.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from directionkit._utils.validation import check_choice, check_int
from directionkit.metrics._blocks import BLOCK_VALUES, ExampleBlocks

Binning = Literal["equal-width", "equal-frequency"]


BINNINGS = ("equal-width", "equal-frequency")


def equal_width_edges(low: np.ndarray, high: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges ``low + k (high - low) / n_bins``, k = 1..n_bins-1, per unit.

    Examples
    --------
    >>> equal_width_edges(np.array([0.0]), np.array([4.0]), 4)
    array([[1., 2., 3.]])
    """
    steps = np.arange(1, n_bins) / n_bins
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    return low[:, None] + (high - low)[:, None] * steps[None, :]


def bin_edges(activations: Any, n_bins: int = 16, binning: Binning = "equal-width") -> np.ndarray:
    """Inner bin edges of every unit's activity, shape ``(n_units, n_bins - 1)``.

    A value ``x`` falls in bin ``searchsorted(edges, x, side="right")`` — the number
    of inner edges ``<= x`` — so bins are numbered ``0..n_bins-1``.

    Parameters
    ----------
    activations : array-like (example, unit) or xarray.DataArray
    n_bins : int
        At least 2.
    binning : {"equal-width", "equal-frequency"}
        ``"equal-width"``: edges split ``[min, max]`` of the unit into equal parts (a
        constant unit puts everything in bin 0).  ``"equal-frequency"``: the edges are
        order statistics ``sorted(x)[ceil(k n / n_bins)]``, k = 1..n_bins-1, so each
        bin holds about ``n / n_bins`` examples; ties stay in one bin (bins may then be
        uneven or empty), and the bins are invariant to any strictly increasing
        transform of the activity.

    Examples
    --------
    >>> bin_edges([[0.0], [1.0], [2.0], [3.0]], n_bins=2, binning="equal-frequency")
    array([[2.]])
    """
    func = "bin_edges"
    n_bins = check_int(n_bins, "n_bins", func, minimum=2)
    check_choice(binning, "binning", func, BINNINGS)
    blocks = ExampleBlocks(activations, None, func, None, need_labels=False)
    return _edges(blocks, n_bins, binning)


def _edges(blocks: Any, n_bins: int, binning: str) -> np.ndarray:
    """Inner edges from an :class:`ExampleBlocks`: a range pass, or whole sorted columns."""
    if binning == "equal-width":
        low = np.full(blocks.n_units, np.inf)
        high = np.full(blocks.n_units, -np.inf)
        for values, _ in blocks:
            low = np.minimum(low, values.min(axis=0))
            high = np.maximum(high, values.max(axis=0))
        return equal_width_edges(low, high, n_bins)
    n = blocks.n_examples
    ranks = np.minimum(np.ceil(np.arange(1, n_bins) * n / n_bins).astype(int), n - 1)
    edges = np.empty((blocks.n_units, n_bins - 1))
    width = max(1, BLOCK_VALUES // max(n, 1))
    for start, columns in blocks.columns(width):
        edges[start : start + columns.shape[1]] = np.sort(columns, axis=0)[ranks].T
    return edges


def assign_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value ``(B, n_units)`` given inner edges ``(n_units, n_bins - 1)``."""
    bins = np.zeros(values.shape, dtype=np.int64)
    for k in range(edges.shape[1]):  # n_bins is small; vectorised over examples and units
        bins += values >= edges[None, :, k]
    return bins


def mi_from_counts(counts: np.ndarray) -> np.ndarray:
    """Mutual information in bits from joint counts ``(n_units, n_bins, n_classes)``.

    Written with integer counts, ``sum n_bc / N * log2(n_bc N / (n_b n_c))``, so that an
    independent table gives ratios of exactly 1 and an MI of exactly 0.
    """
    counts = counts.astype(np.float64)
    total = counts.sum(axis=(1, 2), keepdims=True)
    n_bin = counts.sum(axis=2, keepdims=True)
    n_class = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = counts / total * np.log2((counts * total) / (n_bin * n_class))
    return np.maximum(np.where(counts > 0, terms, 0.0).sum(axis=(1, 2)), 0.0)
