"""The seam between the framework-neutral core and a model runtime.

Everything framework-specific sits behind :class:`ModelAdapter`.  The core
builds :class:`Interventions` and reads logits and activations; an adapter
(PyTorch, ONNX, ...) runs the model.

Semantics of an intervention
----------------------------
For every site named in an :class:`Interventions` and every intervention row
``m`` in ``0..M-1``, the adapter replaces the site's activation ``a`` by::

    a' = a * scale[m] + shift[m] + (1 - scale[m]) * fill + noise_std[m] * eps

``scale``, ``shift`` and ``noise_std`` have shape ``(M, n_units)``; a unit is
the last axis of a dense activation ``(B, ..., n_units)`` and axis 1 (the
channel) of a conv activation ``(B, n_units, H, W)``, and the per-unit value is
broadcast over the other axes.  ``fill`` is optional, per site: an *element
template* of the shape of one example's activation at the site
(:attr:`Site.shape`, e.g. ``(C, H, W)``), broadcast over M and B (0 when a site
has none).  It lets a clamped unit take a different value at every element of
its map: mean-ablation of a conv map to its per-element training mean (paper
A.1) is ``scale = ~ablated``, ``shift = 0``, ``fill = mean[c, h, w]``, while the
per-unit ``shift`` gives every element of a map the same value.  ``eps`` is
standard normal noise, independent for every element of the activation (so
every spatial position of a conv map gets its own draw), drawn from
:meth:`Interventions.standard_normal` so that every adapter draws the same
numbers for the same seed.  Sites that an ``Interventions`` does not name are
left unchanged.

Special cases (built by the constructors):

* zero-ablation of a boolean mask ``ablated``: ``scale = ~ablated``, ``shift = 0``;
* mean-ablation to one value per unit: ``scale = ~ablated``, ``shift = ablated * mean``;
* mean-ablation to an element template: ``scale = ~ablated``, ``shift = 0``,
  ``fill = mean`` (see :meth:`Interventions.mean_ablate`);
* noise at scale ``s``: ``scale = 1``, ``shift = 0``, ``noise_std = s * sd_unit``.

The logits contract
-------------------
``adapter.run(x, interventions)`` returns logits of shape ``(M, B, C)``: row
``m`` holds the model's class scores for the ``B`` examples of ``x`` under
intervention ``m``.  Without interventions ``M == 1``.  Recorded activations
are the *unedited-by-later-sites* values seen at the site under intervention
row 0 (or the clean run when there is none), reduced to ``(B, n_units)``;
conv maps are averaged over space.

Optional capabilities
---------------------
An adapter may also offer (checked at run time with ``isinstance``):

* :class:`SupportsElementRecording` -- ``record_elements(x, sites)``: the clean,
  unreduced activations ``(B, *site.shape)``, from which the core computes
  per-element training means and the sd over a map's elements.  Without it the
  core can measure dense sites (whose elements are the units) but not conv maps
  element by element;
* :class:`SupportsWeightL1` / :class:`SupportsFoldedWeightL1` -- each unit's raw
  incoming-filter L1 norm, and the one with a following BatchNorm folded in;
* :class:`SupportsPrefixCache`, :class:`SupportsDevice`, :class:`SupportsLinearChain`.

Sites may carry a :attr:`Site.layer`: sites with the same layer form one layer of
the network (the ReLUs of one residual block), which ``scope="last:K"`` counts.

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

from directionkit._choices import ALL_KINDS, BINARY_KINDS
from directionkit._validation import check_choice, check_int, parameter_error
from directionkit.errors import InvalidParameterError, SiteNotFoundError, UnsupportedModelError

__all__ = [
    "BINARY_KINDS",
    "CPU_MEMORY_BUDGET",
    "GPU_MEMORY_BUDGET",
    "Interventions",
    "ModelAdapter",
    "RunOutput",
    "Site",
    "LinearChain",
    "binary_columns",
    "binary_kind",
    "check_output_kind",
    "SupportsDevice",
    "SupportsElementRecording",
    "SupportsFoldedWeightL1",
    "SupportsLazySites",
    "SupportsLinearChain",
    "SupportsPrefixCache",
    "SupportsWeightL1",
    "check_request",
    "check_unit_axes",
    "check_unit_axes_named",
    "given_unit_axis",
    "guessed_unit_axis",
    "looks_like_probabilities",
    "probabilities_by_value",
    "units_last",
]

SiteKind = Literal["dense", "conv"]

#: What a model's output holds (an adapter's ``output_kind``), by the operation that
#: produced it, and how directionkit scores it.  Probabilities come back from the adapter
#: as their logarithm, so accuracy is their argmax and the core's cross-entropy
#: ``-log softmax(scores)[y]`` is ``-log p[y]``; for a Sigmoid's per-class probabilities,
#: which need not sum to one, it is ``-log(s[y] / sum(s))``.
OUTPUT_KINDS = {
    "Softmax": "probabilities",
    "Softmax2d": "probabilities",
    "LogSoftmax": "log-probabilities",
    "Sigmoid": "sigmoid-probabilities",
}
OUTPUT_KIND_NOTES = {
    "probabilities": "directionkit uses the logarithm of these probabilities as class scores, "
    "so the loss is -log p[label]",
    "log-probabilities": "directionkit uses it as it is (its cross-entropy is -log p[label])",
    "sigmoid-probabilities": "directionkit uses the logarithm of these per-class sigmoids as "
    "class scores: accuracy is their argmax, and the loss is -log(s[label] / sum(s)), the "
    "sigmoids renormalised over the classes",
}
#: The output kinds an adapter returns as their logarithm.
LOGARITHM_TAKEN = ("probabilities", "sigmoid-probabilities")
OUTPUT_KIND_NOTES["binary-probability"] = (
    "one probability per example, of class 1: directionkit scores it as two classes, "
    "[log(1 - p), log p], so accuracy thresholds p at 0.5 and the loss is the binary "
    "cross-entropy"
)
OUTPUT_KIND_NOTES["binary-logit"] = (
    "one logit per example, of class 1: directionkit scores it as two classes, [0, z] "
    "(their softmax is [1 - sigmoid(z), sigmoid(z)]), so accuracy thresholds z at 0 and the "
    "loss is the binary cross-entropy"
)


def binary_kind(scores: np.ndarray, where: str, sigmoid: bool) -> str:
    """The kind of a single score per example: out of a sigmoid a probability; with a
    value of the first batch outside [0, 1] a logit; otherwise ambiguous, refused.

    A logit whose values happen to lie in [0, 1] (a random or an uncertain model) read
    as a probability would be thresholded at 0.5 instead of 0: silently wrong accuracy.
    So without evidence the adapter asks: ``output_kind="binary-probability"`` (a
    sigmoid the graph hides, in a control-flow subgraph) or ``"binary-logit"``.

    Examples
    --------
    >>> binary_kind(np.array([[0.2], [0.9]]), "output 'p'", sigmoid=True)
    'binary-probability'
    >>> binary_kind(np.array([[-1.5], [2.0]]), "output 'z'", sigmoid=False)
    'binary-logit'
    >>> binary_kind(np.array([[0.2], [0.9]]), "output 'p'", sigmoid=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.UnsupportedModelError: The model gives one score per example ...
    """
    if sigmoid:
        return "binary-probability"
    values = np.asarray(scores, np.float64)
    if values.size and np.all((values >= 0) & (values <= 1)):
        raise UnsupportedModelError(
            f"The model gives one score per example ({where}), every value of the first "
            "batch in [0, 1], and no sigmoid was found producing it: a probability of class "
            "1, or a logit? directionkit will not guess; pass output_kind="
            "'binary-probability' or 'binary-logit'."
        )
    return "binary-logit"


def check_output_kind(kind: Any, func: str) -> str | None:
    """``output_kind`` as given to an adapter: None (detect) or one of :data:`ALL_KINDS`."""
    if kind is not None and kind not in ALL_KINDS:
        raise parameter_error("output_kind", func, f"None or one of {list(ALL_KINDS)}", kind)
    return kind


def binary_columns(scores: np.ndarray, kind: str) -> np.ndarray:
    """Single scores ``(..., 1)`` as two-class scores ``(..., 2)`` (see :data:`BINARY_KINDS`).

    Examples
    --------
    >>> binary_columns(np.array([[0.5]]), "binary-probability").round(4).tolist()
    [[-0.6931, -0.6931]]
    >>> binary_columns(np.array([[2.0]]), "binary-logit").tolist()
    [[0.0, 2.0]]
    """
    values = np.asarray(scores)
    if kind == "binary-logit":
        return np.concatenate([np.zeros_like(values), values], axis=-1)
    p = np.clip(values.astype(np.float64), 1e-38, 1 - 1e-7)
    return np.concatenate([np.log1p(-p), np.log(p)], axis=-1).astype(np.float32)


def looks_like_probabilities(scores: np.ndarray, tol: float = 1e-4) -> str | None:
    """``"probabilities"`` when every row of ``(B, C)`` scores is non-negative and sums
    to one, ``"log-probabilities"`` when their exponentials do, else None.

    Adapters use it on the first batch for scores that no softmax operation produced
    (a softmax written out by hand); a model with one class or one example row that
    happens to sum to one is not enough evidence alone, so ``C >= 2`` is required.

    Examples
    --------
    >>> looks_like_probabilities(np.array([[0.2, 0.8], [0.5, 0.5]]))
    'probabilities'
    >>> looks_like_probabilities(np.log(np.array([[0.2, 0.8]])))
    'log-probabilities'
    >>> looks_like_probabilities(np.array([[1.5, -0.5]])) is None
    True
    """
    z = np.asarray(scores, np.float64)
    if z.ndim != 2 or z.shape[1] < 2 or z.shape[0] == 0 or not np.all(np.isfinite(z)):
        return None
    if np.all(z >= -tol) and np.allclose(z.sum(axis=1), 1.0, rtol=0, atol=tol):
        return "probabilities"
    if np.all(z <= tol):
        top = z.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        if np.allclose(log_total, 0.0, rtol=0, atol=tol):
            return "log-probabilities"
    return None

#: The adapters' default ``memory_budget`` (bytes of activations per pass) on the CPU and
#: on a GPU.  Smaller passes run faster on the CPU (benchmarks/RESULTS.md, B6).
CPU_MEMORY_BUDGET = 256 << 20
GPU_MEMORY_BUDGET = 1 << 30


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
        ``"conv"``: a unit is a whole feature map, its activity spread over two or more
        position axes (space); ``"dense"``: a unit is one feature, at one position or at
        every token of a sequence.
    depth : int
        Position of the site in forward order, starting at 0.
    layer : str, optional
        The layer the site belongs to; consecutive sites with the same layer are one
        layer of the network (e.g. the three ReLU calls of a ResNet bottleneck block,
        layer ``"layer1.0"``).  ``None``: the site is a layer of its own.
        ``scope="last:K"`` counts layers (see :attr:`layer_name`).
    shape : tuple of int, optional
        The shape of one example's activation at the site (``(C, H, W)`` for a conv
        site, ``(n_units,)`` for a flat dense one), when the adapter knows it; the
        shape of :class:`Interventions` ``fill`` templates.
    axis : int, optional
        The unit axis of one example's activation (0 is the first axis after the batch;
        negative counts from the end).  Every other axis is a *position* axis (space,
        tokens), over which a unit's activity is averaged.  ``None``: the kind's
        default, 0 (the channel of ``(C, H, W)``) for ``"conv"`` and the last axis for
        ``"dense"``.  A channels-last map ``(H, W, C)`` (ConvNeXt) is ``"conv"`` with
        ``axis=2``.
    axis_from : str, optional
        What fixed the unit axis, recorded with results: the producing layer (e.g.
        ``"Linear"``, ``"Conv2d"``, ``"MatMul"``), ``"given"`` (by the user), ``"rank"``
        (only one axis), or ``"guess"`` (no evidence; a warning says so).

    Examples
    --------
    >>> Site("fc1", n_units=512, kind="dense", depth=0)
    Site(name='fc1', n_units=512, kind='dense', depth=0, layer=None, shape=None, axis=None,
         axis_from=None)
    >>> Site("layer1.0.relu#1", 8, "conv", 2, layer="layer1.0").layer_name
    'layer1.0'
    >>> Site("stages.1.0.block.4", 64, "conv", shape=(4, 4, 64), axis=2).position_axes(3)
    (0, 1)
    """

    name: str
    n_units: int
    kind: SiteKind = "dense"
    depth: int = 0
    layer: str | None = None
    shape: tuple[int, ...] | None = None
    axis: int | None = None
    axis_from: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise parameter_error("name", "Site", "a non-empty str", self.name)
        check_int(self.n_units, "n_units", "Site", minimum=1)
        check_choice(self.kind, "kind", "Site", ("dense", "conv"))
        check_int(self.depth, "depth", "Site", minimum=0)
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            raise parameter_error("layer", "Site", "None or a non-empty str", self.layer)
        if self.axis is not None and (
            isinstance(self.axis, bool) or not isinstance(self.axis, int | np.integer)
        ):
            raise parameter_error("axis", "Site", "None or an int", self.axis)
        if self.axis is not None:
            object.__setattr__(self, "axis", int(self.axis))
        if self.axis_from is not None and not isinstance(self.axis_from, str):
            raise parameter_error("axis_from", "Site", "None or a str", self.axis_from)
        if self.shape is not None:
            shape = tuple(self.shape)
            valid = bool(shape) and all(
                isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 1
                for d in shape
            )
            if valid and not -len(shape) <= self.unit_axis < len(shape):
                raise parameter_error(
                    "axis", "Site", f"an axis of the per-example shape {shape}", self.axis
                )
            if not valid or shape[self.unit_axis] != self.n_units:
                raise parameter_error(
                    "shape", "Site", f"None or a tuple of ints >= 1 with {self.n_units} units on "
                    f"the unit axis ({self._axis_words()})", self.shape,
                )  # fmt: skip
            object.__setattr__(self, "shape", tuple(int(d) for d in shape))
            object.__setattr__(self, "axis", self.unit_axis_in(len(shape)))

    def _axis_words(self) -> str:
        if self.axis is not None:
            return f"axis {self.axis}"
        return "first" if self.kind == "conv" else "last"

    @property
    def layer_name(self) -> str:
        """The layer the site belongs to: :attr:`layer`, or the site's own name."""
        return self.layer if self.layer is not None else self.name

    @property
    def unit_axis(self) -> int:
        """The unit axis of one example's activation: :attr:`axis`, else the kind's default
        (0, the channel, for conv; -1, the last axis, for dense)."""
        if self.axis is not None:
            return self.axis
        return 0 if self.kind == "conv" else -1

    def unit_axis_in(self, rank: int) -> int:
        """The unit axis of a per-example activation of ``rank`` axes, counted from 0.

        Examples
        --------
        >>> Site("a", 4).unit_axis_in(3), Site("c", 4, "conv").unit_axis_in(3)
        (2, 0)
        """
        axis = self.unit_axis
        if not -rank <= axis < rank:
            raise InvalidParameterError(
                f"Site {self.name!r} has its units on axis {axis}, but its activation has "
                f"{rank} axes per example."
            )
        return axis % rank

    def position_axes(self, rank: int) -> tuple[int, ...]:
        """The per-example axes other than the unit axis (space, tokens), counted from 0."""
        axis = self.unit_axis_in(rank)
        return tuple(i for i in range(rank) if i != axis)


def probabilities_by_value(scores: np.ndarray, where: str) -> tuple[str, str] | None:
    """``(kind, note)`` when ``(B, C)`` scores that no softmax made hold probabilities by
    their values (see :func:`looks_like_probabilities`), else None.  ``where`` says where
    the scores were read; the note is what the adapter warns and records.

    Examples
    --------
    >>> probabilities_by_value(np.array([[0.25, 0.75]]), "output 'p'")[0]
    'probabilities'
    """
    kind = looks_like_probabilities(scores)
    if kind is None:
        return None
    note = (
        f"The model's scores ({where}) are {kind} by their values (every row of the first "
        "batch is non-negative and sums to one"
        + (", as logarithms" if kind == "log-probabilities" else "")
        + "), though no softmax produced them; directionkit treats them as such."
    )
    return kind, note


def check_unit_axes(unit_axes: Any, func: str) -> dict[str, int]:
    """``unit_axes`` as given to an adapter: None, or a mapping of site names to ints.

    Examples
    --------
    >>> check_unit_axes({"relu()": 0}, "TorchAdapter")
    {'relu()': 0}
    >>> check_unit_axes({"a": "last"}, "OnnxAdapter")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidParameterError: The 'unit_axes' parameter of OnnxAdapter ...
    """
    if unit_axes is None:
        return {}
    if not isinstance(unit_axes, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int | np.integer) and not isinstance(v, bool)
        for k, v in unit_axes.items()
    ):
        raise InvalidParameterError(
            f"The 'unit_axes' parameter of {func} must map site names to ints (the unit axis "
            f"of one example's activation). Got {unit_axes!r} instead."
        )
    return {k: int(v) for k, v in unit_axes.items()}


