"""The model's inputs: a batch as a tensor on the adapter's device and dtype, the
extra forward arguments of ``inputs=``, and the check that a batch fits the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from directionkit.errors import InvalidDataError, InvalidParameterError

if TYPE_CHECKING:
    from ._adapter import TorchAdapter


def _to_tensor(adapter: TorchAdapter, x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        tensor = x
    else:
        try:
            tensor = torch.from_numpy(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise InvalidDataError(f"Model input must be array-like: {err}") from err
    if tensor.ndim == 0 or tensor.shape[0] == 0:
        raise InvalidDataError(
            f"Model input must have a non-empty batch axis. Got shape {tuple(tensor.shape)}."
        )
    if tensor.is_floating_point() and tensor.dtype != adapter._dtype:
        tensor = tensor.to(adapter._dtype)
    return tensor.to(adapter._device)


def _extra_inputs(adapter: TorchAdapter, x: torch.Tensor) -> dict[str, Any]:
    """The extra keyword arguments of forward for the batch ``x``, on the device."""
    if adapter._inputs is None:
        return {}
    given = adapter._inputs(x) if callable(adapter._inputs) else adapter._inputs
    if not isinstance(given, Mapping):
        raise InvalidParameterError(
            "The 'inputs' callable of TorchAdapter must return a mapping of forward "
            f"arguments. Got {type(given).__name__} instead."
        )
    kwargs = {}
    for key, value in given.items():
        if callable(value) and not isinstance(value, torch.Tensor | nn.Module):
            value = value(x)  # made for this batch, as OnnxAdapter's inputs= are
        if isinstance(value, np.ndarray | np.generic):
            value = torch.from_numpy(np.asarray(value))
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and value.dtype != adapter._dtype:
                value = value.to(adapter._dtype)
            value = value.to(adapter._device)
        kwargs[str(key)] = value
    return kwargs


def _check_input(adapter: TorchAdapter, x: torch.Tensor) -> None:
    """Same rank as the sites were found with; same features/channels (axis 1) for
    float inputs (token ids may be of any length)."""
    expected = adapter._input_shape
    assert expected is not None
    if x.ndim != len(expected) + 1 or (
        expected and x.is_floating_point() and x.shape[1] != expected[0]
    ):
        raise InvalidDataError(
            f"Model input of shape {tuple(x.shape)} does not fit the model: it was set up "
            f"with inputs of shape (B, {', '.join(map(str, expected))})."
        )
