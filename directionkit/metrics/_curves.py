"""Normalised area under an ablation curve."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from directionkit._validation import parameter_error
from directionkit.errors import InvalidDataError


def ablation_auc(curve: xr.DataArray, *, baseline: Any = None) -> xr.DataArray:
    """Normalised area under an accuracy-vs-fraction-ablated curve.

    The accuracy is divided by the unablated accuracy (``baseline``, by default the
    curve's value at fraction 0) and integrated over the fraction with the trapezoid
    rule.  Fractions must lie in [0, 1] and span it (0 and 1 both present), so an AUC
    of 1 means no loss at all and the AUC of a curve that drops at once to chance
    ``c`` is about ``c / baseline``.

    Parameters
    ----------
    curve : xarray.DataArray
        Accuracies with a ``fraction`` dim and any others (``scope``, ``ordering``, ...).
    baseline : float or xarray.DataArray, optional
        The unablated accuracy, broadcast against the curve without ``fraction``.

    Returns
    -------
    xarray.DataArray
        The curve's other dims, name ``"ablation_auc"``.

    Notes
    -----
    The AUC is linear in the curve, so the mean of the AUCs over orderings equals the
    AUC of the mean curve (for a shared baseline).

    Examples
    --------
    >>> import xarray as xr
    >>> curve = xr.DataArray([0.8, 0.4, 0.1], dims="fraction", coords={"fraction": [0, .5, 1]})
    >>> round(float(ablation_auc(curve)), 6)
    0.53125
    """
    if not isinstance(curve, xr.DataArray) or "fraction" not in curve.dims:
        dims = getattr(curve, "dims", None)
        raise InvalidDataError(
            "ablation_auc needs an xarray.DataArray with a 'fraction' dim. Got "
            f"{type(curve).__name__} with dims {dims}."
        )
    if "fraction" not in curve.coords:
        raise InvalidDataError("The curve given to ablation_auc has no 'fraction' coordinate.")
    fractions = np.asarray(curve["fraction"].values, dtype=np.float64)
    problems = []
    outside = fractions[~((fractions >= 0) & (fractions <= 1))]  # NaN counts as outside
    if outside.size:
        problems.append(f"outside [0, 1]: {outside.tolist()}")
    values, counts = np.unique(fractions[np.isfinite(fractions)], return_counts=True)
    if np.any(counts > 1):
        problems.append(f"repeated: {values[counts > 1].tolist()}")
    missing = [end for end in (0.0, 1.0) if end not in fractions]
    if missing:
        problems.append(f"missing: {missing}")
    if problems:
        raise InvalidDataError(
            "The fractions of a curve given to ablation_auc must be distinct, lie in [0, 1] "
            f"and include both 0 and 1. Got {fractions.tolist()} ({'; '.join(problems)})."
        )
    if not (np.issubdtype(curve.dtype, np.number) or curve.dtype == bool):
        raise InvalidDataError(
            f"The curve given to ablation_auc must hold accuracies. Got dtype {curve.dtype}."
        )
    if not np.all(np.isfinite(curve.values)):
        bad = int((~np.isfinite(curve.values)).sum())
        raise InvalidDataError(
            f"The curve given to ablation_auc holds NaN or Inf accuracies ({bad} values)."
        )
    curve = curve.sortby("fraction")
    base = curve.sel(fraction=0.0, drop=True) if baseline is None else baseline
    if isinstance(base, xr.DataArray) and "fraction" in base.dims:
        raise parameter_error(
            "baseline",
            "ablation_auc",
            "a number or a DataArray without a 'fraction' dim",
            base.dims,
        )
    try:
        base_values = np.asarray(
            base.values if isinstance(base, xr.DataArray) else base, dtype=np.float64
        )
    except (TypeError, ValueError):
        raise parameter_error(
            "baseline", "ablation_auc", "a number or a DataArray of numbers", baseline
        ) from None
    if np.any(base_values == 0) or not np.all(np.isfinite(base_values)):
        raise InvalidDataError(
            "The baseline accuracy of ablation_auc (by default the accuracy at fraction 0) "
            f"must be finite and non-zero. Got {base_values.ravel()[:10].tolist()}."
        )
    area = (curve / base).integrate("fraction")
    return area.rename("ablation_auc")