def given_unit_axis(
    unit_axes: Mapping[str, int], name: str, shape: Sequence[int | None]
) -> int | None:
    """The unit axis ``unit_axes`` gives site ``name`` (of per-example ``shape``), counted
    from 0, or None when it gives none.

    Examples
    --------
    >>> given_unit_axis({"a": -1}, "a", (5, 7)), given_unit_axis({}, "a", (5, 7))
    (1, None)
    """
    if name not in unit_axes:
        return None
    axis, rank = unit_axes[name], len(shape)
    if not -rank <= axis < rank:
        raise InvalidParameterError(
            f"The 'unit_axes' entry of site {name!r} must be an axis of its per-example shape "
            f"{tuple(shape)}. Got {axis} instead."
        )
    return axis % rank


def check_unit_axes_named(unit_axes: Mapping[str, int], sites: Mapping[str, Site]) -> None:
    """Refuse ``unit_axes`` entries that name no site (a typo would leave a guess in place).

    Examples
    --------
    >>> check_unit_axes_named({"fc": 0}, {"fc1": Site("fc1", 2)})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidParameterError: The 'unit_axes' parameter names ['fc'], ...
    """
    unknown = sorted(set(unit_axes) - set(sites))
    if unknown:
        raise InvalidParameterError(
            f"The 'unit_axes' parameter names {unknown}, which are not sites of the model; "
            f"its sites are {list(sites)}."
        )


