"""A site's incoming weights (the L1 norm of each unit's filter, raw or with BatchNorm
folded in) and the model as a chain of affine layers, read from the initializers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper

from directionkit.adapter import LinearChain
from directionkit.errors import SiteNotFoundError, UnsupportedModelError

from ._graph import tensor_shape
from ._sites import CLASSES, literal_list, metadata

if TYPE_CHECKING:
    from ._adapter import OnnxAdapter


def weight_l1(adapter: OnnxAdapter, site: str, folded: bool) -> tuple[np.ndarray, bool]:
    """The L1 norms, and whether the producer carries an exporter-folded BatchNorm."""
    if site not in adapter._sites:
        raise SiteNotFoundError(site, adapter._sites)
    info = adapter._site_info[site]
    n_units = adapter._sites[site].n_units
    factor = np.ones(n_units)
    nodes = adapter._graph.node
    tensor = info.entry
    producers = adapter._producers
    consts, static = adapter._consts, adapter._static
    while True:
        index = producers.get(tensor)
        if index is None:
            break
        node = nodes[index]
        op = node.op_type
        if op in ("Conv", "Gemm", "MatMul"):
            classes = literal_list(metadata(node).get(CLASSES))
            from_batchnorm = len(classes) >= 2 and "BatchNorm" in classes[-2]
            l1 = _producer_l1(consts, node, site, n_units)
            return (factor * l1 if folded else l1), from_batchnorm
        if op == "BatchNormalization":
            gamma, var = consts.get(node.input[1]), consts.get(node.input[4])
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            if gamma is None or var is None:
                break
            factor = factor * np.abs(gamma / np.sqrt(var.astype(np.float64) + eps))
            tensor = node.input[0]
        elif op in ("Add", "Sub", "Mul", "Div") and len(node.input) == 2:
            # a bias may be computed from constants (paddle2onnx reshapes it first)
            data = [t for t in node.input if t not in static]
            const = [t for t in node.input if t in static]
            if len(data) == 2 and op == "Add":  # a residual sum: the branch computed last
                tensor = max(data, key=lambda t: producers.get(t, -1))
                continue
            if len(data) != 1 or len(const) != 1:
                break
            if op in ("Mul", "Div"):
                if const[0] not in consts:
                    break
                value = np.asarray(consts[const[0]], np.float64)
                per_unit = _per_unit(value, n_units)
                if per_unit is None:
                    break
                factor = factor * (np.abs(per_unit) if op == "Mul" else 1 / np.abs(per_unit))
            tensor = data[0]
        elif op in ("Identity", "Cast", "Dropout"):
            tensor = node.input[0]
        elif op == "Reshape" and _keeps_last_axis(adapter._types, node):
            tensor = node.input[0]  # (N*T, U) -> (N, T, U): a Linear on 3-d input
        else:
            break
    raise UnsupportedModelError(
        f"No Conv, Gemm or MatMul with constant weights produces site {site!r}; its "
        "incoming weights are unknown."
    )


def _keeps_last_axis(types: Mapping[str, onnx.TypeProto], node: onnx.NodeProto) -> bool:
    """Whether a Reshape keeps the last axis, of the same known length."""
    before = tensor_shape(types.get(node.input[0]))
    after = tensor_shape(types.get(node.output[0]))
    return bool(before and after and before[-1] is not None and before[-1] == after[-1])


def _per_unit(value: np.ndarray, n_units: int) -> np.ndarray | None:
    if value.size == 1:
        return np.full(n_units, float(value.reshape(())))
    squeezed = value.reshape(-1)
    return squeezed if squeezed.size == n_units else None


def _producer_l1(
    consts: Mapping[str, np.ndarray], node: onnx.NodeProto, site: str, n_units: int
) -> np.ndarray:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        weight = consts.get(node.input[1])
        axis = 0
    elif node.op_type == "Gemm":
        weight = consts.get(node.input[1])
        axis = 0 if attrs.get("transB", 0) else 1
    else:  # MatMul: x @ W, W of shape (in, out)
        weight = consts.get(node.input[1])
        axis = weight.ndim - 1 if weight is not None else 0
    if weight is None:
        raise UnsupportedModelError(
            f"The {node.op_type} producing site {site!r} has no constant weights."
        )
    w = np.moveaxis(np.abs(np.asarray(weight, np.float64)), axis, 0)
    l1 = w.reshape(w.shape[0], -1).sum(axis=1)
    if l1.shape[0] != n_units:
        raise UnsupportedModelError(
            f"The {node.op_type} producing site {site!r} has {l1.shape[0]} outputs but "
            f"the site has {n_units} units."
        )
    return l1


def find_chain(adapter: OnnxAdapter) -> LinearChain | None:
    """The chain of affine layers with ReLU sites the model is, walking from its input,
    or None (see :meth:`OnnxAdapter.linear_chain`)."""
    nodes, consts = adapter._graph.node, adapter._consts
    consumers: dict[str, list[int]] = {}
    for index in sorted(adapter._keep):
        for tensor in nodes[index].input:
            consumers.setdefault(tensor, []).append(index)
    site_of = {info.tensor: name for name, info in adapter._site_info.items()}
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    site_layers: dict[str, int] = {}
    tensor, flat = adapter._input, len(adapter._input_dims) == 2
    while tensor != adapter.output_name:
        users = [i for i in consumers.get(tensor, []) if nodes[i].op_type != "Shape"]
        if len(users) != 1:
            return None
        node = nodes[users[0]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        op, out = node.op_type, node.output[0]
        if op in ("Cast", "Identity") or (op in ("Flatten", "Reshape") and not weights):
            flat = flat or len(tensor_shape(adapter._types.get(out)) or ()) == 2
        elif op == "Gemm" and flat and node.input[1] in consts and not attrs.get("transA"):
            if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                return None
            w = np.asarray(consts[node.input[1]], np.float64)
            weights.append(w.T if attrs.get("transB") else w)
            b = consts.get(node.input[2]) if len(node.input) > 2 else None
            n_out = weights[-1].shape[1]
            bias = np.zeros(n_out) if b is None else np.asarray(b, np.float64).reshape(-1)
            if bias.size not in (1, n_out):
                return None
            biases.append(np.broadcast_to(bias, n_out).copy())
        elif op == "MatMul" and flat and node.input[0] == tensor and node.input[1] in consts:
            weights.append(np.asarray(consts[node.input[1]], np.float64))
            biases.append(np.zeros(weights[-1].shape[1]))
        elif op == "Add" and weights and len(biases[-1]) and not biases[-1].any():
            other = [t for t in node.input if t != tensor]
            if len(other) != 1 or other[0] not in consts:
                return None
            b = np.asarray(consts[other[0]], np.float64).reshape(-1)
            if b.size not in (1, weights[-1].shape[1]):
                return None
            biases[-1] = np.broadcast_to(b, weights[-1].shape[1]).copy()
        elif op == "Relu" and out in site_of and weights:
            site_layers[site_of[out]] = len(weights) - 1
        elif op == "Softmax" and out == adapter.output_name and weights:
            pass
        else:
            return None
        if weights and weights[-1].ndim != 2:
            return None
        tensor = out
    if not weights or not all(name in site_layers for name in adapter._sites):
        return None
    return LinearChain(tuple(weights), tuple(biases), site_layers)
