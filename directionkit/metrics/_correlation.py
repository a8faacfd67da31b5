"""Spearman rank correlation between per-unit measures, overall and per site."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from directionkit.errors import InvalidDataError, InvalidParameterError


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, ties given the mean of their ranks (scipy's ``rankdata``).

    Here rather than :func:`scipy.stats.rankdata`: importing ``scipy.stats`` takes about a
    second, which every process that imports directionkit (a CLI call, a sweep worker)
    would pay.

    Examples
    --------
    >>> _average_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist()
    [3.5, 1.0, 3.5, 2.0]
    """
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1  # tie group of each sorted value
    bounds = np.r_[np.flatnonzero(starts), x.size]  # first position of each group, then n
    mean_rank = (bounds[:-1] + bounds[1:] + 1) / 2  # of positions a..b-1, ranked from 1
    ranks = np.empty(x.size)
    ranks[order] = mean_rank[group]
    return ranks


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method
    (Numerical Recipes, 3rd ed., section 6.4); converges fast for x < (a + 1) / (a + b + 2)."""
    tiny = 1e-300

    def guarded(value: float) -> float:
        return tiny if abs(value) < tiny else value

    c, d = 1.0, 1.0 / guarded(1.0 - (a + b) * x / (a + 1.0))
    h = d
    for m in range(1, 100_000):
        even = m * (b - m) * x / ((a - 1.0 + 2 * m) * (a + 2 * m))
        d = 1.0 / guarded(1.0 + even * d)
        c = guarded(1.0 + even / c)
        h *= d * c
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1.0 + 2 * m))
        d = 1.0 / guarded(1.0 + odd * d)
        c = guarded(1.0 + odd / c)
        h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b).

    Here rather than :func:`scipy.special.betainc`: importing ``scipy.special`` takes
    0.2-0.4 s, a fifth of ``directionkit show``; checked against it in the tests.

    Examples
    --------
    >>> round(regularized_beta(2.0, 3.0, 0.4), 10)  # 1 - (1 - x)^3 (1 + 3x) at a=2, b=3
    0.5248
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom:
    ``I_{df / (df + t^2)}(df / 2, 1 / 2)``.

    Examples
    --------
    >>> round(t_two_sided(2.0, 10), 6), t_two_sided(0.0, 5)
    (0.073388, 1.0)
    """
    return regularized_beta(df / 2.0, 0.5, df / (df + t * t))


def _rho_p(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    keep = ~(np.isnan(a) | np.isnan(b))  # as scipy's nan_policy='omit'; Inf ranks last
    a, b = a[keep], b[keep]
    n = int(a.size)
    if n < 3:
        return np.nan, np.nan, n
    ra, rb = _average_ranks(a) - (n + 1) / 2, _average_ranks(b) - (n + 1) / 2
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    if denominator == 0:  # a constant input has no ranks to correlate
        return np.nan, np.nan, n
    rho = float(np.clip((ra * rb).sum() / denominator, -1.0, 1.0))
    if abs(rho) == 1.0:
        return rho, 0.0, n
    t = rho * np.sqrt((n - 2) / (1 - rho**2))
    return rho, t_two_sided(float(t), n - 2), n


def spearman(a: Any, b: Any, *, by: str | None = "site") -> xr.Dataset:
    """Spearman rank correlation of two per-unit measures, overall and per group.

    Parameters
    ----------
    a, b : xarray.DataArray (unit,) or 1-d array-like
        Per-unit measures of the same units, e.g. selectivity and importance.
    by : str or None
        A coordinate along ``unit`` to group by (default ``"site"``: one correlation
        per layer).  When ``by`` is left at ``"site"`` and there is no such coordinate
        only the overall value is returned; any other missing name is an error.

    Returns
    -------
    xarray.Dataset
        Along dim ``scope`` (``"all"``, then each group in order of appearance):
        ``rho``, ``p_value`` (two-sided, from the t distribution with n - 2 degrees of
        freedom, as :func:`scipy.stats.spearmanr`), and ``n`` (pairs used).  Pairs with
        a NaN are dropped; a group with fewer than 3 pairs or a constant measure gets
        NaN.

    Examples
    --------
    >>> import xarray as xr
    >>> site = ("unit", ["a", "a", "a", "b", "b", "b"])
    >>> x = xr.DataArray([1., 2, 3, 4, 5, 6], dims="unit", coords={"site": site})
    >>> y = xr.DataArray([1., 3, 2, 6, 5, 4], dims="unit", coords={"site": site})
    >>> spearman(x, y)["rho"].values.round(3).tolist()
    [0.714, 0.5, -1.0]
    """
    arrays = []
    for name, value in (("a", a), ("b", b)):
        array = (
            value
            if isinstance(value, xr.DataArray)
            else xr.DataArray(np.asarray(value, dtype=np.float64), dims="unit")
        )
        if array.dims != ("unit",):
            raise InvalidDataError(
                f"{name!r} of spearman must be 1-d along 'unit'. Got dims {array.dims}."
            )
        arrays.append(array)
    first, second = arrays
    if first.sizes["unit"] != second.sizes["unit"]:
        raise InvalidDataError(
            f"'a' and 'b' of spearman must measure the same units. Got {first.sizes['unit']} "
            f"and {second.sizes['unit']} units."
        )
    va, vb = first.values.astype(np.float64), second.values.astype(np.float64)
    groups: list[tuple[str, np.ndarray]] = [("all", np.ones(va.size, bool))]
    if by is not None:
        coords = first.coords if by in first.coords else second.coords
        if by in coords and coords[by].dims != ("unit",):
            raise InvalidParameterError(
                f"The 'by' parameter of spearman must name a coordinate along 'unit'. Got "
                f"{by!r}, a coordinate with dims {coords[by].dims}."
            )
        if by in coords:
            labels = np.asarray(coords[by].values).astype(str)
            for label in dict.fromkeys(labels.tolist()):
                groups.append((label, labels == label))
        elif by != "site":
            raise InvalidParameterError(
                f"The 'by' parameter of spearman must name a coordinate along 'unit'. Got "
                f"{by!r}; the coordinates are {sorted(map(str, first.coords))}."
            )
    results = [_rho_p(va[mask], vb[mask]) for _, mask in groups]
    return xr.Dataset(
        {
            "rho": ("scope", [r[0] for r in results]),
            "p_value": ("scope", [r[1] for r in results]),
            "n": ("scope", np.array([r[2] for r in results], dtype=np.int64)),
        },
        coords={"scope": [g[0] for g in groups]},
    )