def guessed_unit_axis(name: str, shape: Sequence[int | None]) -> tuple[int, str]:
    """``(axis, note)``: the axis assumed for a site whose producing layer does not tell
    it (the channel of a map, else the last), and the note saying so.

    Examples
    --------
    >>> guessed_unit_axis("relu()", (3, 4, 4))[0], guessed_unit_axis("relu()", (9, 4))[0]
    (0, 1)
    >>> guessed_unit_axis("relu()", (128, 1))[0]  # not one unit at 128 positions
    0
    """
    rank = len(shape)
    axis = 0 if rank >= 3 else rank - 1
    if shape[axis] == 1:  # one unit over positions is never the reading: another axis
        axis = next((i for i, d in enumerate(shape) if d is None or d > 1), axis)
    note = (
        f"The unit axis of site {name!r} (per-example shape {tuple(shape)}) is not known from "
        f"the layer that produced it; axis {axis} was assumed. Pass "
        f"unit_axes={{{name!r}: AXIS}} to set it."
    )
    return axis, note


def units_last(site: Site, values: np.ndarray) -> np.ndarray:
    """``values`` of shape ``(B, *per-example shape)`` as ``(B, positions, n_units)``.

    The unit axis moves last and the position axes (space, tokens) are flattened into
    one, so a unit's activity over its map is ``result[:, :, u]``.

    Examples
    --------
    >>> a = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # channels-last (H, W, C)
    >>> units_last(Site("s", 5, "conv", axis=2), a).shape
    (2, 12, 5)
    >>> units_last(Site("c", 3, "conv"), a).shape  # channels-first (C, H, W)
    (2, 20, 3)
    """
    rank = values.ndim - 1
    moved = np.moveaxis(values, 1 + site.unit_axis_in(rank), -1)
    return moved.reshape(values.shape[0], -1, site.n_units)


