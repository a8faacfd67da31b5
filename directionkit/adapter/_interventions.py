"""What an adapter applies at its sites: :class:`Interventions`, M rows of per-unit
``scale``, ``shift``, ``noise_std`` (and element templates), optionally read along a basis
of directions, and the check of a run request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from directionkit._utils.validation import check_int, parameter_error
from directionkit.adapter._site import Site, direction_site, element_shape_ok
from directionkit.errors import InvalidParameterError, SiteNotFoundError

#: Largest deviation of ``U @ U.T`` from the identity accepted for a basis (float32 rows
#: of a few thousand units stay well inside it).
BASIS_TOLERANCE = 1e-5


def _site_units(sites: Mapping[str, Site] | Mapping[str, int]) -> dict[str, int]:
    return {
        name: (
            s.n_units
            if isinstance(s, Site)
            else check_int(s, "n_units", "Interventions", minimum=1)
        )
        for name, s in sites.items()
    }


def _as_rows(
    values: Any, name: str, site: str, n_units: int, dtype: type = np.float64
) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=dtype)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != n_units:
        raise InvalidParameterError(
            f"The {name!r} of site {site!r} must have shape (M, {n_units}). "
            f"Got shape {np.shape(values)} instead."
        )
    return array


class _CheckedBasis(np.ndarray):
    """A basis :class:`Interventions` has checked (our own copy), so that the copies
    :meth:`Interventions.rows` and :meth:`Interventions.for_batch` make do not check
    ``U @ U.T`` again (cubic in the site's width)."""


def check_basis(rows: Any, width: int, site: str) -> np.ndarray | None:
    """``rows`` checked as a basis of ``width`` orthonormal directions of ``site``'s units,
    as an array :meth:`Interventions.along` takes without checking it again; None for the
    identity (the units themselves: the unit intervention, bit for bit).

    Examples
    --------
    >>> check_basis(np.eye(2), 2, "a") is None, check_basis([[0.6, 0.8]], 1, "a").shape
    (True, (1, 2))
    """
    if isinstance(rows, _CheckedBasis) and rows.shape[0] == width:
        return rows  # checked when first given (rows(), for_batch(), a wrapped adapter)
    array = np.asarray(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != width or array.shape[1] < width:
        raise InvalidParameterError(
            f"The 'basis' of site {site!r} must have shape ({width}, n_units) with n_units "
            f">= {width}: one direction per column of its terms. Got {np.shape(rows)}."
        )
    if not np.all(np.isfinite(array)):
        raise InvalidParameterError(f"The 'basis' of site {site!r} has NaN or Inf.")
    if array.shape[1] == width and np.array_equal(array, np.eye(width)):
        return None
    error = float(np.abs(array @ array.T - np.eye(width)).max())
    if error > BASIS_TOLERANCE:
        raise InvalidParameterError(
            f"The 'basis' of site {site!r} must have orthonormal rows (U @ U.T = I to "
            f"{BASIS_TOLERANCE:g}); it differs from the identity by {error:.3g}. "
            "directionkit.directions.from_array(..., orthonormalise=True) makes them so."
        )
    checked: np.ndarray = np.array(array, dtype=np.float64, order="C").view(_CheckedBasis)
    return checked


@dataclass(frozen=True)
class Interventions:
    """M interventions on any number of sites, evaluated in one pass.

    Parameters
    ----------
    scale, shift, noise_std : mapping of str to ndarray of shape (M, n_units)
        Per site, the terms of ``a' = a * scale + shift + noise_std * eps``.
        All three mappings name the same sites, and every array has the same M.
    seed : int
        Seed of the noise ``eps`` (see :meth:`standard_normal`).
    row_offset : int
        Absolute index of row 0, set by :meth:`rows` so that a chunk of rows draws
        the same noise as the same rows of the whole.
    batch : int
        Index of the data batch these interventions are applied to, set by
        :meth:`for_batch`, so that every batch of a pass draws fresh noise.
    fill : mapping of str to ndarray, optional
        Per site (a subset of the intervened sites), an element template of the shape
        of one example's activation (:attr:`Site.shape`): the value a unit takes, element
        by element, where its ``scale`` is 0 (the term ``(1 - scale) * fill``).
    basis : mapping of str to ndarray of shape (k, n_units), optional
        Per site (a subset of the intervened sites), ``k`` orthonormal directions ``U``
        of its units (rows).  The site's terms are then ``(M, k)``, one per direction,
        and act on the projections ``p = a @ U.T`` of the activity vector ``a`` at each
        position: ``a' = a + (p' - p) @ U`` with ``p' = p * scale + shift +
        (1 - scale) * fill + noise_std * eps`` (``fill`` and ``eps`` then hold ``k`` on
        the unit axis).  The part of ``a`` outside the directions' span is kept.  A
        basis equal to the identity is dropped: the units themselves, exactly the unit
        intervention, no projection computed.  See :meth:`along`.

    Use the constructors :meth:`zero_ablate`, :meth:`mean_ablate`, :meth:`noise`
    and :meth:`identity` rather than building the arrays by hand.

    Examples
    --------
    >>> import numpy as np
    >>> iv = Interventions.noise({"fc1": np.array([1.0, 2.0])}, scales=[0.0, 0.5], seed=3)
    >>> iv.noise_std["fc1"]
    array([[0. , 0. ],
           [0.5, 1. ]])
    >>> iv.rows(1, 2).n_interventions
    1
    """

    scale: Mapping[str, np.ndarray]
    shift: Mapping[str, np.ndarray]
    noise_std: Mapping[str, np.ndarray]
    seed: int = 0
    row_offset: int = 0
    batch: int = 0
    fill: Mapping[str, np.ndarray] = field(default_factory=dict)
    basis: Mapping[str, np.ndarray] = field(default_factory=dict)
    _m: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        names = list(self.scale)
        if not names:
            raise InvalidParameterError("Interventions need at least one site.")
        if set(self.shift) != set(names) or set(self.noise_std) != set(names):
            raise InvalidParameterError(
                "The 'scale', 'shift' and 'noise_std' of Interventions must name the same sites. "
                f"Got {sorted(self.scale)}, {sorted(self.shift)} and {sorted(self.noise_std)}."
            )
        check_int(self.seed, "seed", "Interventions", minimum=0)
        check_int(self.row_offset, "row_offset", "Interventions", minimum=0)
        check_int(self.batch, "batch", "Interventions", minimum=0)
        ms = set()
        for name in names:
            n_units = np.shape(self.scale[name])[-1]
            for term in ("scale", "shift", "noise_std"):
                array = _as_rows(getattr(self, term)[name], term, name, n_units)
                if not np.all(np.isfinite(array)):
                    raise InvalidParameterError(
                        f"The {term!r} of site {name!r} must be finite; it holds NaN or Inf."
                    )
                if term == "noise_std" and np.any(array < 0):
                    raise InvalidParameterError(
                        f"The 'noise_std' of site {name!r} must be >= 0. Got {array.min()!r}."
                    )
                ms.add(array.shape[0])
        if len(ms) != 1:
            raise InvalidParameterError(
                f"Every array of Interventions must have the same M (rows). Got {sorted(ms)}."
            )
        object.__setattr__(self, "_m", ms.pop())
        fill = {}
        for name, template in dict(self.fill).items():
            if name not in self.scale:
                raise InvalidParameterError(
                    f"The 'fill' of Interventions names site {name!r}, which has no 'scale'; "
                    f"fill templates go with intervened sites {sorted(self.scale)}."
                )
            array = np.asarray(template, dtype=np.float64)
            if array.ndim == 0 or not np.all(np.isfinite(array)):
                raise InvalidParameterError(
                    f"The 'fill' of site {name!r} must be a finite array of the shape of one "
                    f"example's activation. Got {np.shape(template)}"
                    f"{'' if array.ndim == 0 else ' holding NaN or Inf'} instead."
                )
            fill[name] = array
        object.__setattr__(self, "fill", fill)
        object.__setattr__(self, "basis", self._checked_basis())

    def _checked_basis(self) -> dict[str, np.ndarray]:
        basis: dict[str, np.ndarray] = {}
        for name, rows in dict(self.basis).items():
            if name not in self.scale:
                raise InvalidParameterError(
                    f"The 'basis' of Interventions names site {name!r}, which has no 'scale'; "
                    f"bases go with intervened sites {sorted(self.scale)}."
                )
            checked = check_basis(rows, self.width(name), name)
            if checked is not None:
                basis[name] = checked
        return basis

    # -- constructors -------------------------------------------------------------
    @classmethod
    def identity(cls, sites: Mapping[str, Site] | Mapping[str, int], n: int = 1) -> Interventions:
        """``n`` interventions that leave every unit of ``sites`` unchanged.

        Examples
        --------
        >>> Interventions.identity({"fc1": 2}, n=3).scale["fc1"].shape
        (3, 2)
        """
        n = check_int(n, "n", "Interventions.identity", minimum=1)
        units = _site_units(sites)
        return cls(
            scale={s: np.ones((n, u)) for s, u in units.items()},
            shift={s: np.zeros((n, u)) for s, u in units.items()},
            noise_std={s: np.zeros((n, u)) for s, u in units.items()},
        )

    @classmethod
    def zero_ablate(
        cls,
        sites: Mapping[str, Site] | Mapping[str, int],
        ablated: Mapping[str, Any],
    ) -> Interventions:
        """Clamp the units where ``ablated`` is True to zero.

        Parameters
        ----------
        sites : mapping of str to Site (or to n_units)
            The model's sites; names in ``ablated`` must be among them.
        ablated : mapping of str to bool array of shape (M, n_units)
            True where a unit is clamped in that intervention row.

        Examples
        --------
        >>> iv = Interventions.zero_ablate({"a": 2, "b": 1}, {"a": [[True, False], [False, False]]})
        >>> iv.scale["a"].tolist(), iv.shift["a"].tolist()
        ([[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]])
        """
        masks = cls._masks(sites, ablated, "zero_ablate")
        return cls(
            scale={s: (~m).astype(np.float64) for s, m in masks.items()},
            shift={s: np.zeros(m.shape) for s, m in masks.items()},
            noise_std={s: np.zeros(m.shape) for s, m in masks.items()},
        )

    @classmethod
    def mean_ablate(
        cls,
        sites: Mapping[str, Site] | Mapping[str, int],
        ablated: Mapping[str, Any],
        means: Mapping[str, Any],
    ) -> Interventions:
        """Clamp the units where ``ablated`` is True to their mean activity.

        Parameters
        ----------
        sites : mapping of str to Site (or to n_units)
        ablated : mapping of str to bool array of shape (M, n_units)
        means : mapping of str to array
            The value each clamped unit takes (e.g. its mean over the training set):
            of shape ``(n_units,)``, one value per unit (a conv map gets the same value
            at every element), or an element template of the shape of one example's
            activation (:attr:`Site.shape`, e.g. ``(C, H, W)``: every element of a map
            gets its own value, the paper's A.1 definition), given as ``fill``.

        Examples
        --------
        >>> iv = Interventions.mean_ablate({"a": 2}, {"a": [[True, False]]}, {"a": [0.5, 2.0]})
        >>> iv.scale["a"].tolist(), iv.shift["a"].tolist()
        ([[0.0, 1.0]], [[0.5, 0.0]])
        >>> conv = {"c": Site("c", 2, "conv", shape=(2, 1, 2))}
        >>> template = np.array([[[1.0, 3.0]], [[5.0, 7.0]]])
        >>> iv = Interventions.mean_ablate(conv, {"c": [[True, False]]}, {"c": template})
        >>> iv.shift["c"].tolist(), iv.fill["c"].shape
        ([[0.0, 0.0]], (2, 1, 2))
        """
        masks = cls._masks(sites, ablated, "mean_ablate")
        shift, fill = {}, {}
        for name, mask in masks.items():
            if name not in means:
                raise InvalidParameterError(
                    f"The 'means' of mean_ablate must give a mean for site {name!r}."
                )
            mean = np.asarray(means[name], dtype=np.float64)
            site = sites[name]
            n_units = mask.shape[1]
            if mean.shape == (n_units,):
                shift[name] = mask * mean[None, :]
                continue
            as_site = site if isinstance(site, Site) else Site(name, n_units, "dense")
            if mean.ndim < 2 or not element_shape_ok(as_site, mean.shape):
                expected = "" if as_site.shape is None else f" or {as_site.shape}"
                raise InvalidParameterError(
                    f"The 'means' of site {name!r} must have shape ({n_units},) (one value per "
                    f"unit) or the shape of one example's activation{expected}. "
                    f"Got {mean.shape} instead."
                )
            shift[name] = np.zeros(mask.shape)
            fill[name] = mean
        return cls(
            scale={s: (~m).astype(np.float64) for s, m in masks.items()},
            shift=shift,
            noise_std={s: np.zeros(m.shape) for s, m in masks.items()},
            fill=fill,
        )

    @classmethod
    def noise(
        cls, unit_std: Mapping[str, Any], scales: Sequence[float] | np.ndarray, seed: int = 0
    ) -> Interventions:
        """Add N(0, (s * sd_unit)^2) to every unit, one intervention row per scale ``s``.

        Parameters
        ----------
        unit_std : mapping of str to array of shape (n_units,)
            Each unit's standard deviation (over the training set).
        scales : sequence of float >= 0, length M
        seed : int

        Examples
        --------
        >>> Interventions.noise({"a": [2.0]}, scales=[0.0, 1.0]).noise_std["a"].tolist()
        [[0.0], [2.0]]
        """
        s = np.asarray(scales, dtype=np.float64)
        if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)) or np.any(s < 0):
            raise parameter_error(
                "scales",
                "Interventions.noise",
                "a non-empty 1-d sequence of finite floats >= 0",
                scales,
            )
        std = {name: np.asarray(v, dtype=np.float64) for name, v in unit_std.items()}
        return cls(
            scale={n: np.ones((s.size, v.size)) for n, v in std.items()},
            shift={n: np.zeros((s.size, v.size)) for n, v in std.items()},
            noise_std={n: s[:, None] * v[None, :] for n, v in std.items()},
            seed=seed,
        )

    @staticmethod
    def _masks(
        sites: Mapping[str, Site] | Mapping[str, int], ablated: Mapping[str, Any], func: str
    ) -> dict[str, np.ndarray]:
        units = _site_units(sites)
        masks = {}
        for name, mask in ablated.items():
            if name not in units:
                raise SiteNotFoundError(name, units)
            array = np.asarray(mask)
            if array.dtype != bool:
                if not np.all(np.isin(array, (0, 1))):
                    raise parameter_error(
                        "ablated",
                        f"Interventions.{func}",
                        "boolean masks (True = ablate)",
                        f"values other than 0/1 for site {name!r}",
                    )
                array = array.astype(bool)
            masks[name] = _as_rows(array, "ablated mask", name, units[name], dtype=bool)
        return masks

    # -- access -------------------------------------------------------------------
    @property
    def n_interventions(self) -> int:
        """M, the number of intervention rows."""
        return self._m

    @property
    def sites(self) -> tuple[str, ...]:
        """Names of the sites that are intervened on."""
        return tuple(self.scale)

    @property
    def has_noise(self) -> bool:
        """Whether any ``noise_std`` is non-zero."""
        return any(np.any(v != 0) for v in self.noise_std.values())

    def width(self, site: str) -> int:
        """The number of terms per row at ``site``: its units, or the directions of its basis."""
        return int(np.shape(self.scale[site])[-1])

    def along(self, basis: Mapping[str, Any]) -> Interventions:
        """The same interventions, each named site's terms read along ``basis[site]``.

        ``basis[site]`` holds ``k`` orthonormal directions ``(k, n_units)`` of the site's
        units, ``k`` being the width of the site's terms (see the class docstring).

        Examples
        --------
        Removing the first of two rotated directions from ``a = (3, 4)``, which lies along
        it, leaves nothing; removing the second leaves ``a``:

        >>> iv = Interventions.zero_ablate({"a": 2}, {"a": [[True, False], [False, True]]})
        >>> u = np.array([[0.6, 0.8], [-0.8, 0.6]])
        >>> iv.along({"a": u}).apply(np.array([[[3.0, 4.0]]]), Site("a", 2)).round(12).tolist()
        [[[0.0, 0.0]], [[3.0, 4.0]]]
        """
        return replace(self, basis={**self.basis, **dict(basis)})

    def term_shape(self, site: Site, shape: Sequence[int]) -> tuple[int, ...]:
        """One example's activation shape ``shape`` at ``site`` with the width of the site's
        terms on its unit axis.

        Equal to ``shape`` without a basis; along ``k`` directions the unit axis holds
        ``k``: the shape of ``fill`` templates, and of the noise ``eps`` after its batch axis.

        Examples
        --------
        >>> iv = Interventions.identity({"c": 2}).along({"c": np.eye(4)[:2]})
        >>> iv.term_shape(Site("c", 4, "conv"), (4, 5, 5))
        (2, 5, 5)
        """
        dims = list(shape)
        if site.name in self.basis:
            dims[site.unit_axis_in(len(dims))] = self.width(site.name)
        return tuple(int(d) for d in dims)

    def apply(self, values: np.ndarray, site: Site) -> np.ndarray:
        """The reference implementation, in numpy: ``values`` of shape ``(M or 1, B, ...)``
        (one example's activation after the first two axes) edited by every row.

        Adapters compute the same in their framework; this is what they are checked
        against.  Along a basis the projections are edited and the change put back,
        ``a + (p' - p) @ U`` (see the class docstring).

        Examples
        --------
        >>> iv = Interventions.noise({"a": [1.0, 1.0]}, scales=[0.0, 1.0], seed=0)
        >>> iv.apply(np.ones((1, 3, 2)), Site("a", 2)).shape
        (2, 3, 2)
        """
        name = site.name
        m = self.n_interventions
        shape = tuple(values.shape[2:])
        axis = 2 + site.unit_axis_in(len(shape))
        basis = self.basis.get(name)
        a = np.asarray(values, dtype=np.float64)
        if basis is not None:
            p = np.moveaxis(np.moveaxis(a, axis, -1) @ basis.T, -1, axis)
        else:
            p = a
        view = [m] + [1] * (a.ndim - 1)
        view[axis] = self.width(name)
        edited = p * np.asarray(self.scale[name]).reshape(view) + self.shift_with_fill(site, shape)
        noise_std = np.asarray(self.noise_std[name])
        if np.any(noise_std != 0):
            terms = (values.shape[1], *self.term_shape(site, shape))
            eps = np.stack([self.standard_normal(name, r, terms) for r in range(m)])
            edited = edited + noise_std.reshape(view) * eps
        if basis is None:
            return edited
        change = np.moveaxis(edited - p, axis, -1) @ basis
        return a + np.moveaxis(change, -1, axis)

    def rows(self, start: int, stop: int) -> Interventions:
        """The interventions ``start..stop-1``, e.g. to chunk M to a memory budget.

        The seed is kept, and :meth:`standard_normal` takes the absolute row index,
        so chunking does not change the noise a row receives.
        """
        if not 0 <= start < stop <= self._m:
            raise parameter_error(
                "start, stop",
                "Interventions.rows",
                f"0 <= start < stop <= {self._m}",
                (start, stop),
            )
        return Interventions(
            scale={s: np.asarray(v)[start:stop] for s, v in self.scale.items()},
            shift={s: np.asarray(v)[start:stop] for s, v in self.shift.items()},
            noise_std={s: np.asarray(v)[start:stop] for s, v in self.noise_std.items()},
            seed=self.seed,
            row_offset=self.row_offset + start,
            batch=self.batch,
            fill=self.fill,
            basis=self.basis,
        )

    def shift_with_fill(self, site: Site, shape: Sequence[int]) -> np.ndarray:
        """``shift + (1 - scale) * fill`` of one site, shaped to broadcast over ``(M, B, ...)``.

        ``shape`` is one example's activation shape at the site; the result has shape
        ``(M, 1, *shape)`` when the site has a ``fill`` template, else ``(M, 1, ...)``
        with the units on their axis and 1 elsewhere.  Adapters add it after ``a * scale``.
        Along a basis the unit axis holds the directions (see :meth:`term_shape`).

        Examples
        --------
        >>> site = Site("a", 2)
        >>> iv = Interventions.mean_ablate({"a": site}, {"a": [[True, False]]}, {"a": [0.5, 2.0]})
        >>> iv.shift_with_fill(site, (2,)).tolist()
        [[[0.5, 0.0]]]
        """
        name = site.name
        scale = np.asarray(self.scale[name], np.float64)
        m, n_units = scale.shape
        rank = len(shape)
        per_unit = [m, 1] + [1] * rank
        per_unit[2 + site.unit_axis_in(rank)] = n_units
        shift = np.asarray(self.shift[name], np.float64).reshape(per_unit)
        if name not in self.fill:
            return shift
        template = self.fill[name]
        expected = self.term_shape(site, shape)
        if template.shape != expected:
            along = f" along its {n_units} directions" if name in self.basis else ""
            raise InvalidParameterError(
                f"The 'fill' of site {name!r} has shape {template.shape}; the site's activation "
                f"has shape {expected} per example{along}."
            )
        return shift + (1.0 - scale.reshape(per_unit)) * template[None, None]

    def for_batch(self, batch: int) -> Interventions:
        """The same interventions, drawing the noise of data batch ``batch``.

        Examples
        --------
        >>> iv = Interventions.noise({"a": [1.0]}, scales=[1.0], seed=1)
        >>> a = iv.standard_normal("a", 0, (3, 1))
        >>> bool(np.allclose(a, iv.for_batch(1).standard_normal("a", 0, (3, 1))))
        False
        """
        check_int(batch, "batch", "Interventions.for_batch", minimum=0)
        return replace(self, batch=batch)

    def standard_normal(self, site: str, row: int, shape: tuple[int, ...]) -> np.ndarray:
        """The noise ``eps`` for one site and intervention row, in this data batch.

        Every adapter draws from here, so the same seed gives the same noise in
        every framework.  ``row`` is relative to this object (after :meth:`rows`
        it is shifted back to the absolute row); ``shape`` is the activation's
        shape for the batch, e.g. ``(B, C, H, W)``.  The data batch is
        :attr:`batch` (see :meth:`for_batch`).

        Examples
        --------
        >>> iv = Interventions.noise({"a": [1.0]}, scales=[1.0, 1.0], seed=7)
        >>> eps = iv.standard_normal("a", row=1, shape=(2, 1))
        >>> bool(np.allclose(eps, iv.rows(1, 2).standard_normal("a", 0, (2, 1))))
        True
        """
        key = int.from_bytes(hashlib.sha256(site.encode()).digest()[:8], "little")
        absolute = self.row_offset + row
        rng = np.random.default_rng([self.seed, key, absolute, self.batch])
        return rng.standard_normal(shape, dtype=np.float32)


