"""Finding the sites of an ONNX graph, named as the torch adapter names them.

Graphs exported by torch's dynamo exporter carry, on every node, the module path stack
(``pkg.torch.onnx.name_scopes``: ``['', 'bert', ..., 'bert.encoder.layer.0.intermediate
.intermediate_act_fn', 'gelu']``, the last entry the FX node) and the matching class
stack (``pkg.torch.onnx.class_hierarchy``, the last entry the aten op).  The torch
adapter's rules (:mod:`directionkit.adapters.torch._trace`) read from them:

* an *activation module* is a module scope whose class is a torch activation
  (:data:`TORCH_ACTIVATIONS`), or a leaf scope (no module runs inside it) whose nodes are
  all element-wise, with at least one nonlinear op and no non-scalar initializer (no
  parameters): ``GELUActivation``, ``NewGELUActivation`` (exported as Mul/Pow/Tanh/Add),
  a user's ``Swish``.  Each run of its nodes is one call, its site the last node's
  output: ``"path"``, ``"path#1"``, ...;
* a *functional activation* is an FX node of an activation aten op (``aten.relu``,
  ``aten.gelu``, ``aten.silu`` -- exported as Sigmoid and Mul --, ...) outside any
  activation module: ``"{owner}.{function}()"`` with the owner the innermost module
  scope (``"relu()"`` in the model's own forward), ``#k`` for the owner's k-th further
  call of that function.

Graphs without that metadata (other exporters) have a site per activation node (see
:data:`ACTIVATION_OPS`), named by the legacy exporter's node names or the node's own.

The adapter's sites (:func:`discover`, :func:`requested_sites`) are those activations
that are not the output's own, with their units, unit axis and place in the graph
(:class:`SiteInfo`).
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import onnx

from directionkit.adapter import Site, given_unit_axis, guessed_unit_axis
from directionkit.errors import DirectionKitWarning, SiteNotFoundError, UnsupportedModelError

from ._axes import ELEMENTWISE_OPS, unit_axis
from ._graph import ShapeLookup, np_dtype, tensor_shape

if TYPE_CHECKING:
    from ._adapter import OnnxAdapter

__all__ = ["ACTIVATION_OPS", "TORCH_ACTIVATIONS", "Found", "find_sites"]

#: ONNX operators whose outputs are sites (default domain), in graphs without torch's
#: module metadata.
ACTIVATION_OPS = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh",
    "Gelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "ThresholdedRelu", "Mish",
})  # fmt: skip
#: PyTorch activation classes, as they appear in the dynamo exporter's class hierarchy
#: (the torch adapter's ``ACTIVATION_TYPES``).
TORCH_ACTIVATIONS = frozenset({
    "ReLU", "LeakyReLU", "ReLU6", "GELU", "SiLU", "Tanh", "Sigmoid", "ELU", "Hardswish",
    "Hardsigmoid", "Mish", "Softplus", "PReLU", "SELU", "CELU", "Hardtanh",
})  # fmt: skip
#: aten ops of functional activations -> the torch function's name (the torch adapter's
#: FUNCTIONAL_ACTIVATIONS).
ATEN_ACTIVATIONS = {
    name: name
    for name in (
        "relu", "relu6", "leaky_relu", "gelu", "silu", "mish", "elu", "selu", "celu",
        "hardswish", "hardsigmoid", "hardtanh", "softplus", "tanh", "sigmoid",
    )
}  # fmt: skip
#: Element-wise ops that are nonlinear (a module made only of Mul/Add is not an activation).
NONLINEAR_OPS = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Clip", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh",
    "Gelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "ThresholdedRelu", "Mish",
    "Erf", "Exp", "Log", "Pow", "Max", "Min", "Abs", "Sqrt", "Where", "Reciprocal",
})  # fmt: skip
SCOPES = "pkg.torch.onnx.name_scopes"
CLASSES = "pkg.torch.onnx.class_hierarchy"
_LEGACY_OP = re.compile(r"(?P<op>[A-Za-z]+)(?:_(?P<call>\d+))?")
_CALL_SUFFIX = re.compile(r"(?P<base>.+)_(?P<call>\d+)")
_FAKE_SCOPE = "_empty_nn_module_stack_from_metadata_hook"
_CONTAINERS = ("Sequential", "ModuleList", "ModuleDict")


@dataclass(frozen=True)
class Found:
    """A site in the graph: its tensor, the node producing it, its layer and its op label
    (the module class, ``"relu()"`` for a function, or the ONNX op type), and the tensor
    the activation was applied to (for a GELU exported as several nodes, the input of
    the first, not of the last)."""

    tensor: str
    node: int
    layer: str | None
    op: str
    entry: str = ""


def metadata(node: onnx.NodeProto) -> dict[str, str]:
    """A node's ``metadata_props`` as a dict."""
    return {p.key: p.value for p in node.metadata_props}


