"""Bases measured on data: the principal components of a site's activity, and the
orthonormalised differences of its class-conditional means."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_int, parameter_error
from directionkit.adapter import (
    ModelAdapter,
    Site,
    SupportsElementRecording,
    units_last,
)
from directionkit.directions._bases import _labelled
from directionkit.errors import InvalidDataError, SiteNotFoundError, UnsupportedModelError
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import find_sites
from directionkit.metrics import ClassConditionalSums, UnitCovariance
from directionkit.metrics._covariance import sign_fixed

#: Variance, relative to the largest, at or below which a direction counts as without
#: activity (float32 rounding of the activations leaves about 1e-14 there).
NO_VARIANCE = 1e-9


def _site_of(adapter: ModelAdapter, batches: Batches, site: Any, func: str) -> str:
    find_sites(adapter, batches)
    name = site.name if hasattr(site, "name") else site
    if not isinstance(name, str):
        raise parameter_error("site", func, "a site name (or a Site of the adapter)", site)
    if name not in adapter.sites:
        raise SiteNotFoundError(name, adapter.sites)
    return name


def pca(
    adapter: ModelAdapter,
    data: Any,
    site: Any,
    k: int | None = None,
    *,
    batch_size: int | None = None,
) -> xr.DataArray:
    """The ``k`` principal components of ``site``'s activity over ``data`` (all by default).

    The activity vectors are the site's units at every position (each spatial position of
    a map, each token), pooled over examples: the vectors an intervention along the basis
    acts on.  Their covariance is streamed batch by batch
    (:class:`~directionkit.metrics.UnitCovariance`); components come in decreasing order
    of variance, each sign fixed (largest entry positive).  The paper's training set is
    the natural ``data``.

    Directions along which the activity does not vary (variance at most
    :data:`NO_VARIANCE` times the largest: fewer activity vectors than units, dead units)
    are not determined by the data: an eigensolver returns any basis of that space, and
    rounding picks it.  They are instead the unit directions orthogonalised against the
    components, in unit order (:func:`_completion`), so the basis is the same wherever it
    is computed; ``attrs["basis_rank"]`` counts the components before them.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(4,), n_classes=2, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> basis = pca(net, (X, net.predict(X)), "hidden0", k=2)
    >>> basis.shape, basis.attrs["basis"]
    ((2, 4), 'pca')
    """
    batches = Batches(data, batch_size, "pca")
    name = _site_of(adapter, batches, site, "pca")
    return pca_bases(adapter, batches, [name], k)[name]


def pca_bases(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str], k: int | None = None
) -> dict[str, xr.DataArray]:
    """:func:`pca` of every site in ``names``, from one pass over ``batches``."""
    covariances, widths = {}, {}
    for name in names:
        info = adapter.sites[name]
        widths[name] = info.n_units if k is None else check_int(k, "k", "pca", minimum=1)
        if widths[name] > info.n_units:
            raise parameter_error(
                "k", "pca", f"at most the {info.n_units} units of {name!r}", widths[name]
            )
        flat = info.shape is None or len(info.shape) == 1
        if not flat and not isinstance(adapter, SupportsElementRecording):
            raise UnsupportedModelError(
                f"pca needs the activity of site {name!r} at every position, and "
                f"{type(adapter).__name__} cannot record elements (no record_elements method)."
            )
        covariances[name] = UnitCovariance(info.n_units)
    for x, _ in batches:
        if isinstance(adapter, SupportsElementRecording):
            elements = adapter.record_elements(x, list(names))
            for name, covariance in covariances.items():
                values = units_last(adapter.sites[name], np.asarray(elements[name], np.float64))
                covariance.update(values.reshape(-1, covariance.n_units))
        else:
            recorded = adapter.run(x, record=list(names)).activations
            for name, covariance in covariances.items():
                covariance.update(np.asarray(recorded[name]))
    return {name: _components(adapter.sites[name], c, widths[name])
            for name, c in covariances.items()}  # fmt: skip


def _components(info: Site, covariance: UnitCovariance, k: int) -> xr.DataArray:
    """The ``k`` components of one site, completed past the activity's rank."""
    if covariance.count < 2:
        raise InvalidDataError(f"pca needs at least 2 activity vectors of site {info.name!r}.")
    variances = covariance.explained_variance()
    rank = int(np.count_nonzero(variances > NO_VARIANCE * max(float(variances[0]), 0.0)))
    rows = covariance.principal_components(min(k, rank)) if rank else np.zeros((0, info.n_units))
    if k > rank:
        rows = np.concatenate([rows, _completion(rows, info.n_units)[: k - rank]])
    return _labelled(info, rows, "pca", basis_vectors=int(covariance.count), basis_rank=rank)


