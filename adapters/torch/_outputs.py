"""The model's output: where the class scores are in what forward returns (``output=``
or the default choice), reading them, and what they hold (logits or probabilities)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from directionkit.adapter import OUTPUT_KIND_NOTES, binary_kind, probabilities_by_value
from directionkit.errors import DirectionKitWarning, InvalidParameterError, UnsupportedModelError

from ._trace import Trace

if TYPE_CHECKING:
    from ._adapter import TorchAdapter

# the logger keeps the name it had before the adapter became a package
log = logging.getLogger("directionkit.adapters.torch")


def _scores(adapter: TorchAdapter, returned: Any) -> torch.Tensor:
    """The class scores ``(rows, C)`` in what forward returned (see ``output=``)."""
    how, key = adapter._output_path
    try:
        if how == "call":
            value = adapter._output(returned)  # type: ignore[misc,operator]
        elif how == "key":
            value = returned[key]
        elif how == "index":
            value = returned[key]
        elif how == "attr":
            value = getattr(returned, key)
        else:
            value = returned
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise UnsupportedModelError(
            f"The class scores were read from {adapter.output_description} of the model's "
            f"output, which this call did not return ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(value, torch.Tensor):
        raise UnsupportedModelError(
            f"The class scores, {adapter.output_description}, must be a tensor of shape "
            f"(B, C). Got {type(value).__name__}."
        )
    if value.ndim > 2 and all(d == 1 for d in value.shape[2:]):
        value = value.reshape(value.shape[0], value.shape[1])
    if value.ndim != 2:
        raise UnsupportedModelError(
            f"The class scores, {adapter.output_description}, must have shape (B, C). Got "
            f"shape {tuple(value.shape)}; pass output= to choose another output."
        )
    return value


def _output_path_checked(adapter: TorchAdapter, returned: Any) -> None:
    """Fail now, with the choices, when the scores cannot be read."""
    _scores(adapter, returned)


def _set_output_kind(adapter: TorchAdapter, trace: Trace, returned: Any) -> None:
    how, key = adapter._output_path
    raw = returned
    if how in ("key", "index"):
        raw = returned[key]
    elif how == "attr":
        raw = getattr(returned, key)
    elif how == "call":
        raw = adapter._output(returned)  # type: ignore[misc,operator]
    found = trace.probability_kind(raw)
    kind, source = found if found is not None else (None, "")
    scores = _scores(adapter, returned)
    values = scores.detach().to("cpu", torch.float64).numpy()
    if adapter._given_kind is not None:
        adapter.output_kind = adapter._given_kind
        return
    if values.shape[-1] == 1:  # one score per example: a binary classifier
        kind = binary_kind(values, adapter.output_description,
                           sigmoid=kind == "sigmoid-probabilities")  # fmt: skip
        found = found and (kind, source)
    elif kind is None:
        by_value = probabilities_by_value(values, adapter.output_description)
        if by_value is not None:
            kind, note = by_value
            adapter.assumptions.append(note)
            warnings.warn(note, DirectionKitWarning, stacklevel=4)
    adapter.output_kind = kind or "logits"
    if found is not None:
        log.info("The model's scores (%s) come from %s: %s; %s.", adapter.output_description,
                 source, kind, OUTPUT_KIND_NOTES[kind])  # fmt: skip


def _output_path(returned: Any, spec: Any, x: torch.Tensor) -> tuple[tuple[str, Any], str]:
    """How to read the scores from what forward returns, and a description of it."""
    batch = x.shape[0]
    if callable(spec) and not isinstance(spec, str):
        return ("call", None), f"output={getattr(spec, '__name__', 'callable')}(...)"
    if isinstance(spec, str):
        if isinstance(returned, Mapping) and spec in returned:
            return ("key", spec), f"output[{spec!r}]"
        if not isinstance(returned, Mapping) and hasattr(returned, spec):
            return ("attr", spec), f"output.{spec}"
        raise InvalidParameterError(
            f"The 'output' parameter names {spec!r}, which the model's output does not hold; "
            f"it holds {_describe_output(returned, batch)}."
        )
    if isinstance(spec, int):
        if isinstance(returned, Mapping):  # a dict or ModelOutput: its entries in order
            keys = list(returned.keys())
            if -len(keys) <= spec < len(keys):
                return ("key", keys[spec]), f"output[{keys[spec]!r}]"
        elif isinstance(returned, Sequence) and not isinstance(returned, str):
            if -len(returned) <= spec < len(returned):
                return ("index", spec), f"output[{spec}]"
        raise InvalidParameterError(
            f"The 'output' parameter is the index {spec}, which the model's output does not "
            f"have; it holds {_describe_output(returned, batch)}."
        )
    if isinstance(returned, torch.Tensor):
        return ("self", None), "the returned tensor"
    if isinstance(returned, Mapping):
        if "logits" in returned:
            return ("key", "logits"), "output['logits']"
        candidates = [k for k, v in returned.items() if _score_like(v, batch)]
        if len(candidates) == 1:
            return ("key", candidates[0]), f"output[{candidates[0]!r}]"
    elif isinstance(returned, Sequence) and not isinstance(returned, str):
        candidates = [i for i, v in enumerate(returned) if _score_like(v, batch)]
        if len(candidates) == 1:
            return ("index", candidates[0]), f"output[{candidates[0]}]"
    elif isinstance(getattr(returned, "logits", None), torch.Tensor):
        return ("attr", "logits"), "output.logits"
    raise UnsupportedModelError(
        f"The model's forward returned {_describe_output(returned, batch)}; directionkit "
        "cannot tell which holds the class scores (B, C). Pass output= a key, an index, "
        "or a callable returning the scores."
    )


def _score_like(value: Any, batch: int) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and value.ndim >= 2
        and value.shape[0] == batch
        and all(d == 1 for d in value.shape[2:])
    )


def _describe_output(value: Any, batch: int) -> str:
    def one(v: Any) -> str:
        if isinstance(v, torch.Tensor):
            return f"tensor {tuple(v.shape)}"
        return type(v).__name__

    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {one(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return f"{type(value).__name__} [" + ", ".join(one(v) for v in value) + "]"
    return one(value)