def literal_list(text: str | None) -> list[str]:
    """A Python-literal list stored as text (the exporter's format), or []."""
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _stacks(node: onnx.NodeProto) -> tuple[list[str], list[str]] | None:
    meta = metadata(node)
    scopes, classes = literal_list(meta.get(SCOPES)), literal_list(meta.get(CLASSES))
    if len(scopes) < 2 or len(scopes) != len(classes) or _FAKE_SCOPE in scopes:
        return None
    return scopes, classes


def torch_layer(scopes: Sequence[str], classes: Sequence[str], owner: int = -3) -> str | None:
    """The layer of an exported torch activation: the block owning it, as the torch
    adapter defines it (a module with its own forward, not the model itself and not a
    Sequential/ModuleList/ModuleDict); None when it is a layer of its own.

    ``scopes``/``classes`` are the exporter's module path and class stack, outermost
    (the model, scope ``""``) first, the aten op last; ``owner`` is the position of the
    owning module (-3 for an activation module's owner, -2 for a function's).

    Examples
    --------
    >>> torch_layer(["", "3", "3.relu", "relu_1"], ["m.Net", "m.Block", "nn.ReLU", "aten.relu"])
    '3'
    >>> torch_layer(["", "2", "relu"], ["torch.nn.modules.container.Sequential", "ReLU", "op"])
    >>> torch_layer(["", "blk", "relu"], ["m.Net", "m.Block", "aten.relu"], owner=-2)
    'blk'
    """
    if len(scopes) < -owner + 1 or len(classes) < -owner + 1:
        return None  # owned by the model itself
    name = classes[owner].rsplit(".", 1)[-1]
    if name in _CONTAINERS or not scopes[owner]:
        return None
    return scopes[owner]


def legacy_name(node_name: str, calls: dict[str, int]) -> str | None:
    """The module path in a legacy (TorchScript) exporter's node name, or None.

    ``/3/relu/Relu`` is module ``3.relu``; ``/features/features.2/Relu`` (older
    exporters spell the full path) is ``features.2``.  A module's second call is
    ``/3/relu_1/Relu`` (or ``.../Relu_1``): ``3.relu#1``.  ``calls`` counts the
    calls seen so far, so that a module really named ``relu_1`` keeps its name.

    Examples
    --------
    >>> calls = {}
    >>> legacy_name("/3/relu/Relu", calls), legacy_name("/3/relu_1/Relu", calls)
    ('3.relu', '3.relu#1')
    """
    if not node_name.startswith("/"):
        return None
    *segments, op = node_name[1:].split("/")
    match = _LEGACY_OP.fullmatch(op)
    if not segments or match is None:
        return None
    call = int(match["call"] or 0)
    suffix = _CALL_SUFFIX.fullmatch(segments[-1])
    if call == 0 and suffix is not None:
        base = [*segments[:-1], suffix["base"]]
        if _join_path(base) in calls:
            segments, call = base, int(suffix["call"])
    path = _join_path(segments)
    calls[path] = calls.get(path, 0) + 1
    return path if call == 0 else f"{path}#{call}"


def _join_path(segments: list[str]) -> str:
    if len(segments) >= 2 and segments[-1].startswith(segments[-2] + "."):
        return segments[-1]
    return ".".join(segments)


