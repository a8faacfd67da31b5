"""Normalised area under an ablation curve."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import parameter_error
from directionkit.errors import InvalidDataError


def ablation_auc(
    curve: xr.DataArray, *, baseline: Any = None, chance: Any = None
) -> xr.DataArray:
    """Normalised area under an accuracy-vs-fraction-ablated curve.

    The accuracy is divided by the unablated accuracy (``baseline``, by default the
    curve's value at fraction 0) and integrated over the fraction with the trapezoid
    rule -- the paper's AUC.  Fractions must lie in [0, 1] and span it (0 and 1 both
    present), so an AUC of 1 means no loss at all and the AUC of a curve that drops at
    once to chance ``c`` is about ``c / baseline``: a model *at* chance, whose curve
    stays at chance, scores about 1.

    With ``chance``, the accuracy is first mapped so that the baseline is 1 and chance 0,
    ``(a - chance) / (baseline - chance)``, then integrated: the chance-corrected AUC, 1
    for no loss and 0 for a curve at chance from the first fraction on.  It is NaN where
    the baseline is not above chance (nothing to lose).

    Parameters
    ----------
    curve : xarray.DataArray
        Accuracies with a ``fraction`` dim and any others (``scope``, ``ordering``, ...).
    baseline : float or xarray.DataArray, optional
        The unablated accuracy, broadcast against the curve without ``fraction``.
    chance : float or xarray.DataArray, optional
        The chance accuracy (:func:`directionkit.metrics.chance_accuracy`).

    Returns
    -------
    xarray.DataArray
        The curve's other dims, name ``"ablation_auc"`` (``"ablation_auc_corrected"``
        with ``chance``).

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
    >>> round(float(ablation_auc(curve, chance=0.1)), 6)  # (0.8, 0.4, 0.1) -> (1, 3/7, 0)
    0.464286
    >>> flat = xr.DataArray([0.1, 0.1, 0.1], dims="fraction", coords={"fraction": [0, .5, 1]})
    >>> float(ablation_auc(flat)), float(ablation_auc(flat, chance=0.1))  # a model at chance
    (1.0, nan)
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
    if chance is None:
        area = (curve / base).integrate("fraction")
        return area.rename("ablation_auc")
    if isinstance(chance, xr.DataArray) and "fraction" in chance.dims:
        raise parameter_error(
            "chance", "ablation_auc", "a number or a DataArray without a 'fraction' dim",
            chance.dims,
        )  # fmt: skip
    room = base - chance
    above = room.where(room > 0) if isinstance(room, xr.DataArray) else (
        room if np.all(np.asarray(room) > 0) else np.nan
    )  # fmt: skip
    area = ((curve - chance) / above).integrate("fraction")
    return area.rename("ablation_auc_corrected")
