"""The ONNX adapter on real third-party files: odd output shapes, checker failures,
fixed-batch exports, custom operators and external data stored where it should not be."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.onnx import OnnxAdapter  # noqa: E402
from directionkit.errors import UnsupportedModelError  # noqa: E402
from directionkit.testing import NumpyMLPAdapter  # noqa: E402
from tests.adapters.onnx_models import dense_graph, pin_batch, random_dense  # noqa: E402

pytestmark = pytest.mark.requires_onnxruntime
LOGGER = "directionkit.adapters.onnx"


def rows(batch: int, features: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, features)).astype(np.float32)


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# -- class scores of shape (N, C, 1, 1) ------------------------------------------------------
def with_singleton_dims(model: onnx.ModelProto, final: str | None = None) -> onnx.ModelProto:
    """``dense_graph``'s logits ``z2`` unsqueezed to (N, C, 1, 1), then optionally Softmax."""
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array([2, 3], np.int64), "axes"))
    graph.node.append(helper.make_node("Unsqueeze", ["z2", "axes"], ["scores4"]))
    out = "scores4"
    if final == "Softmax":
        graph.node.append(helper.make_node("Softmax", ["scores4"], ["probs4"], axis=1))
        out = "probs4"
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", 3, 1, 1]))
    return model


@pytest.mark.parametrize("final", [None, "Softmax"])
def test_class_scores_with_trailing_singleton_dims_are_read_as_batch_by_classes(
    final: str | None,
) -> None:
    weights, biases = random_dense(1)
    adapter = OnnxAdapter(with_singleton_dims(dense_graph(weights, biases), final))
    reference = NumpyMLPAdapter(weights, biases)
    assert adapter.output_kind == ("probabilities" if final else "logits")
    iv = Interventions.zero_ablate(adapter.sites, {"act0": np.eye(5, dtype=bool)})
    ref_iv = Interventions.zero_ablate(reference.sites, {"hidden0": np.eye(5, dtype=bool)})
    got = adapter.run(rows(4), iv).logits
    want = reference.run(rows(4), ref_iv).logits
    assert got.shape == (5, 4, 3)
    np.testing.assert_allclose(got, log_softmax(want) if final else want, 1e-4, 1e-4)


