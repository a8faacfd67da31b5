"""ONNX models for the adapter tests: torch exports (dynamo) and hand-built graphs.

Exports are slow (seconds), so each is made once per test session, into a temporary
directory (removed when the test process exits), with the torch exporter's default
external data file next to it.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_DIR = Path(tempfile.mkdtemp(prefix="directionkit-onnx-tests-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def export(module, example: np.ndarray, name: str, opset: int | None = None) -> Path:  # type: ignore[no-untyped-def]
    """Export a torch module with the dynamo exporter and a free batch axis."""
    import torch

    path = _DIR / f"{name}.onnx"
    batch = torch.export.Dim("batch")
    kwargs = {} if opset is None else {"opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.from_numpy(example),),
            str(path),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            verbose=False,
            **kwargs,
        )
    return path


@functools.cache
def exported_mlp() -> Path:
    from tests.adapters.test_torch import mlp

    return export(mlp(), np.zeros((2, 6), np.float32), "mlp")


@functools.cache
def exported_reference_mlp() -> Path:
    """directionkit.reference_models.models.MLP (Flatten first) on 1x8x8 digits-shaped input."""
    import torch

    from directionkit.reference_models.models import MLP

    torch.manual_seed(0)
    return export(MLP(64, (24, 12), 10), np.zeros((2, 1, 8, 8), np.float32), "reference_mlp")


@functools.cache
def exported_convnet() -> Path:
    from tests.adapters.test_torch import convnet

    return export(convnet(), np.zeros((2, 2, 5, 5), np.float32), "convnet")


def dense_graph(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    *,
    batch: int | str = "N",
    final: str | None = None,
    opset: int = 17,
    ir_version: int | None = None,
    initializers_as_inputs: bool = False,
    names: list[str] | None = None,
    gemm: bool = False,
) -> onnx.ModelProto:
    """A ReLU MLP as MatMul+Add (or Gemm) nodes; ``final`` appends Softmax or Sigmoid."""
    nodes, inits = [], []
    h = "x"
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        if gemm:
            wt = f"w{i}t"
            inits.append(numpy_helper.from_array(w.T.astype(np.float32).copy(), wt))
            nodes.append(helper.make_node("Gemm", [h, wt, f"b{i}"], [f"z{i}"], transB=1))
        else:
            nodes.append(helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Add", [f"m{i}", f"b{i}"], [f"z{i}"]))
        h = f"z{i}"
        if i < len(weights) - 1:
            name = names[i] if names else f"act{i}"
            nodes.append(helper.make_node("Relu", [h], [f"a{i}"], name=name))
            h = f"a{i}"
    out = h
    if final is not None:
        kwargs = {"axis": 1} if final == "Softmax" else {}
        nodes.append(helper.make_node(final, [h], ["probs"], **kwargs))
        out = "probs"
    n_in, n_out = weights[0].shape[0], weights[-1].shape[1]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, n_in])]
    if initializers_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    graph = helper.make_graph(
        nodes, "dense", inputs,
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, n_out])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def random_dense(seed: int = 0, sizes: tuple[int, ...] = (6, 5, 4, 3)) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, np.sqrt(2 / a), (a, b)) for a, b in itertools.pairwise(sizes)]
    biases = [rng.normal(0, 0.1, b) for b in sizes[1:]]
    return weights, biases


def pin_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """The model with its batch size built in: the input goes through one flat row and back.

    ``Reshape(x, [1, -1])`` then ``Reshape(., [batch, -1])``: the graph then runs only on
    batches of exactly ``batch`` rows, whatever its input says, and no rewrite of the
    batch axis can free it.
    """
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    graph = pinned.graph
    graph.initializer.append(numpy_helper.from_array(np.array([1, -1], np.int64), "one_row"))
    graph.initializer.append(numpy_helper.from_array(np.array([batch, -1], np.int64), "pin"))
    for node in graph.node:
        node.input[:] = ["x_pinned" if t == "x" else t for t in node.input]
    graph.node.insert(0, helper.make_node("Reshape", ["x_row", "pin"], ["x_pinned"]))
    graph.node.insert(0, helper.make_node("Reshape", ["x", "one_row"], ["x_row"]))
    return pinned