def check_request(
    sites: Mapping[str, Site], interventions: Interventions | None, record: Sequence[str]
) -> None:
    """Refuse unknown sites, and interventions whose unit counts do not match the sites.

    Adapters call this at the top of :meth:`ModelAdapter.run`.

    Examples
    --------
    >>> sites = {"fc1": Site("fc1", n_units=2)}
    >>> check_request(sites, None, ["fc1"])
    >>> check_request(sites, Interventions.identity({"fc1": 3}), [])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidParameterError: Interventions for site 'fc1' have 3 units; ...
    """
    for name in (*record, *(interventions.sites if interventions else ())):
        if name not in sites:
            raise SiteNotFoundError(name, sites)
    if interventions is not None:
        for name in interventions.sites:
            site = sites[name]
            basis = interventions.basis.get(name)
            given = np.shape(interventions.scale[name])[1] if basis is None else basis.shape[1]
            if given != site.n_units:
                raise InvalidParameterError(
                    f"Interventions for site {name!r} have {given} units"
                    f"{'' if basis is None else ' in their basis'}; the site has {site.n_units}."
                )
            if basis is not None:
                site = direction_site(site, basis.shape[0])
            template = interventions.fill.get(name)
            if template is not None and not element_shape_ok(site, template.shape):
                expected = site.shape or f"{site.n_units} units on the unit axis"
                raise InvalidParameterError(
                    f"The 'fill' template of site {name!r} has shape {template.shape}; it must "
                    f"have the shape of one example's activation at the site ({expected})."
                )