def _aten_function(op: str) -> str | None:
    """``"relu"`` for ``"aten.relu.default"``; None for ops that are not activations."""
    parts = op.split(".")
    if len(parts) < 2 or parts[0] != "aten":
        return None
    return ATEN_ACTIVATIONS.get(parts[1].rstrip("_"))


def activation_scopes(
    nodes: Sequence[onnx.NodeProto], keep: set[int], initializers: Mapping[str, np.ndarray]
) -> set[str]:
    """The module scopes that are activation modules (see the module docs)."""
    ops: dict[str, set[str]] = {}
    classes_of: dict[str, str] = {}
    parameters: set[str] = set()
    parents: set[str] = set()
    for index in keep:
        stacks = _stacks(nodes[index])
        if stacks is None:
            continue
        scopes, classes = stacks
        scope = scopes[-2]
        if not scope:
            continue  # the model itself
        ops.setdefault(scope, set()).add(nodes[index].op_type)
        classes_of[scope] = classes[-2].rsplit(".", 1)[-1]
        parents.update(scopes[1:-2])
        if any(np.size(initializers[t]) > 1 for t in nodes[index].input if t in initializers):
            parameters.add(scope)
    found = set()
    for scope, used in ops.items():
        if classes_of[scope] in TORCH_ACTIVATIONS:
            found.add(scope)
        elif (
            scope not in parents
            and scope not in parameters
            and used <= ELEMENTWISE_OPS | {"Constant"}
            and used & NONLINEAR_OPS
        ):
            found.add(scope)
    return found


def find_sites(
    nodes: Sequence[onnx.NodeProto],
    keep: set[int],
    initializers: Mapping[str, np.ndarray],
) -> dict[str, Found]:
    """Every activation of the graph, by name, in graph order (see the module docs)."""
    modules = activation_scopes(nodes, keep, initializers)
    found: dict[str, Found] = {}
    entries: dict[str, str] = {}  # name -> the input of the call's first node
    calls: dict[str, int] = {}  # module scope, or (owner, function) -> calls so far
    functions: dict[tuple[str, str], int] = {}
    previous_scope: str | None = None
    previous_fx: str | None = None
    for index, node in enumerate(nodes):
        if index not in keep:
            continue
        stacks = _stacks(node)
        if stacks is not None:
            scopes, classes = stacks
            scope = scopes[-2]
            if scope in modules:
                if scope != previous_scope:  # a new call of that module
                    calls[scope] = calls.get(scope, 0) + 1
                count = calls[scope] - 1
                name = scope if count == 0 else f"{scope}#{count}"
                label = classes[-2].rsplit(".", 1)[-1]
                entries.setdefault(name, _data_input(node, initializers))
                found[name] = Found(
                    node.output[0], index, torch_layer(scopes, classes), label, entries[name]
                )
                previous_scope, previous_fx = scope, None
                continue
            previous_scope = None
            function = _aten_function(classes[-1])
            if function is None:
                previous_fx = None
                continue
            fx = scopes[-1]
            key = (scope, function)
            if fx != previous_fx:  # a new FX node: a new call (one call may be several nodes)
                functions[key] = functions.get(key, 0) + 1
            previous_fx = fx
            count = functions[key] - 1
            base = f"{scope}.{function}()" if scope else f"{function}()"
            name = base if count == 0 else f"{base}#{count}"
            entries.setdefault(name, _data_input(node, initializers))
            found[name] = Found(
                node.output[0], index, torch_layer(scopes, classes, owner=-2), f"{function}()",
                entries[name],
            )  # fmt: skip
            continue
        previous_scope = previous_fx = None
        if node.op_type not in ACTIVATION_OPS or node.domain not in ("", "ai.onnx"):
            continue
        if metadata(node).get(SCOPES):
            continue  # torch metadata this reader does not use (a shape computation)
        name = legacy_name(node.name, calls) or node.name or node.output[0]
        if name in found:
            name = node.output[0]
        tensor, at, op = _gated(node, index, nodes, keep, initializers)
        found[name] = Found(tensor, at, None, op, node.input[0])
    return found


