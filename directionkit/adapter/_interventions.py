"""What an adapter applies at its sites: :class:`Interventions`, M rows of per-unit
``scale``, ``shift``, ``noise_std`` (and element templates), and the check of a run request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from directionkit._utils.validation import check_int, parameter_error
from directionkit.adapter._site import Site, element_shape_ok
from directionkit.errors import InvalidParameterError, SiteNotFoundError


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
        )

    def shift_with_fill(self, site: Site, shape: Sequence[int]) -> np.ndarray:
        """``shift + (1 - scale) * fill`` of one site, shaped to broadcast over ``(M, B, ...)``.

        ``shape`` is one example's activation shape at the site; the result has shape
        ``(M, 1, *shape)`` when the site has a ``fill`` template, else ``(M, 1, ...)``
        with the units on their axis and 1 elsewhere.  Adapters add it after ``a * scale``.

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
        if template.shape != tuple(shape):
            raise InvalidParameterError(
                f"The 'fill' of site {name!r} has shape {template.shape}; the site's activation "
                f"has shape {tuple(shape)} per example."
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
            given = np.shape(interventions.scale[name])[1]
            if given != sites[name].n_units:
                raise InvalidParameterError(
                    f"Interventions for site {name!r} have {given} units; the site has "
                    f"{sites[name].n_units}."
                )
            template = interventions.fill.get(name)
            if template is not None and not element_shape_ok(sites[name], template.shape):
                expected = sites[name].shape or f"{sites[name].n_units} units on the unit axis"
                raise InvalidParameterError(
                    f"The 'fill' template of site {name!r} has shape {template.shape}; it must "
                    f"have the shape of one example's activation at the site ({expected})."
                )
