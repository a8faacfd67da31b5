"""The output read as class scores: which graph output, what it holds (logits,
probabilities, ...), read as ``(B, C)``, and the check of its kind on the first run."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper

from directionkit.adapter import (
    LOGARITHM_TAKEN,
    OUTPUT_KIND_NOTES,
    OUTPUT_KINDS,
    RunOutput,
    binary_columns,
    binary_kind,
    probabilities_by_value,
)
from directionkit.errors import DirectionKitWarning, InvalidParameterError, UnsupportedModelError

from ._graph import PREFIX, np_dtype, tensor_shape

if TYPE_CHECKING:
    from ._adapter import OnnxAdapter

log = logging.getLogger(__name__.rpartition(".")[0])  # the package's, as before the split

_OUTPUT_ACTIVATIONS = frozenset({"Softmax", "LogSoftmax", "Sigmoid"})


def class_scores_shape(shape: Sequence[int | None] | None) -> bool:
    """``(batch, classes)``, or that followed by static singleton dims (``(N, C, 1, 1)``)."""
    return shape is not None and len(shape) >= 2 and all(d == 1 for d in shape[2:])


def find_output(adapter: OnnxAdapter, requested: str | int | None) -> tuple[str, str]:
    """``(name, kind)`` of the output holding the class scores (``output=``, or found)."""
    graph, types = adapter._graph, adapter._types
    outputs = {o.name: o for o in graph.output}
    asked = _requested_name(outputs, requested)
    candidates = [asked] if asked is not None else _candidates(graph, outputs)
    if not candidates:
        found = [(o.name, tensor_shape(o.type)) for o in graph.output]
        raise UnsupportedModelError(
            "The model has no output of class scores: no float output of shape (batch, "
            f"classes), or (batch, classes, 1, 1), among {found}."
        )
    # the softmax (or sigmoid) of another candidate holds the same scores
    nodes, producers = graph.node, adapter._producers
    distinct = [c for c in candidates if probability_source(nodes, producers, c) not in candidates]
    candidates = distinct or candidates
    if len(candidates) > 1:
        named = [c for c in candidates if c.lower() == "logits"]
        listed = ", ".join(f"{c!r} {tensor_shape(types.get(c))}" for c in candidates)
        if len(named) != 1:
            raise UnsupportedModelError(
                f"The model has several outputs that could be class scores ({listed}) and "
                "none is named 'logits'; directionkit will not guess. Pass output= the "
                "name or index of the one holding the class scores."
            )
        chosen = named[0]
        note = (
            f"The model has several outputs that could be class scores ({listed}); the "
            f"class scores are read from {chosen!r} by its name (pass output= to choose)."
        )
        adapter.assumptions.append(note)
        warnings.warn(note, DirectionKitWarning, stacklevel=4)
    else:
        chosen = candidates[0]
    tp = types.get(chosen)
    if (
        asked is not None
        and tp is not None
        and (
            not np.issubdtype(np_dtype(tp), np.floating)
            or not class_scores_shape(tensor_shape(tp) or (0, 0))
        )
    ):
        raise UnsupportedModelError(
            f"Output {chosen!r} is not class scores: expected a float tensor of shape "
            f"(batch, classes), got {np_dtype(tp)} of shape {tensor_shape(tp)}."
        )
    op = probability_op(nodes, producers, chosen)
    kind = "logits" if op is None else OUTPUT_KINDS[op]
    if op is not None:
        log.info("Output %r comes from %s: %s.", chosen, op, OUTPUT_KIND_NOTES[kind])
    return chosen, kind


def _requested_name(
    outputs: Mapping[str, onnx.ValueInfoProto], requested: str | int | None
) -> str | None:
    """The name of the output ``output=`` asks for (by name or index), checked."""
    if isinstance(requested, int):
        names = list(outputs)
        if not -len(names) <= requested < len(names):
            raise InvalidParameterError(
                f"The 'output' parameter of OnnxAdapter is the index {requested}; the model "
                f"has {len(names)} outputs {names}."
            )
        return names[requested]
    if requested is not None and requested not in outputs:
        raise InvalidParameterError(
            f"The 'output' parameter of OnnxAdapter must name a graph output, one of "
            f"{sorted(outputs)}. Got {requested!r} instead."
        )
    return requested


def _candidates(graph: onnx.GraphProto, outputs: Mapping[str, onnx.ValueInfoProto]) -> list[str]:
    """The outputs that could hold class scores, or else the tensor a ZipMap reads."""
    candidates = [
        name
        for name, info in outputs.items()
        if np.issubdtype(np_dtype(info.type), np.floating)
        and class_scores_shape(tensor_shape(info.type))
        and info.type.HasField("tensor_type")
    ]
    if not candidates:  # skl2onnx: probabilities go through a ZipMap
        candidates = [n.input[0] for n in graph.node if n.op_type == "ZipMap" and n.input]
    return candidates


def probability_op(
    nodes: Sequence[onnx.NodeProto], producers: Mapping[str, int], tensor: str
) -> str | None:
    """The Softmax, LogSoftmax or Sigmoid that ``tensor`` comes straight out of, if any."""
    found = _probability_node(nodes, producers, tensor)
    return None if found is None else str(found.op_type)


def probability_source(
    nodes: Sequence[onnx.NodeProto], producers: Mapping[str, int], tensor: str
) -> str | None:
    """The tensor the Softmax (LogSoftmax, Sigmoid) producing ``tensor`` was applied to."""
    found = _probability_node(nodes, producers, tensor)
    return None if found is None else str(found.input[0])


def _probability_node(
    nodes: Sequence[onnx.NodeProto], producers: Mapping[str, int], tensor: str
) -> onnx.NodeProto | None:
    seen = 0
    while tensor in producers and seen < 16:
        node = nodes[producers[tensor]]
        if node.op_type in ("Softmax", "LogSoftmax", "Sigmoid"):
            return node
        if node.op_type not in ("Identity", "Cast", "Reshape", "Flatten", "Squeeze"):
            return None
        tensor, seen = node.input[0], seen + 1
    return None


def flatten_scores(adapter: OnnxAdapter) -> None:
    """Read ``(B, C, 1, ..., 1)`` class scores (a 1x1-conv head) as ``(B, C)``.

    A ``Flatten`` appended to the private copy gives the output the shape every
    consumer expects; probabilities stay probabilities (Flatten is looked through).
    """
    shape = tensor_shape(adapter._types.get(adapter.output_name))
    if shape is None or len(shape) <= 2:
        return
    graph = adapter._graph
    flat = f"{PREFIX}scores"
    graph.node.append(helper.make_node("Flatten", [adapter.output_name], [flat], axis=1))
    elem = adapter._types[adapter.output_name].tensor_type.elem_type
    info = helper.make_tensor_value_info(flat, elem, list(shape[:2]))
    graph.output.append(info)
    adapter._types[flat] = info.type
    adapter._producers[flat] = len(graph.node) - 1
    log.info("Output %r has shape %s; reading it as (batch, classes).", adapter.output_name,
             shape)  # fmt: skip
    adapter.output_name = flat


def checked_kind(adapter: OnnxAdapter, out: RunOutput) -> RunOutput:
    """On the first run, scores that no softmax made but that hold probabilities by their
    values (every row non-negative and summing to one) are taken as such, with a warning,
    as the torch adapter does."""
    if adapter._kind_checked:
        return out
    adapter._kind_checked = True
    if out.logits.shape[-1] == 1:  # one score per example: a binary classifier
        raw = out.logits
        if adapter.output_kind in LOGARITHM_TAKEN:  # the first run took log(p): undo it
            raw = np.exp(raw)
        adapter._kind_checked = False  # refused below: ask again next time
        kind = binary_kind(raw, adapter.output_description,
                           sigmoid=adapter.output_kind == "sigmoid-probabilities")  # fmt: skip
        adapter._kind_checked = True
        adapter.output_kind = kind
        log.info("Output %r: %s.", adapter.output_name, OUTPUT_KIND_NOTES[kind])
        return RunOutput(binary_columns(raw, kind), out.activations)
    if adapter.output_kind != "logits":
        return out
    found = probabilities_by_value(
        out.logits.reshape(-1, out.logits.shape[-1]), adapter.output_description
    )
    if found is None:
        return out
    guess, note = found
    adapter.assumptions.append(note)
    warnings.warn(note, DirectionKitWarning, stacklevel=3)
    adapter.output_kind = guess
    if guess not in LOGARITHM_TAKEN:
        return out
    logits = np.log(np.maximum(out.logits.astype(np.float32), np.finfo(np.float32).tiny))
    return RunOutput(logits, out.activations)