def _gated(
    node: onnx.NodeProto,
    index: int,
    nodes: Sequence[onnx.NodeProto],
    keep: set[int],
    initializers: Mapping[str, np.ndarray],
) -> tuple[str, int, str]:
    """``(tensor, node, op)`` of the activation an activation node belongs to.

    Exporters write some activations as a gate times the input: hard-swish as
    ``x * Clip(x + 3, 0, 6) / 6`` (paddle2onnx at opset 11), swish as ``x * Sigmoid(x)``.
    The unit's activity is then the product (scaled), not the gate: when the node's only
    consumer is a ``Mul`` by the node's own input (or that input before a constant
    shift), the product -- and a ``Div``/``Mul`` by a constant after it -- is the site.
    A gate of another tensor (a squeeze-excitation gate) stays the site it is.
    """
    consumers: dict[str, list[int]] = {}
    for i in keep:
        for tensor in nodes[i].input:
            consumers.setdefault(tensor, []).append(i)
    producers = {out: i for i in keep for out in nodes[i].output}
    data = [t for t in node.input if t and t not in initializers]
    if not data:
        return node.output[0], index, node.op_type
    roots = {data[0]}
    before = producers.get(data[0])
    if before is not None and nodes[before].op_type in ("Add", "Sub", "Mul", "Div"):
        shifted = [t for t in nodes[before].input if t not in initializers]
        if len(shifted) == 1:
            roots.add(shifted[0])
    users = consumers.get(node.output[0], [])
    if len(users) != 1 or nodes[users[0]].op_type != "Mul":
        return node.output[0], index, node.op_type
    product = nodes[users[0]]
    other = [t for t in product.input if t != node.output[0]]
    if len(other) != 1 or other[0] not in roots:
        return node.output[0], index, node.op_type
    tensor, at = product.output[0], users[0]
    after = consumers.get(tensor, [])
    if len(after) == 1 and nodes[after[0]].op_type in ("Div", "Mul"):
        scale = nodes[after[0]]
        if any(t in initializers for t in scale.input if t != tensor):
            tensor, at = scale.output[0], after[0]
    return tensor, at, f"x*{node.op_type}"


def _data_input(node: onnx.NodeProto, initializers: Mapping[str, np.ndarray]) -> str:
    """The first input of ``node`` that is not a weight or constant."""
    return next((t for t in node.input if t and t not in initializers), node.input[0])


# -- the adapter's sites ------------------------------------------------------------
#: Ops that mix units (the output is reached from a site through none of them).
MIXING_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "Einsum"})


@dataclass(frozen=True)
class SiteInfo:
    """Where a site lives in the graph."""

    tensor: str
    rank: int
    dims: tuple[int | None, ...]  # per-example dims (without the batch axis); None = unknown
    dtype: np.dtype[Any]
    producer: int  # index of the node that produces ``tensor``
    entry: str = ""  # the tensor the activation was applied to (its weights come before)


def near_output(adapter: OnnxAdapter) -> set[str]:
    """Tensors from which the output is reached without a Conv/Gemm/MatMul."""
    near = {adapter.output_name}
    for node in reversed(adapter._graph.node):
        if node.op_type not in MIXING_OPS and any(o in near for o in node.output):
            near.update(t for t in node.input if t not in adapter._static)
    return near


