"""A model seen along bases of directions: an adapter whose sites' units are directions.

:func:`along` wraps any :class:`~directionkit.adapter.ModelAdapter`.  At a site given a
basis ``U`` of ``k`` directions the wrapped adapter has ``k`` units, unit ``i`` being
direction ``i``: an intervention on it acts on the projections ``a @ U.T`` (see
:meth:`Interventions.along`, applied by the wrapped adapter in its own pass), and the
recorded activity of unit ``i`` is the projection onto direction ``i``.  Every experiment
then runs along the directions unchanged: ablation curves, noise, importance and
selectivity of single directions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from directionkit.adapter import (
    Interventions,
    LinearChain,
    ModelAdapter,
    RunOutput,
    Site,
    SupportsElementRecording,
    SupportsLazySites,
    SupportsLinearChain,
    check_basis,
    check_request,
    direction_site,
)
from directionkit.directions._bases import from_array
from directionkit.errors import InvalidParameterError, SiteNotFoundError


class AlongDirections:
    """``adapter`` with the sites named in ``bases`` read along their directions.

    Build it with :func:`along`.  Sites without a basis keep their units.

    Attributes
    ----------
    adapter : ModelAdapter
        The wrapped adapter.
    bases : dict of str to ndarray
        Per site, its orthonormal directions ``(k, n_units)``.
    """

    def __init__(self, adapter: ModelAdapter, bases: Mapping[str, np.ndarray]) -> None:
        self.adapter = adapter
        self.bases = dict(bases)
        # checked for the seam once here, not on every run (U U^T is cubic in the width);
        # None where a basis is the units themselves
        self._checked = {n: check_basis(u, u.shape[0], n) for n, u in self.bases.items()}
        self._sites = {
            name: direction_site(site, self.bases[name].shape[0]) if name in self.bases else site
            for name, site in adapter.sites.items()
        }

    @property
    def sites(self) -> Mapping[str, Site]:
        """The wrapped adapter's sites, those with a basis holding one unit per direction."""
        return self._sites

    def run(
        self, x: Any, interventions: Interventions | None = None, record: Sequence[str] = ()
    ) -> RunOutput:
        """Logits ``(M, B, C)`` with ``interventions`` on the directions, and the recorded
        projections ``(B, k)`` (see :mod:`directionkit.adapter`)."""
        check_request(self._sites, interventions, record)
        inner = interventions
        if interventions is not None:
            rotated = {
                n: checked for n in interventions.sites
                if (checked := self._checked.get(n)) is not None
            }  # fmt: skip
            inner = interventions.along(rotated) if rotated else interventions
        out = self.adapter.run(x, inner, record)
        return RunOutput(out.logits, self._projected(out.activations, reduced=True))

    def linear_chain(self) -> LinearChain | None:
        """The wrapped adapter's :class:`~directionkit.adapter.LinearChain` with the bases
        (so plain ReLU MLPs keep their incremental path along directions), or None."""
        if not isinstance(self.adapter, SupportsLinearChain):
            return None
        chain = self.adapter.linear_chain()
        return None if chain is None else replace(chain, bases={**chain.bases, **self.bases})

    def _projected(self, values: Mapping[str, Any], reduced: bool) -> dict[str, np.ndarray]:
        projected = {}
        for name, value in values.items():
            array = np.asarray(value)
            if name in self.bases:
                basis = self.bases[name].astype(np.result_type(array.dtype, np.float32))
                axis = -1 if reduced else 1 + self._sites[name].unit_axis_in(array.ndim - 1)
                array = np.moveaxis(np.moveaxis(array, axis, -1) @ basis.T, -1, axis)
            projected[name] = array
        return projected


class _AlongDirectionsWithElements(AlongDirections):
    """:class:`AlongDirections` over an adapter that records elements."""

    def record_elements(self, x: Any, sites: Sequence[str]) -> dict[str, np.ndarray]:
        """The clean projections of every element ``(B, *shape with k on the unit axis)``."""
        check_request(self._sites, None, sites)
        assert isinstance(self.adapter, SupportsElementRecording)
        return self._projected(self.adapter.record_elements(x, sites), reduced=False)


def along(adapter: ModelAdapter, bases: Mapping[str, Any]) -> AlongDirections:
    """``adapter`` seen along ``bases``: each named site's units become its directions.

    Parameters
    ----------
    adapter : ModelAdapter
        Any adapter whose sites are known (a torch adapter finds them on its first run).
    bases : mapping of str to DataArray or array of shape (k, n_units)
        Per site, orthonormal directions of its units: :func:`units`, :func:`random`,
        :func:`pca`, :func:`class_means`, or rows of your own (checked to be
        orthonormal; see :func:`from_array`).

    Returns
    -------
    AlongDirections
        An adapter: pass it to any experiment (``ablation_curve``, ``noise_curve``,
        ``unit_importance``, ``activation_statistics``) to measure single directions.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit import directions
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(4,), n_classes=2, seed=0)
    >>> rotated = directions.along(net, {"hidden0": directions.random(net.sites["hidden0"], k=2)})
    >>> rotated.sites["hidden0"].n_units, rotated.run(np.ones((5, 3))).logits.shape
    (2, (1, 5, 2))
    """
    if isinstance(adapter, AlongDirections):
        raise InvalidParameterError(
            "The 'adapter' of along is already seen along directions; give the bases of "
            "every site to one call of along on the model's own adapter."
        )
    if isinstance(adapter, SupportsLazySites) and adapter.sites_pending:
        raise InvalidParameterError(
            "The sites of the 'adapter' of along are not known yet; run it once on a batch "
            "(adapter.run(x)) or name its sites, then build the bases from adapter.sites."
        )
    if not isinstance(bases, Mapping):
        raise InvalidParameterError(
            f"The 'bases' parameter of along must map site names to bases. Got "
            f"{type(bases).__name__} instead."
        )
    checked = {}
    for name, basis in bases.items():
        if name not in adapter.sites:
            raise SiteNotFoundError(name, adapter.sites)
        if isinstance(basis, xr.DataArray):
            given = basis.attrs.get("basis_site", name)
            if given != name:
                raise InvalidParameterError(
                    f"The basis given for site {name!r} was made for site {given!r}."
                )
        checked[name] = np.asarray(from_array(adapter.sites[name], np.asarray(basis)).values)
    if isinstance(adapter, SupportsElementRecording):
        return _AlongDirectionsWithElements(adapter, checked)
    return AlongDirections(adapter, checked)
