"""Mutual information between a unit's discretised activity and the class."""

from __future__ import annotations

from typing import Any

import xarray as xr

from directionkit._utils.validation import check_choice, check_int
from directionkit.metrics._binning import BINNINGS, Binning, _edges
from directionkit.metrics._blocks import ExampleBlocks
from directionkit.metrics._streaming import JointHistogram


def mutual_information(
    activations: Any,
    labels: Any = None,
    *,
    n_classes: int | None = None,
    n_bins: int = 16,
    binning: Binning = "equal-width",
) -> xr.DataArray:
    """Mutual information I(activity; class) of every unit, in bits.

    Each unit's activity is discretised into ``n_bins`` bins (see :func:`bin_edges`),
    then ``I = sum_{b,c} p(b, c) log2(p(b, c) / (p(b) p(c)))``.

    Parameters
    ----------
    activations : array-like (example, unit) or xarray.DataArray
    labels : array-like of int, shape (example,)
    n_classes : int, optional
        Default ``labels.max() + 1``.
    n_bins : int
        Number of bins, at least 2.
    binning : {"equal-width", "equal-frequency"}

    Returns
    -------
    xarray.DataArray
        Dims ``(unit,)``, name ``"mutual_info"``; between 0 and ``log2(n_classes)``.

    Examples
    --------
    >>> acts = [[0.0, 5.0], [0.0, 5.0], [1.0, 5.0], [1.0, 5.0]]
    >>> mutual_information(acts, labels=[0, 0, 1, 1], n_bins=2).values.tolist()
    [1.0, 0.0]
    """
    func = "mutual_information"
    n_bins = check_int(n_bins, "n_bins", func, minimum=2)
    check_choice(binning, "binning", func, BINNINGS)
    blocks = ExampleBlocks(activations, labels, func, n_classes)
    histogram = JointHistogram(_edges(blocks, n_bins, binning), blocks.n_classes)
    for values, y in blocks:
        histogram.update(values, y)
    return xr.DataArray(
        histogram.mutual_information(), dims=("unit",), coords=blocks.coords, name="mutual_info"
    )
