"""The model's inputs: the one the data go to, the others given by ``inputs=``, and a data
batch checked against the data input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from directionkit.errors import InvalidDataError, InvalidParameterError, UnsupportedModelError

from ._graph import np_dtype, tensor_shape


def find_input(
    graph: onnx.GraphProto, extras: Mapping[str, Any]
) -> tuple[str, np.dtype[Any], tuple[int | None, ...], dict[str, np.dtype[Any]], set[str]]:
    """``(name, dtype, shape)`` of the data input, every input's dtype by name, and the
    inputs given by ``extras`` (``inputs=``) that may hold the batch."""
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    names = [i.name for i in inputs]
    unknown = sorted(set(extras) - set(names))
    if unknown:
        raise InvalidParameterError(
            f"The 'inputs' parameter of OnnxAdapter names {unknown}, which are not inputs "
            f"of the model; its inputs are {names}."
        )
    data = [i for i in inputs if i.name not in extras]
    if len(data) != 1:
        others = {i.name: "..." for i in data[1:]}
        hint = (
            f"pass the others with inputs={others} (fixed values, or callables x -> "
            f"value made for each batch x); the data go to the one input not named "
            f"({data[0].name!r})"
            if len(data) > 1
            else f"leave the data input (one of {names}) out of inputs="
        )
        raise UnsupportedModelError(
            f"The model has {len(inputs)} inputs {names} and {len(data)} of them are not "
            f"given by inputs=; directionkit feeds the data to exactly one: {hint}."
        )
    shape = tensor_shape(data[0].type)
    if not shape:
        raise UnsupportedModelError(
            f"The model input {data[0].name!r} has no known rank; OnnxAdapter needs a "
            "tensor input of shape (batch, ...)."
        )
    input_types = {i.name: np_dtype(i.type) for i in inputs}
    # extra inputs that may hold the batch (not a scalar): their rows would not match
    # M*B expanded rows, so expansion happens after they are used, or rows go singly
    batch_extras = {name for name, value in extras.items() if callable(value) or np.ndim(value) > 0}
    return data[0].name, np_dtype(data[0].type), shape, input_types, batch_extras


def extra_feeds(
    extras: Mapping[str, Any], input_types: Mapping[str, np.dtype[Any]], x: np.ndarray
) -> dict[str, np.ndarray]:
    """The values of the other inputs for the data batch ``x``."""
    feeds = {}
    for name, value in extras.items():
        made = value(x) if callable(value) else value
        if hasattr(made, "detach") and hasattr(made, "cpu"):  # a torch tensor
            made = made.detach().cpu().numpy()
        try:
            feeds[name] = np.asarray(made, dtype=input_types[name])
        except (TypeError, ValueError) as err:
            raise InvalidDataError(
                f"The value of model input {name!r} (from inputs=) must be an array of "
                f"{input_types[name]}: {err}"
            ) from err
    return feeds


def as_input(x: Any, name: str, dims: tuple[int | None, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """``x`` as a batch for the data input ``name`` of shape ``dims`` (batch axis first)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        array = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise InvalidDataError(f"Model input must be array-like: {err}") from err
    if array.ndim == 0 or array.shape[0] == 0:
        raise InvalidDataError(
            f"Model input must have a non-empty batch axis. Got shape {array.shape}."
        )
    expected = dims[1:]
    if array.ndim != len(dims) or any(
        e is not None and e != g for e, g in zip(expected, array.shape[1:], strict=True)
    ):
        described = ", ".join("?" if d is None else str(d) for d in expected)
        raise InvalidDataError(
            f"Model input of shape {array.shape} does not fit the model: its input "
            f"{name!r} has shape (batch, {described})."
        )
    if array.dtype != dtype:
        if not np.can_cast(array.dtype, dtype, "same_kind") and not (
            np.issubdtype(array.dtype, np.integer) and np.issubdtype(dtype, np.floating)
        ):
            raise InvalidDataError(
                f"Model input has dtype {array.dtype}; the model expects {dtype}."
            )
        array = array.astype(dtype)
    return np.ascontiguousarray(array)