def element_shape_ok(site: Site, template_shape: tuple[int, ...]) -> bool:
    """Whether ``template_shape`` can be a ``fill`` template of ``site``.

    It must equal :attr:`Site.shape` when that is known; otherwise it needs at least one
    axis (two for a conv site) and ``n_units`` on the unit axis.

    Examples
    --------
    >>> element_shape_ok(Site("c", 2, "conv", shape=(2, 3, 3)), (2, 3, 3))
    True
    >>> element_shape_ok(Site("c", 2, "conv"), (3, 3, 2))
    False
    >>> element_shape_ok(Site("c", 2, "conv", axis=-1), (3, 3, 2))
    True
    """
    if site.shape is not None:
        return tuple(template_shape) == site.shape
    rank = len(template_shape)
    if rank < (2 if site.kind == "conv" else 1) or not -rank <= site.unit_axis < rank:
        return False
    return template_shape[site.unit_axis] == site.n_units


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
class SupportsFoldedWeightL1(Protocol):
    """An adapter that can also report the L1 norm with a following BatchNorm folded in."""

    def unit_weight_l1_folded(self, site: str) -> np.ndarray:
        """Array of shape (n_units,): ``|W[c]|_1 * |gamma[c] / sqrt(var[c] + eps)|``."""
        ...


@runtime_checkable
class SupportsElementRecording(Protocol):
    """An adapter that can return a site's activation unreduced, element by element."""

    def record_elements(self, x: Any, sites: Sequence[str]) -> Mapping[str, np.ndarray]:
        """Per site, the clean activation of shape ``(B, *site.shape)`` for the batch ``x``."""
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


@runtime_checkable
class SupportsLazySites(Protocol):
    """An adapter that finds its sites by running the model (e.g. a torch module's hooks).

    While ``sites_pending`` is True, reading ``sites`` is an error; the experiments then
    run the adapter once on the first example of their data, which finds the sites.
    """

    @property
    def sites_pending(self) -> bool: ...


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
