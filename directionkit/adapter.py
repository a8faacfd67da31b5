"""The seam between the framework-neutral core and a model runtime.

Everything framework-specific sits behind :class:`ModelAdapter`.  The core
builds :class:`Interventions` and reads logits and activations; an adapter
(PyTorch, ONNX, ...) runs the model.

Semantics of an intervention
----------------------------
For every site named in an :class:`Interventions` and every intervention row
``m`` in ``0..M-1``, the adapter replaces the site's activation ``a`` by::

    a' = a * scale[m] + shift[m] + noise_std[m] * eps

``scale``, ``shift`` and ``noise_std`` have shape ``(M, n_units)``; a unit is
the last axis of a dense activation ``(B, ..., n_units)`` and axis 1 (the
channel) of a conv activation ``(B, n_units, H, W)``, and the per-unit value is
broadcast over the other axes.  ``eps`` is standard normal noise, independent
for every element of the activation (so every spatial position of a conv map
gets its own draw), drawn from :meth:`Interventions.standard_normal` so that
every adapter draws the same numbers for the same seed.  Sites that an
``Interventions`` does not name are left unchanged.

Special cases (built by the constructors):

* zero-ablation of a boolean mask ``ablated``: ``scale = ~ablated``, ``shift = 0``;
* mean-ablation: ``scale = ~ablated``, ``shift = ablated * mean``;
* noise at scale ``s``: ``scale = 1``, ``shift = 0``, ``noise_std = s * sd_unit``.

The logits contract
-------------------
``adapter.run(x, interventions)`` returns logits of shape ``(M, B, C)``: row
``m`` holds the model's class scores for the ``B`` examples of ``x`` under
intervention ``m``.  Without interventions ``M == 1``.  Recorded activations
are the *unedited-by-later-sites* values seen at the site under intervention
row 0 (or the clean run when there is none), reduced to ``(B, n_units)``;
conv maps are averaged over space.

Examples
--------
>>> import numpy as np
>>> from directionkit.adapter import Interventions, Site
>>> sites = {"fc1": Site("fc1", n_units=3, kind="dense", depth=0)}
>>> iv = Interventions.zero_ablate(sites, {"fc1": [[False, True, False]]})
>>> iv.n_interventions
1
>>> iv.scale["fc1"]
array([[1., 0., 1.]])
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np

from directionkit._validation import check_choice, check_int, parameter_error
from directionkit.errors import InvalidParameterError, SiteNotFoundError

__all__ = [
    "Interventions",
    "ModelAdapter",
    "RunOutput",
    "Site",
    "LinearChain",
    "SupportsDevice",
    "SupportsLinearChain",
    "SupportsPrefixCache",
    "SupportsWeightL1",
    "check_request",
]

SiteKind = Literal["dense", "conv"]


@dataclass(frozen=True)
class Site:
    """An activation tensor whose units can be ablated.

    Parameters
    ----------
    name : str
        Unique name, e.g. the PyTorch module path ``"features.2"``.
    n_units : int
        Number of units: features of a dense activation, channels of a conv one.
    kind : {"dense", "conv"}
        ``"conv"`` activations are ``(B, C, H, W)`` and a unit is a whole channel;
        ``"dense"`` activations have their units on the last axis.
    depth : int
        Position of the site in forward order, starting at 0.

    Examples
    --------
    >>> Site("fc1", n_units=512, kind="dense", depth=0)
    Site(name='fc1', n_units=512, kind='dense', depth=0)
    """

    name: str
    n_units: int
    kind: SiteKind = "dense"
    depth: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise parameter_error("name", "Site", "a non-empty str", self.name)
        check_int(self.n_units, "n_units", "Site", minimum=1)
        check_choice(self.kind, "kind", "Site", ("dense", "conv"))
        check_int(self.depth, "depth", "Site", minimum=0)


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
        means : mapping of str to array of shape (n_units,)
            The value each unit is clamped to (e.g. its mean over the training set).

        Examples
        --------
        >>> iv = Interventions.mean_ablate({"a": 2}, {"a": [[True, False]]}, {"a": [0.5, 2.0]})
        >>> iv.scale["a"].tolist(), iv.shift["a"].tolist()
        ([[0.0, 1.0]], [[0.5, 0.0]])
        """
        masks = cls._masks(sites, ablated, "mean_ablate")
        shift = {}
        for name, mask in masks.items():
            if name not in means:
                raise InvalidParameterError(
                    f"The 'means' of mean_ablate must give a mean for site {name!r}."
                )
            mean = np.asarray(means[name], dtype=np.float64)
            if mean.shape != (mask.shape[1],):
                raise InvalidParameterError(
                    f"The 'means' of site {name!r} must have shape ({mask.shape[1]},). "
                    f"Got {mean.shape} instead."
                )
            shift[name] = mask * mean[None, :]
        return cls(
            scale={s: (~m).astype(np.float64) for s, m in masks.items()},
            shift=shift,
            noise_std={s: np.zeros(m.shape) for s, m in masks.items()},
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
        )

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


class RunOutput(NamedTuple):
    """What :meth:`ModelAdapter.run` returns.

    Attributes
    ----------
    logits : ndarray of shape (M, B, C)
        Class scores per intervention row and example.
    activations : mapping of str to ndarray of shape (B, n_units)
        The recorded sites, spatially averaged for conv sites.
    """

    logits: np.ndarray
    activations: Mapping[str, np.ndarray]


@runtime_checkable
class ModelAdapter(Protocol):
    """What the core needs from a model runtime.

    Attributes
    ----------
    sites : mapping of str to Site
        Ordered (forward order) mapping of the model's ablatable sites.
    """

    @property
    def sites(self) -> Mapping[str, Site]: ...

    def run(
        self,
        x: Any,
        interventions: Interventions | None = None,
        record: Sequence[str] = (),
    ) -> RunOutput:
        """Run the model on a batch ``x`` under ``interventions``; see the module docs."""
        ...


@runtime_checkable
class SupportsWeightL1(Protocol):
    """An adapter that can report the L1 norm of each unit's incoming weights."""

    def unit_weight_l1(self, site: str) -> np.ndarray:
        """Array of shape (n_units,) for ``site``."""
        ...


@runtime_checkable
class SupportsPrefixCache(Protocol):
    """An adapter that runs the layers before the first intervened site once per batch."""

    @property
    def prefix_cache(self) -> bool: ...


@runtime_checkable
class SupportsDevice(Protocol):
    """An adapter that reports where it computes (``"cpu"``, ``"cuda:0"``, ...)."""

    @property
    def device(self) -> str: ...


@dataclass(frozen=True)
class LinearChain:
    """A model that is a chain of affine layers with a ReLU after each but the last.

    ``weights[i]`` has shape ``(n_in, n_out)`` and layer ``i`` computes
    ``h @ weights[i] + biases[i]``; the input is flattened to ``(B, n_features)``.
    ``site_layers`` maps each site to the layer whose ReLU output it is.  Knowing this
    lets the core compute cumulative ablation curves incrementally: clamping more
    units of a site only subtracts their columns' contribution from the next layer.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    site_layers: Mapping[str, int]


@runtime_checkable
class SupportsLinearChain(Protocol):
    """An adapter that can describe its model as a :class:`LinearChain` (or not: None)."""

    def linear_chain(self) -> LinearChain | None:
        """The chain, or None when the model is not a plain ReLU MLP."""
        ...
