"""Reading an ONNX graph: tensor types and shapes, constants, and what depends on what.

Shared by the other modules of :mod:`directionkit.adapters.onnx`; nothing here edits a
graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

#: The prefix of every tensor, input and node name the adapter adds to its private copy.
PREFIX = "directionkit__"


class ShapeLookup(Mapping[str, Any]):
    """Tensor name -> static shape (None where unknown), read from the inferred types."""

    def __init__(self, types: Mapping[str, onnx.TypeProto]) -> None:
        self._types = types

    def __getitem__(self, name: str) -> tuple[int | None, ...] | None:
        return tensor_shape(self._types.get(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


def opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node values, by tensor name."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """The tensors a control-flow node's bodies read that they do not make themselves:
    outer-scope tensors, which the node depends on as much as on its inputs."""
    reads: set[str] = set()
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
        for graph in graphs:
            made = {i.name for i in graph.input} | {i.name for i in graph.initializer}
            for inner in graph.node:
                reads.update(t for t in (*inner.input, *subgraph_reads(inner))
                             if t and t not in made)  # fmt: skip
                made.update(inner.output)
    return reads


def static_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors that depend on no graph input: initializers, constants, and what nodes
    compute from them alone (a bias reshaped to ``(1, C, 1, 1)``)."""
    inputs = {i.name for i in graph.input} - {init.name for init in graph.initializer}
    static = {init.name for init in graph.initializer}
    for node in graph.node:
        if all(t in static for t in node.input if t) and not (set(node.input) & inputs):
            static.update(node.output)
    return static


def ancestors(
    nodes: Sequence[onnx.NodeProto], producers: Mapping[str, int], tensors: Iterable[str]
) -> set[int]:
    """Indices of the nodes (of ``nodes``, a graph's node list) that ``tensors`` depend on."""
    needed: set[int] = set()
    stack = [producers[t] for t in tensors if t in producers]
    while stack:
        index = stack.pop()
        if index in needed:
            continue
        needed.add(index)
        node = nodes[index]
        # a control-flow node (If, Loop, Scan) also reads outer tensors inside its bodies
        inputs = [*node.input, *subgraph_reads(node)]
        stack.extend(producers[t] for t in inputs if t in producers)
    return needed


def value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    if model.ir_version < 4:  # IR 3 lists every initializer as an input; old files may not
        upgraded = onnx.ModelProto()
        upgraded.CopyFrom(model)
        upgraded.ir_version = 4  # the same graph, initializers read as constants
        model = upgraded
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference is a help, not a requirement
        inferred = model
    graph = inferred.graph
    types = {}
    for info in (*graph.value_info, *graph.input, *graph.output):
        types[info.name] = info.type
    for init in graph.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
    return types


def tensor_shape(tp: onnx.TypeProto | None) -> tuple[int | None, ...] | None:
    """Static dims (None where symbolic), or None when the rank is unknown."""
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    # a dim_value of -1 (paddle2onnx's free batch axis) or 0 is not a size: unknown
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tp.tensor_type.shape.dim
    )


def np_dtype(tp: onnx.TypeProto | None) -> np.dtype[Any]:
    if tp is None or not tp.HasField("tensor_type"):
        return np.dtype(np.float32)
    return np.dtype(helper.tensor_dtype_to_np_dtype(tp.tensor_type.elem_type))