def discover(adapter: OnnxAdapter, required: bool = True) -> dict[str, Site]:
    """The hidden activation sites (see :func:`find_sites`), filling the adapter's
    ``_site_info`` and ``_site_ops``."""
    nodes = adapter._graph.node
    near = near_output(adapter)
    sites: dict[str, Site] = {}
    for name, where in find_sites(nodes, adapter._keep, adapter._consts).items():
        if where.tensor in near:
            continue  # the output's own activation (a final Softmax/Sigmoid, class maps)
        site = site_of(
            adapter, name, where.tensor, where.node, where.layer, len(sites), where.entry
        )
        if site is not None:
            sites[name] = site
            adapter._site_ops[name] = where.op
    if not sites and required:
        ops = sorted({n.op_type for i, n in enumerate(nodes) if i in adapter._keep})
        inside = [n.op_type for n in nodes if n.op_type in ("If", "Loop", "Scan")]
        control = (
            f" Its {sorted(set(inside))} nodes hold subgraphs, whose activations "
            "directionkit cannot reach."
            if inside
            else ""
        )
        raise UnsupportedModelError(
            "The model has no hidden activation to use as a site: no node of type "
            f"{', '.join(sorted(ACTIVATION_OPS))} (nor a torch activation module or "
            f"function) before its last mixing layer. Its node types: {', '.join(ops)}."
            f"{control} Name tensors to use as sites with sites=[...]."
        )
    return sites


def site_of(
    adapter: OnnxAdapter,
    name: str,
    tensor: str,
    index: int,
    layer: str | None,
    depth: int,
    entry: str = "",
) -> Site | None:
    """The site for ``tensor`` (produced by node ``index``), or None when it is not a
    per-example activation of known rank; its :class:`SiteInfo` goes to the adapter's
    ``_site_info``."""
    tp = adapter._types.get(tensor)
    shape = tensor_shape(tp)
    if shape is None or len(shape) < 2:
        return None
    dims = shape[1:]
    axis, source, channels = _site_unit_axis(adapter, name, tensor, shape)
    n_units = dims[axis]
    if n_units is None:
        raise UnsupportedModelError(
            f"The number of units of site {name!r} (tensor {tensor!r}, shape {shape}, "
            f"units on axis {axis + 1}) is not known from shape inference."
        )
    kind: Literal["dense", "conv"] = "conv" if channels or len(dims) >= 3 else "dense"
    known = tuple(int(d) for d in dims if d is not None)
    adapter._site_info[name] = SiteInfo(
        tensor, len(shape), dims, np_dtype(tp), index,
        entry or adapter._graph.node[index].input[0],
    )  # fmt: skip
    return Site(
        name, int(n_units), kind, depth, layer, known if len(known) == len(dims) else None,
        axis, source,
    )  # fmt: skip


def _site_unit_axis(
    adapter: OnnxAdapter, name: str, tensor: str, shape: tuple[int | None, ...]
) -> tuple[int, str, bool]:
    """``(axis of one example's activation, what fixed it, made by a convolution)``."""
    rank = len(shape) - 1
    given = given_unit_axis(adapter._unit_axes, name, shape[1:])
    if given is not None:
        return given, "given", False
    shapes = ShapeLookup(adapter._types)
    evidence = unit_axis(
        tensor, shape, adapter._graph.node, adapter._producers, adapter._static, shapes
    )
    if rank == 1:
        return 0, evidence.op if evidence is not None else "rank", False
    if evidence is not None and evidence.axis >= 1:
        return evidence.axis - 1, evidence.op, evidence.channels
    default, note = guessed_unit_axis(name, shape[1:])
    adapter.assumptions.append(note)
    warnings.warn(note, DirectionKitWarning, stacklevel=5)
    return default, "guess", rank >= 3


def requested_sites(
    adapter: OnnxAdapter, sites: Sequence[str], found: dict[str, Site]
) -> dict[str, Site]:
    """The named sites: found ones, or any tensor of the graph by its name."""
    chosen: dict[str, Site] = {}
    for name in sites:
        if name in found:
            chosen[name] = found[name]
            continue
        index = adapter._producers.get(name)
        site = None if index is None else site_of(adapter, name, name, index, None, 0)
        if site is None:
            error = SiteNotFoundError(name, found)
            error.args = (
                f"{error.args[0][:-1]}; or any tensor of the graph holding a per-example "
                "activation of known rank (a node output).",
            )
            raise error
        adapter._site_ops[name] = adapter._graph.node[index].op_type
        chosen[name] = site
    # forward (graph) order, as found sites are
    return dict(sorted(chosen.items(), key=lambda item: adapter._site_info[item[0]].producer))
