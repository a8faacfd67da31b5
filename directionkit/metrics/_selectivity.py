"""Class-conditional mean activity and the class selectivity index (Morcos et al., eq. 1)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_choice
from directionkit.errors import InvalidDataError

Negative = Literal["shift", "error"]
#: Which classes class means and selectivity are over: every class ``0..n_classes-1``
#: (each must have an example), or the classes the data hold an example of.
Classes = Literal["all", "present"]
CLASS_CHOICES: tuple[str, ...] = ("all", "present")
#: Class means closer than this fraction of a unit's largest |class mean| are equal.
RELATIVE_NOISE = 1e-12


def _unit_coords(activations: xr.DataArray) -> dict[str, Any]:
    """The coordinates that live on the ``unit`` dim, to carry into a result."""
    return {str(k): v for k, v in activations.coords.items() if v.dims == ("unit",)}


def class_sums(
    values: np.ndarray, labels: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class sums ``(n_units, n_classes)`` and counts ``(n_classes,)``, in float64."""
    onehot = np.zeros((labels.size, n_classes))
    onehot[np.arange(labels.size), labels] = 1.0
    return values.astype(np.float64).T @ onehot, onehot.sum(axis=0)


def means_from_sums(
    sums: np.ndarray, counts: np.ndarray, func: str, classes: Classes = "all"
) -> np.ndarray:
    """Class means from sums and counts.  A class without examples is an error with
    ``classes="all"``, a column of NaN with ``classes="present"``."""
    check_choice(classes, "classes", func, CLASS_CHOICES)
    empty = np.flatnonzero(counts == 0)
    if empty.size and classes == "all":
        raise InvalidDataError(
            f"Every class needs at least one example for {func}; classes "
            f"{_listed(empty)} have none (n_classes={counts.size}). Pass the right n_classes, "
            "data that covers every class, or classes='present' for the classes present."
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[None, :]
    means[:, empty] = np.nan
    return means


def _listed(classes: np.ndarray, most: int = 20) -> str:
    shown = ", ".join(str(int(c)) for c in classes[:most])
    return f"[{shown}{', ...' if classes.size > most else ''}]"


def selectivity_from_means(means: np.ndarray, negative: Negative = "shift") -> np.ndarray:
    """The selectivity index of each row of class means ``(n_units, n_classes)``.

    ``(mu_max - mu_rest) / (mu_max + mu_rest)`` with ``mu_rest`` the mean of the
    other ``C - 1`` class means; 0 where the denominator is 0 (dead units) or, for a
    shifted unit, below ``RELATIVE_NOISE`` times the unit's largest |class mean|.
    Classes whose means are NaN (no example, with ``classes="present"``) are left out:
    ``C`` counts the classes present.
    """
    check_choice(negative, "negative", "class_selectivity", ("shift", "error"))
    present = ~np.all(np.isnan(means), axis=0)
    means = means[:, present]
    if means.shape[1] < 2:
        raise InvalidDataError(
            f"class_selectivity needs at least 2 classes with examples. Got {means.shape[1]}."
        )
    magnitude = np.abs(means).max(axis=1)
    lowest = means.min(axis=1)
    if np.any(lowest < 0):
        if negative == "error":
            unit = int(np.argmax(lowest < 0))
            raise InvalidDataError(
                f"Unit {unit} has a negative class mean ({lowest[unit]:.4g}); the selectivity "
                "index assumes non-negative activity. Use negative='shift' to shift such units."
            )
        means = means - np.minimum(lowest, 0)[:, None]
    top = means.max(axis=1)
    rest = (means.sum(axis=1) - top) / (means.shape[1] - 1)
    denominator = top + rest
    out = np.zeros_like(top)
    # A unit is dead (index 0) when its class means are all 0 -- or, after a shift, when
    # they differ only by rounding: a 1-ulp difference between equal means would
    # otherwise become the maximum and give an index of 1.
    live = denominator > RELATIVE_NOISE * magnitude
    out[live] = (top[live] - rest[live]) / denominator[live]
    # mu_rest <= mu_max and mu_rest >= 0 hold exactly; clip what rounding moved outside
    return np.clip(out, 0.0, 1.0)


def class_mean(
    activations: Any,
    labels: Any = None,
    *,
    n_classes: int | None = None,
    classes: Classes = "all",
) -> xr.DataArray:
    """Class-conditional mean activity of every unit.

    Parameters
    ----------
    activations : array-like (example, unit) or xarray.DataArray with those dims
        Unit activity, conv maps already averaged over space.  A lazily opened activation
        store (:func:`directionkit.results.open_activations`) is read chunk by chunk.
    labels : array-like of int, shape (example,), optional
        Class of each example, in ``[0, n_classes)``; default: the ``label`` coordinate.
    n_classes : int, optional
        Number of classes; default ``labels.max() + 1``.
    classes : {"all", "present"}
        ``"all"``: every class must have at least one example; ``"present"``: a class
        without one gets NaN means.

    Returns
    -------
    xarray.DataArray
        Dims ``(unit, class)``, name ``"class_mean"``; coordinates on ``unit`` (e.g.
        ``site``, ``unit_index``) are carried through, ``class`` is ``0..C-1``.

    Examples
    --------
    >>> class_mean([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]], labels=[0, 0, 1]).values
    array([[2., 0.],
           [1., 4.]])
    """
    func = "class_mean"
    from directionkit.metrics._blocks import ExampleBlocks

    blocks = ExampleBlocks(activations, labels, func, n_classes)
    sums = np.zeros((blocks.n_units, blocks.n_classes))
    counts = np.zeros(blocks.n_classes)
    for values, y in blocks:
        block_sums, block_counts = class_sums(values, y, blocks.n_classes)
        sums += block_sums
        counts += block_counts
    return xr.DataArray(
        means_from_sums(sums, counts, func, classes),
        dims=("unit", "class"),
        coords={**blocks.coords, "class": np.arange(blocks.n_classes)},
        name="class_mean",
    )


def class_selectivity(
    activations: Any,
    labels: Any = None,
    *,
    n_classes: int | None = None,
    negative: Negative = "shift",
    classes: Classes = "all",
) -> xr.DataArray:
    """Class selectivity index of every unit (Morcos et al. 2018, eq. 1).

    ``selectivity = (mu_max - mu_rest) / (mu_max + mu_rest)``, where ``mu_max`` is the
    largest class-conditional mean activity and ``mu_rest`` the mean of the other
    ``C - 1`` class means.

    Parameters
    ----------
    activations : array-like (example, unit) or xarray.DataArray with those dims
        Unit activity over the (test) data; conv maps averaged over space first.  A
        lazily opened activation store is read chunk by chunk.
    labels : array-like of int, shape (example,), optional
        Default: the ``label`` coordinate of ``activations``.
    n_classes : int, optional
        Default ``labels.max() + 1``; at least 2, each with an example.
    negative : {"shift", "error"}
        What to do with a unit that has a negative class mean (non-ReLU sites such as
        tanh or GELU), for which the index is not bounded: ``"shift"`` subtracts that
        unit's smallest class mean from its class means first, so its least active
        class sits at 0; ``"error"`` raises.
    classes : {"all", "present"}
        ``"all"``: the index is over ``n_classes`` classes, each of which must have an
        example; ``"present"``: over the classes the data hold examples of (at least 2).

    Returns
    -------
    xarray.DataArray
        Dims ``(unit,)``, name ``"selectivity"``, unit coordinates carried through.

    Notes
    -----
    For non-negative activity the index lies in [0, 1]: 0 when all class means are
    equal, 1 when a unit responds to one class only.  A dead unit (all class means 0)
    gets 0, not NaN.  The ``"shift"`` rule leaves units with non-negative class means
    untouched, and makes a shifted unit's index invariant to adding a constant.

    Examples
    --------
    >>> acts = [[2.0, 1.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    >>> class_selectivity(acts, labels=[0, 1, 2, 2]).values.tolist()
    [1.0, 0.3333333333333333]
    """
    func = "class_selectivity"
    check_choice(negative, "negative", func, ("shift", "error"))
    means = class_mean(activations, labels, n_classes=n_classes, classes=classes)
    return xr.DataArray(
        selectivity_from_means(means.values, negative),
        dims=("unit",),
        coords=_unit_coords(means),
        name="selectivity",
    )
