"""A site: an activation whose units can be intervened on (:class:`Site`), and its unit axis
(given, known from the producing layer, or refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.errors import InvalidParameterError

SiteKind = Literal["dense", "conv"]


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


def direction_site(site: Site, k: int) -> Site:
    """``site`` seen along ``k`` directions of its units: the same site with ``k`` units,
    its per-example shape (when known) holding ``k`` on the unit axis.

    The terms of an :class:`Interventions` read along a basis of ``k`` directions
    (:meth:`Interventions.along`) have this site's width and element shape.

    Examples
    --------
    >>> direction_site(Site("c", 8, "conv", shape=(8, 4, 4)), 3).shape
    (3, 4, 4)
    """
    shape = None
    if site.shape is not None:
        dims = list(site.shape)
        dims[site.unit_axis_in(len(dims))] = k
        shape = tuple(dims)
    return Site(site.name, k, site.kind, site.depth, site.layer, shape, site.axis, site.axis_from)
