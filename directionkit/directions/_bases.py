"""Bases of directions at one site: orthonormal rows ``(direction, unit)``, each labelled
with where it came from.

A *single direction* is, in the paper's words, "the activation of a single unit or
feature map or some linear combination of units".  A basis holds ``k`` such combinations
of a site's ``n_units`` units as orthonormal rows ``U`` (``U @ U.T == I``): the unit
basis (today's single units), a Haar-random rotation, or rows the user gives.  An
intervention along a subset of them acts on the projections ``a @ U.T`` of the site's
activity vector ``a`` (per position for maps and tokens).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_int, parameter_error
from directionkit.adapter import Site
from directionkit.errors import InvalidDataError

#: Largest deviation of ``U @ U.T`` from the identity accepted as orthonormal.
ORTHONORMAL_TOLERANCE = 1e-6


def _labelled(site: Site, rows: np.ndarray, kind: str, **provenance: Any) -> xr.DataArray:
    return xr.DataArray(
        rows,
        dims=("direction", "unit"),
        coords={
            "direction": np.arange(rows.shape[0]),
            "site": ("unit", np.full(site.n_units, site.name, dtype=object).astype(str)),
            "unit_index": ("unit", np.arange(site.n_units)),
        },
        name="basis",
        attrs={"basis": kind, "basis_site": site.name, **provenance},
    )


def _check_site(site: Any, func: str) -> Site:
    if not isinstance(site, Site):
        raise parameter_error("site", func, "a directionkit.Site (adapter.sites[name])", site)
    return site


def units(site: Site) -> xr.DataArray:
    """The unit basis of ``site``: direction ``i`` is unit ``i`` (the identity).

    An intervention along it is exactly today's intervention on single units.

    Examples
    --------
    >>> from directionkit.adapter import Site
    >>> units(Site("fc1", n_units=3)).values.tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    site = _check_site(site, "units")
    return _labelled(site, np.eye(site.n_units), "units")


def random(site: Site, k: int | None = None, seed: int = 0) -> xr.DataArray:
    """``k`` directions of a Haar-random rotation of ``site``'s units (all by default).

    The rows are those of an orthogonal matrix drawn uniformly (Haar measure): the Q of
    the QR decomposition of a standard normal matrix, each column's sign fixed by the
    sign of R's diagonal (Mezzadri, "How to generate random matrices from the classical
    compact groups", Notices AMS 2007; without the sign fix, Q is not uniform).  The
    first ``k`` rows of a Haar rotation are a uniformly random orthonormal ``k``-frame.

    Examples
    --------
    >>> from directionkit.adapter import Site
    >>> basis = random(Site("fc1", n_units=4), k=2, seed=0)
    >>> basis.dims, basis.attrs["basis"], bool(abs(basis.values @ basis.values.T
    ...                                            - np.eye(2)).max() < 1e-12)
    (('direction', 'unit'), 'random', True)
    """
    site = _check_site(site, "random")
    k = site.n_units if k is None else check_int(k, "k", "random", minimum=1)
    if k > site.n_units:
        raise parameter_error("k", "random", f"at most the {site.n_units} units of "
                              f"{site.name!r}", k)  # fmt: skip
    seed = check_int(seed, "seed", "random", minimum=0)
    gaussian = np.random.default_rng(seed).standard_normal((site.n_units, site.n_units))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))  # Mezzadri's fix: Haar, not merely orthogonal
    return _labelled(site, np.ascontiguousarray(q.T[:k]), "random", basis_seed=seed)


def from_array(site: Site, rows: Any, *, orthonormalise: bool = False) -> xr.DataArray:
    """A basis the user gives: rows ``(k, n_units)`` of directions in ``site``'s units.

    The rows must be orthonormal (to :data:`ORTHONORMAL_TOLERANCE`), since an
    intervention removes or clamps the projections onto them; ``orthonormalise=True``
    replaces them by an orthonormal basis of the same nested spans instead (Gram-Schmidt
    in order, by QR: row ``i`` is the part of given row ``i`` orthogonal to the rows
    before it, normalised and with the sign of its projection onto the given row).  Rows
    that are not independent are refused either way.

    Examples
    --------
    >>> from directionkit.adapter import Site
    >>> from_array(Site("fc1", n_units=2), [[3.0, 4.0]], orthonormalise=True).values.tolist()
    [[0.6, 0.8]]
    """
    site = _check_site(site, "from_array")
    array = np.array(rows, dtype=np.float64, ndmin=2)
    if array.ndim != 2 or array.shape[1] != site.n_units or array.shape[0] == 0:
        raise InvalidDataError(
            f"A basis of site {site.name!r} needs rows of shape (k, {site.n_units}) with "
            f"1 <= k <= {site.n_units}. Got shape {np.shape(rows)} instead."
        )
    if array.shape[0] > site.n_units:
        raise InvalidDataError(
            f"A basis of site {site.name!r} has at most {site.n_units} directions (its "
            f"units). Got {array.shape[0]} rows."
        )
    if not np.all(np.isfinite(array)):
        raise InvalidDataError(f"The basis given for site {site.name!r} has NaN or Inf.")
    if orthonormalise:
        q, r = np.linalg.qr(array.T)
        diagonal = np.diag(r)
        scale = np.linalg.norm(array, axis=1)
        dependent = np.flatnonzero(np.abs(diagonal) <= 1e-10 * np.maximum(scale, 1e-300))
        if dependent.size:
            raise InvalidDataError(
                f"The rows given for site {site.name!r} are not independent: row(s) "
                f"{dependent.tolist()} lie in the span of the rows before them."
            )
        array = np.ascontiguousarray((q * np.sign(diagonal)).T)
    else:
        error = float(np.abs(array @ array.T - np.eye(array.shape[0])).max())
        if error > ORTHONORMAL_TOLERANCE:
            raise InvalidDataError(
                f"The rows given for site {site.name!r} are not orthonormal (U @ U.T "
                f"differs from the identity by {error:.3g}); pass orthonormalise=True to "
                "use an orthonormal basis of the same spans."
            )
    return _labelled(site, array, "array", basis_orthonormalised=bool(orthonormalise))