def _completion(rows: np.ndarray, n: int) -> np.ndarray:
    """``n - len(rows)`` orthonormal rows completing ``rows`` to a basis of every unit: the
    columns after ``rows`` of the Q of a (Householder) QR decomposition of ``[rows;
    identity]`` transposed, signs fixed by R's diagonal -- the unit directions, in unit
    order, orthogonalised against ``rows``.  A function of ``rows`` alone, continuous in
    them, so a basis computed twice with rounding differences differs by as little."""
    q, r = np.linalg.qr(np.concatenate([rows, np.eye(n)]).T, mode="complete")
    # a unit direction already in the span gives a zero on R's diagonal: keep that sign
    signs = np.where(np.diag(r)[rows.shape[0] : n] < 0, -1.0, 1.0)
    return (q[:, rows.shape[0] : n] * signs).T


def class_means(
    adapter: ModelAdapter, data: Any, site: Any, *, batch_size: int | None = None
) -> xr.DataArray:
    """Orthonormal directions spanning the differences of ``site``'s class-conditional means.

    With ``mu_c`` each class's mean activity (averaged over positions, as
    ``class_mean`` is) and ``mu`` their mean weighted by class counts, the rows of
    ``mu_c - mu`` span the between-class space (at most ``C - 1`` directions).  The basis
    is its right singular vectors, in decreasing order of between-class spread, signs
    fixed (largest entry positive), those of singular value below ``1e-10`` times the
    largest dropped.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(6,), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(90, 3))
    >>> class_means(net, (X, net.predict(X)), "hidden0").shape
    (2, 6)
    """
    batches = Batches(data, batch_size, "class_means")
    name = _site_of(adapter, batches, site, "class_means")
    return class_mean_bases(adapter, batches, [name])[name]


def class_mean_bases(
    adapter: ModelAdapter, batches: Batches, names: Sequence[str]
) -> dict[str, xr.DataArray]:
    """:func:`class_means` of every site in ``names``, from one pass over ``batches``."""
    sums: dict[str, ClassConditionalSums] = {}
    for x, y in batches:
        out = adapter.run(x, record=list(names))
        for name in names:  # as many classes as the model has outputs
            values = np.asarray(out.activations[name], np.float64)
            sums.setdefault(name, ClassConditionalSums(values.shape[1], out.logits.shape[-1]))
            sums[name].update(values, y)
    return {name: _between_classes(adapter.sites[name], sums[name]) for name in names}


def _between_classes(info: Site, sums: ClassConditionalSums) -> xr.DataArray:
    """The orthonormal span of one site's class-mean differences (see :func:`class_means`)."""
    present = sums.counts > 0
    if np.count_nonzero(present) < 2:
        raise InvalidDataError(
            "class_means needs examples of at least 2 classes; the data hold "
            f"{np.flatnonzero(present).tolist()}."
        )
    n = sums.counts[present]
    means = (sums.sums[:, present] / n).T  # (classes, units)
    centred = (means - (n @ means) / n.sum()) * np.sqrt(n / n.sum())[:, None]
    _, values, vectors = np.linalg.svd(centred, full_matrices=False)
    keep = values > 1e-10 * max(values[0], np.finfo(np.float64).tiny)
    if not np.any(keep):
        raise InvalidDataError(f"The class means of site {info.name!r} do not differ.")
    rows = sign_fixed(vectors[keep])
    return _labelled(info, rows, "class-means", basis_classes=int(np.count_nonzero(present)))
