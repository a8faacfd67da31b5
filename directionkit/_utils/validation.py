"""Checks shared by the public functions, with messages in scikit-learn's style.

A message names the parameter, the function, what was expected, and what was
given: ``The 'n_bins' parameter of mutual_information must be an int >= 2. Got
1 instead.``
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from directionkit.errors import InvalidDataError, InvalidParameterError


def parameter_error(name: str, func: str, expected: str, got: Any) -> InvalidParameterError:
    """Build the error for a parameter ``name`` of ``func`` outside ``expected``."""
    return InvalidParameterError(
        f"The {name!r} parameter of {func} must be {expected}. Got {got!r} instead."
    )


def check_choice(value: Any, name: str, func: str, choices: tuple[Any, ...]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise parameter_error(name, func, f"one of {{{listed}}}", value)


def check_int(value: Any, name: str, func: str, *, minimum: int) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise parameter_error(name, func, f"an int >= {minimum}", value)
    return int(value)


def as_labelled(values: Any, dims: tuple[str, ...], name: str, func: str) -> xr.DataArray:
    """Return ``values`` as a DataArray with exactly ``dims``.

    numpy input is labelled with ``dims`` in order; a DataArray is transposed to
    ``dims`` and must carry exactly those dims.  The values must be finite numbers.
    """
    if isinstance(values, xr.DataArray):
        if set(values.dims) != set(dims):
            raise InvalidDataError(
                f"{name!r} of {func} must have dims {dims}. Got dims {values.dims} instead."
            )
        array = values.transpose(*dims)
    else:
        try:
            data = np.asarray(values)
        except (TypeError, ValueError) as err:
            raise InvalidDataError(f"{name!r} of {func} must be array-like: {err}") from err
        if data.ndim != len(dims):
            raise InvalidDataError(
                f"{name!r} of {func} must be a {len(dims)}-d array with dims {dims}. "
                f"Got an array of shape {data.shape} instead."
            )
        array = xr.DataArray(data, dims=dims)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise InvalidDataError(
            f"{name!r} of {func} must hold numbers. Got dtype {array.dtype} instead."
        )
    if array.size == 0:
        raise InvalidDataError(
            f"{name!r} of {func} is empty (shape {array.shape}); it needs at least one value "
            "along every dim."
        )
    if np.issubdtype(array.dtype, np.inexact):
        finite = np.isfinite(array.values)
        if not finite.all():
            bad = np.argwhere(~finite)[0]
            where = dict(zip(array.dims, (int(i) for i in bad), strict=True))
            raise InvalidDataError(
                f"{name!r} of {func} must be finite. "
                f"Got {array.values[tuple(bad)].item()!r} at {where} "
                f"({int((~finite).sum())} non-finite values in all)."
            )
    return array


def integral_labels(labels: np.ndarray, func: str) -> np.ndarray:
    """Class labels as int64: integers, or floats holding whole numbers (``1.0`` is 1).

    Labels saved through a float array (a ``.npz`` written from pandas, a float tensor)
    are common; ``1.5``, NaN or inf are not class indices and are refused, naming the
    first such value and where it is.

    Examples
    --------
    >>> integral_labels(np.array([0.0, 2.0, 1.0]), "f")
    array([0, 2, 1])
    >>> integral_labels(np.array([0.0, 1.5]), "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidDataError: 'labels' of f must be ... Got 1.5 at example 1 ...
    >>> integral_labels(np.array([1e20]), "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidDataError: 'labels' of f must be ... Got 1e+20 at example 0 ...
    """
    if np.issubdtype(labels.dtype, np.floating):
        bad = ~np.isfinite(labels)
        bad[~bad] = labels[~bad] != np.round(labels[~bad])
        bad |= np.abs(np.nan_to_num(labels)) > 2**53  # whole, but no class index (nor exact)
        if bad.any():
            first = int(np.argmax(bad.reshape(-1)))
            count = int(bad.sum())
            raise InvalidDataError(
                f"'labels' of {func} must be integer class indices. Got "
                f"{labels.reshape(-1)[first].item()!r} at example {first} ({count} non-integer "
                f"value{'s' if count > 1 else ''} in all)."
            )
    elif not np.issubdtype(labels.dtype, np.integer):
        raise InvalidDataError(
            f"'labels' of {func} must be integer class indices. Got dtype {labels.dtype} instead."
        )
    return labels.astype(np.int64)


def check_labels(
    labels: Any,
    n_examples: int,
    func: str,
    n_classes: int | None = None,
    *,
    classes_from: str | None = None,
    allow_empty: bool = False,
) -> tuple[np.ndarray, int]:
    """Validate integer class labels; return them as int64 and the number of classes.

    ``n_classes`` defaults to ``labels.max() + 1``.  Labels must lie in
    ``[0, n_classes)`` and there must be one label per example.  ``classes_from`` says
    where ``n_classes`` comes from in the out-of-range message (default
    ``"n_classes=N"``; e.g. ``"the model has N outputs"``).  The one label check of the
    package: metrics, streaming accumulators and experiments all call it.  ``allow_empty``
    admits zero labels (a streamed batch may be empty) when ``n_classes`` is given.
    """
    array = labels.values if isinstance(labels, xr.DataArray) else np.asarray(labels)
    if array.ndim != 1:
        raise InvalidDataError(
            f"'labels' of {func} must be 1-d (one class index per example). "
            f"Got shape {array.shape} instead."
        )
    if array.shape[0] != n_examples:
        raise InvalidDataError(
            f"'labels' of {func} must have one entry per example: {n_examples} examples but "
            f"{array.shape[0]} labels."
        )
    if array.size == 0 and not (allow_empty and n_classes is not None):
        raise InvalidDataError(f"'labels' of {func} is empty; it needs at least one example.")
    array = integral_labels(array, func)
    if n_classes is None:
        n_classes = int(array.max()) + 1
    else:
        n_classes = check_int(n_classes, "n_classes", func, minimum=1)
    bad = (array < 0) | (array >= n_classes)
    if bad.any():
        why = classes_from or f"n_classes={n_classes}"
        raise InvalidDataError(
            f"'labels' of {func} must lie in [0, {n_classes}) ({why}). "
            f"Got {array[bad][0]} at example {int(np.argmax(bad))}."
        )
    return array, n_classes