def test_a_conv_head_ending_in_global_pooling_and_softmax_is_accepted() -> None:
    """The zoo pattern: 1x1 conv to C maps, global average pool, softmax: (N, C, 1, 1)."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=(3, 4, 1, 1))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
         helper.make_node("Conv", ["r1", "w2"], ["c2"]),
         helper.make_node("GlobalAveragePool", ["c2"], ["pooled"]),
         helper.make_node("Softmax", ["pooled"], ["probs"], axis=1)],
        "zoo", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3, 1, 1])],
        [numpy_helper.from_array(w1.astype(np.float32), "w1"),
         numpy_helper.from_array(w2.astype(np.float32), "w2")],
    )  # fmt: skip
    adapter = OnnxAdapter(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert list(adapter.sites) == ["relu1"] and adapter.sites["relu1"].kind == "conv"
    x = rng.normal(size=(3, 2, 5, 5)).astype(np.float32)
    # by hand: the 1x1 conv and the average pool commute, so the scores are w2 @ mean(relu)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.zeros((3, 4, 5, 5))
    for i in range(5):
        for j in range(5):
            conv[:, :, i, j] = np.einsum("nchw,ochw->no", padded[:, :, i : i + 3, j : j + 3], w1)
    logits = np.maximum(conv, 0).mean((2, 3)) @ w2[:, :, 0, 0].T
    np.testing.assert_allclose(adapter.run(x).logits[0], log_softmax(logits), 1e-4, 1e-4)


# -- what onnxruntime runs is audited --------------------------------------------------------
def test_a_model_that_fails_the_checker_but_runs_is_audited_with_a_warning(caplog) -> None:  # type: ignore[no-untyped-def]
    """IR 3 wants every initializer listed as a graph input; onnxruntime does not care."""
    weights, biases = random_dense(2)
    model = dense_graph(weights, biases, ir_version=3)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        adapter = OnnxAdapter(model)
    assert "fails onnx.checker" in caplog.text and "initializer" in caplog.text
    want = NumpyMLPAdapter(weights, biases).run(rows(5)).logits
    np.testing.assert_allclose(adapter.run(rows(5)).logits, want, 1e-4, 1e-4)


def test_custom_domain_operators_are_a_clear_error() -> None:
    model = dense_graph(*random_dense())
    model.graph.node[-1].domain = "com.example.vendor"  # the last Add
    model.opset_import.append(helper.make_opsetid("com.example.vendor", 1))
    with pytest.raises(UnsupportedModelError, match=r"custom domain.*com\.example\.vendor"):
        OnnxAdapter(model)


# -- fixed-batch exports ---------------------------------------------------------------------
def test_a_fixed_batch_is_freed_and_gives_the_numbers_of_a_free_batch(caplog) -> None:  # type: ignore[no-untyped-def]
    weights, biases = random_dense(3)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        fixed = OnnxAdapter(dense_graph(weights, biases, batch=2, names=["hidden0", "hidden1"]))
    assert caplog.text == ""  # nothing to warn about
    assert fixed._fixed_batch is None and fixed.input_shape == (6,)
    reference = NumpyMLPAdapter(weights, biases)
    std = {n: np.ones(s.n_units) for n, s in fixed.sites.items()}
    iv = Interventions.noise(std, scales=[0.0, 0.5, 1.0], seed=2)
    ref_iv = Interventions.noise(
        {n: np.ones(s.n_units) for n, s in reference.sites.items()}, scales=[0.0, 0.5, 1.0], seed=2
    )
    x = rows(7)  # neither 2 nor a multiple of it
    np.testing.assert_allclose(fixed.run(x, iv).logits, reference.run(x, ref_iv).logits, 1e-4, 1e-4)


def test_a_graph_that_mixes_the_examples_of_a_batch_keeps_its_fixed_batch(caplog) -> None:  # type: ignore[no-untyped-def]
    """It runs at any batch size but its outputs change with it: validation catches that."""
    model = dense_graph(*random_dense(4), batch=2)
    graph = model.graph
    graph.node.append(helper.make_node("ReduceMean", ["z2"], ["batch_mean"], axes=[0]))
    graph.node.append(helper.make_node("Sub", ["z2", "batch_mean"], ["centred"]))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("centred", TensorProto.FLOAT, [2, 3]))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        adapter = OnnxAdapter(model)
    assert adapter._fixed_batch == 2
    assert "outputs differ" in caplog.text
    x = rows(4)  # the original semantics: centred within each fixed batch of 2
    plain = OnnxAdapter(dense_graph(*random_dense(4))).run(x).logits[0]
    want = np.concatenate([plain[:2] - plain[:2].mean(0), plain[2:] - plain[2:].mean(0)])
    np.testing.assert_allclose(adapter.run(x).logits[0], want, 1e-4, 1e-4)


def test_a_fixed_batch_that_cannot_be_freed_says_how_to_re_export(caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        adapter = OnnxAdapter(pin_batch(dense_graph(*random_dense(), batch=2), 2))
    assert adapter._fixed_batch == 2
    text = caplog.text
    assert "fixed batch size of 2" in text and "with a free batch axis it fails" in text
    assert "dynamic_shapes" in text and "dynamic_axes" in text  # how to re-export
    assert "would take at least" in text and "10,000 examples" in text  # what it costs


# -- external data ---------------------------------------------------------------------------
def external_model(tmp_path: Path) -> tuple[Path, onnx.ModelProto]:
    """A model saved with its weights in ``outside/w.data``, and the (unloaded) proto."""
    outside = tmp_path / "outside"
    outside.mkdir()
    onnx.save(dense_graph(*random_dense()), str(outside / "w.onnx"),
              save_as_external_data=True, all_tensors_to_one_file=True, location="w.data",
              size_threshold=0)  # fmt: skip
    return outside / "w.data", onnx.load(str(outside / "w.onnx"), load_external_data=False)


def relocated(proto: onnx.ModelProto, location: str, path: Path) -> Path:
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    for init in copy.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = location
    path.parent.mkdir(exist_ok=True)
    onnx.save(copy, str(path))
    return path


def test_external_data_next_to_the_model_is_read(tmp_path: Path) -> None:
    data, _ = external_model(tmp_path)
    adapter = OnnxAdapter(data.parent / "w.onnx")
    want = OnnxAdapter(dense_graph(*random_dense())).run(rows(3)).logits
    np.testing.assert_allclose(adapter.run(rows(3)).logits, want, 1e-6, 1e-6)


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink", "symlink loop"])
def test_external_data_outside_the_models_folder_is_refused(tmp_path: Path, where: str) -> None:
    data, proto = external_model(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    if where == "dotdot":
        location = "../outside/w.data"
    elif where == "absolute":
        location = str(data.resolve())
    elif where == "symlink":
        os.symlink(data.resolve(), folder / "w.data")
        location = "w.data"
    else:
        os.symlink("b.data", folder / "a.data")
        os.symlink("a.data", folder / "b.data")
        location = "a.data"
    path = relocated(proto, location, folder / "m.onnx")
    with pytest.raises(UnsupportedModelError, match="not a file inside the model's folder"):
        OnnxAdapter(path)


def test_missing_external_data_is_a_clear_error(tmp_path: Path) -> None:
    data, _ = external_model(tmp_path)
    data.unlink()
    with pytest.raises(UnsupportedModelError, match="external data"):
        OnnxAdapter(data.parent / "w.onnx")


@pytest.mark.requires_torch
@pytest.mark.parametrize("dynamo", [True, False])
def test_a_torch_export_without_dynamic_shapes_is_freed_and_agrees_with_torch(
    tmp_path: Path, dynamo: bool
) -> None:
    """The default ``torch.onnx.export`` fixes the batch (and bakes it into ``Reshape``s)."""
    torch = pytest.importorskip("torch")
    import warnings

    from directionkit.adapters.torch import TorchAdapter
    from directionkit.reference_models.models import ConvNet

    torch.manual_seed(0)
    net = ConvNet(1, 4, channels=(3, 4), strides=(1, 2)).eval()
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 1, 6, 6),), str(path), dynamo=dynamo)
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    adapter = OnnxAdapter(path)
    assert adapter._fixed_batch is None  # freed, checked against the original
    x = np.random.default_rng(0).normal(size=(5, 1, 6, 6)).astype(np.float32)
    reference = TorchAdapter(net, example_input=x)
    assert [s.n_units for s in adapter.sites.values()] == [3, 4]
    masks = np.eye(4, dtype=bool)  # ablate each unit of the last site, one per row
    iv = Interventions.zero_ablate(adapter.sites, {list(adapter.sites)[-1]: masks})
    ref_iv = Interventions.zero_ablate(reference.sites, {list(reference.sites)[-1]: masks})
    np.testing.assert_allclose(
        adapter.run(x, iv).logits, reference.run(x, ref_iv).logits, rtol=1e-4, atol=1e-4
    )
