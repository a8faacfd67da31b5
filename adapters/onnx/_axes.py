"""The unit axis of an ONNX tensor, read from the layer that produced it.

The same rule as the torch adapter's (:mod:`directionkit.adapters.torch._trace`): from
the tensor, walk back through element-wise operations (a bias ``Add``, ``Mul``,
``Relu``, ``Cast``, ...; at a residual ``Add`` of two computed tensors, the one computed
last) and ``Transpose`` (whose permutation moves the axis) to the producing layer:

* ``Conv``/``ConvTranspose``, ``BatchNormalization``, ``InstanceNormalization``,
  ``GroupNormalization``: the channel axis, 1;
* ``Gemm``, ``MatMul``, and ``LSTM``/``GRU``/``RNN`` (whose outputs end in the hidden
  units): the last axis (also through a ``Reshape`` that keeps the last
  axis's length, as a Linear on 3-d input is exported: ``Gemm`` then ``(N, T, U)``);
* ``LayerNormalization``: the axis of the normalised length (its last axis unless a
  transpose after it moved it).

The walk stops at anything else (a ``Reshape``, a pooling); then the axis whose length
is the producer's unit count, when exactly one has it, and otherwise no axis (the
caller assumes one and says so).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import helper

__all__ = ["AxisEvidence", "unit_axis"]

#: Element-wise operations the unit axis passes through unchanged.
ELEMENTWISE_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Where", "Neg", "Abs", "Sqrt", "Exp",
    "Log", "Erf", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "PRelu", "Clip", "HardSwish",
    "HardSigmoid", "Gelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
    "ThresholdedRelu", "Cast", "Identity", "Dropout", "Reciprocal", "Floor", "Ceil",
    "Round", "Sign", "Not", "Equal", "Less", "Greater", "Sin", "Cos",
})  # fmt: skip
_CHANNELS = frozenset(
    {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "GroupNormalization"}
)
_CONV_LIKE = frozenset({"Conv", "ConvTranspose"})


@dataclass(frozen=True)
class AxisEvidence:
    """What fixed a tensor's unit axis: the axis (of the full tensor, batch included),
    the producing op, and whether the producer is a convolution or a channel norm."""

    axis: int
    op: str
    channels: bool


def unit_axis(
    tensor: str,
    shape: Sequence[int | None],
    nodes: Sequence[onnx.NodeProto],
    producers: Mapping[str, int],
    constants: Collection[str],
    shapes: Mapping[str, Sequence[int | None] | None],
) -> AxisEvidence | None:
    """The unit axis of ``tensor`` (of rank ``len(shape)``, batch included), or None.

    ``constants`` holds the tensors that depend on no graph input (weights, biases and
    what is computed from them alone); ``shapes`` the static shapes known.

    Examples
    --------
    >>> from onnx import helper
    >>> nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
    ...          helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1]),
    ...          helper.make_node("Relu", ["t"], ["a"])]
    >>> producers = {"c": 0, "t": 1, "a": 2}
    >>> unit_axis("a", (None, 4, 4, 8), nodes, producers, {}, {})
    AxisEvidence(axis=3, op='Conv', channels=True)
    """
    rank = len(shape)
    # axis of the current tensor -> axis of `tensor` (None: it does not carry over)
    axis_map: list[int | None] = list(range(rank))
    current = tensor
    for _ in range(256):  # a bound on the walk, in case of a malformed graph
        index = producers.get(current)
        if index is None:
            return None
        node = nodes[index]
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            return None
        current_rank = len(axis_map)
        if op in _CHANNELS:
            return _mapped(1, axis_map, op, channels=True)
        if op in ("Gemm", "MatMul", "LSTM", "GRU", "RNN"):  # an RNN's outputs end in hidden
            return _mapped(current_rank - 1, axis_map, op, channels=False)
        if op == "LayerNormalization":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            start = int(attrs.get("axis", -1)) % current_rank
            return _mapped(current_rank - 1 if start == current_rank - 1 else start,
                           axis_map, op, channels=False)  # fmt: skip
        if op == "Transpose":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            perm = list(attrs.get("perm", range(current_rank - 1, -1, -1)))
            # output axis i is input axis perm[i]: input axis j is output axis perm.index(j)
            axis_map = [axis_map[perm.index(j)] for j in range(current_rank)]
            current = node.input[0]
            continue
        if op == "Reshape":
            # (N*T, U) -> (N, T, U), as a Linear on 3-d input is exported: only a last axis
            # of the same known length carries over
            before, after = shapes.get(node.input[0]), shapes.get(current)
            last = after[-1] if after is not None and len(after) == current_rank else None
            if last is None and axis_map[-1] is not None:
                last = shape[axis_map[-1]]  # shape inference lost it; the site's own length
            if before is None or before[-1] is None or before[-1] != last:
                return None
            axis_map = [None] * (len(before) - 1) + [axis_map[-1]]
            current = node.input[0]
            continue
        if op in ELEMENTWISE_OPS:
            data = [t for t in node.input if t and t not in constants and t in producers]
            if not data:
                return None
            current = max(data, key=lambda t: producers.get(t, -1))
            shape_of = shapes.get(current)
            if shape_of is not None and len(shape_of) != current_rank:
                return None  # broadcast from another rank: the axes do not line up
            continue
        return None
    return None


def _mapped(axis: int, axis_map: list[int | None], op: str, channels: bool) -> AxisEvidence | None:
    mapped = axis_map[axis]
    if mapped is None:
        return None
    return AxisEvidence(mapped, op, channels and op in _CONV_LIKE | _CHANNELS)
