"""ONNX files as other exporters ship them: a ``-1`` batch axis and free image sizes
(paddle2onnx's OCR classifier), several inputs (a voice-activity model's ``state`` and
``sr``), several outputs, a softmax written out by hand.  Built here by hand with those
traits, checked against onnxruntime run directly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import directionkit as dk
from directionkit.adapter import Interventions
from directionkit.adapters.onnx import OnnxAdapter
from directionkit.errors import (
    DirectionKitWarning,
    InvalidParameterError,
    UnsupportedModelError,
)
from directionkit.testing import AdapterTests

pytestmark = pytest.mark.requires_onnxruntime


def _model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: dict[str, Any],
           opset: int = 11) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(
        nodes, "shipped", inputs, outputs,
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def paddle_like(seed: int = 0) -> onnx.ModelProto:
    """A small OCR-classifier-like CNN as paddle2onnx writes it: input ``[-1, 3, ?, ?]``
    (a ``dim_value`` of -1 and two symbolic dims), biases reshaped by a Reshape node,
    BatchNormalization, Relu, an SE gate (HardSigmoid), then softmax probabilities."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = {
        "w1": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(f32), "b1": rng.normal(0, .1, 4).astype(f32),
        "bshape": np.array([1, 4, 1, 1], np.int64),
        "scale": rng.uniform(.5, 1.5, 4).astype(f32), "bias": rng.normal(0, .1, 4).astype(f32),
        "mean": rng.normal(0, .1, 4).astype(f32), "var": rng.uniform(.5, 1.5, 4).astype(f32),
        "w2": rng.normal(0, 0.5, (6, 4, 3, 3)).astype(f32),
        "wse": rng.normal(0, 0.5, (6, 6, 1, 1)).astype(f32),
        "wfc": rng.normal(0, 0.5, (6, 2)).astype(f32),
    }  # fmt: skip
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["b1", "bshape"], ["b1r"]),
        helper.make_node("Add", ["c1", "b1r"], ["c1b"]),
        helper.make_node("BatchNormalization", ["c1b", "scale", "bias", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"], name="Relu@0"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="Relu@1"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Conv", ["gap", "wse"], ["se"]),
        helper.make_node("HardSigmoid", ["se"], ["gate"], name="HardSigmoid@0"),
        helper.make_node("Mul", ["r2", "gate"], ["scaled"]),
        helper.make_node("GlobalAveragePool", ["scaled"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "wfc"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [-1, 2])
    return _model(nodes, [x], [out], inits)


def images(n: int, h: int = 8, w: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, h, w)).astype(np.float32)


def test_a_minus_one_batch_and_free_image_sizes_run() -> None:
    model = paddle_like()
    adapter = OnnxAdapter(model)
    assert adapter._fixed_batch is None  # -1 is a free batch axis, not a batch of -1
    assert list(adapter.sites) == ["Relu@0", "Relu@1", "HardSigmoid@0"]
    assert [s.n_units for s in adapter.sites.values()] == [4, 6, 6]
    assert all(s.axis == 0 and s.kind == "conv" for s in adapter.sites.values())
    assert adapter.sites["Relu@0"].shape is None  # its size follows the image's
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for h, w in ((8, 12), (16, 40)):
        x = images(5, h, w)
        want = np.log(session.run(None, {"x": x})[0])
        np.testing.assert_allclose(adapter.run(x).logits[0], want, rtol=1e-5, atol=1e-6)
        dims = adapter.site_dims(x, list(adapter.sites))
        assert dims == {"Relu@0": (4, h, w), "Relu@1": (6, -(-h // 2), -(-w // 2)),
                        "HardSigmoid@0": (6, 1, 1)}  # fmt: skip
    # weights are found through paddle's reshaped bias
    np.testing.assert_allclose(
        adapter.unit_weight_l1("Relu@0"), np.abs(onnx.numpy_helper.to_array(
            model.graph.initializer[0])).reshape(4, -1).sum(1), rtol=1e-6,
    )  # fmt: skip


class TestShippedDynamicContract(AdapterTests):
    def make_adapter(self) -> OnnxAdapter:
        return OnnxAdapter(paddle_like())

    def make_input(self, batch: int) -> np.ndarray:
        return images(batch, seed=batch)


def test_analyze_a_model_with_free_image_sizes_noise_included() -> None:
    x = images(20, 16, 24)
    y = np.arange(20) % 2
    result = dk.analyze(paddle_like(), (x, y), train_data=(x, y), orderings=2, fractions=3,
                        noise_scales=[0.0, 1.0], noise_repeats=2, progress=False)  # fmt: skip
    assert not result.attrs["skipped"]
    noise = result["noise_accuracy"].sel(noise_scale=0.0)
    np.testing.assert_allclose(noise, float(result["accuracy"]))
    info = result.attrs["site_info"]["Relu@0"]
    assert info["unit_axis"] == 0 and "shape" not in info


def test_memory_stays_within_the_budget_when_image_sizes_are_free(tmp_path: Path) -> None:
    # the site sizes of a free image size were counted as 1 x 1 when the work was cut to
    # the memory budget, so per-unit importance took tens of GB; measured in a fresh
    # process: the peak resident memory grows by about the budget, not by gigabytes
    model = tmp_path / "paddle.onnx"
    onnx.save(paddle_like(), str(model))
    script = textwrap.dedent(f"""
        import json, resource, sys
        import numpy as np
        from directionkit.adapters.onnx import OnnxAdapter
        from directionkit.experiments import unit_importance
        budget = int(sys.argv[1]) << 20
        adapter = OnnxAdapter({str(model)!r}, memory_budget=budget)
        x = np.random.default_rng(0).normal(size=(64, 3, 128, 256)).astype(np.float32)
        y = np.arange(64) % 2
        adapter.run(x[:2])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        unit_importance(adapter, (x, y), batch_size=64)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({{"before": before, "after": after}}))
    """)  # fmt: skip
    growth = {}
    for budget in (16, 64):
        done = subprocess.run([sys.executable, "-c", script, str(budget)], capture_output=True,
                              text=True, check=True, timeout=300)  # fmt: skip
        peak = json.loads(done.stdout.strip().splitlines()[-1])
        growth[budget] = peak["after"] - peak["before"]
    # the budget counts the sites' activations (x 3); the graph's other tensors (a conv's
    # output before its bias, BatchNorm and ReLU) and the allocator's slack come on top:
    # measured 20-130 MB at 16 MiB and 135-240 MB at 64 MiB.  Counting free dims as 1, the
    # first site's 64 x 4 rows alone would be 2 GB, all of importance tens of GB
    assert growth[16] < 16 * 6 + 64, growth
    assert growth[64] < 64 * 6 + 64, growth


def multi_input(seed: int = 0) -> onnx.ModelProto:
    """A voice-activity-style model: ``x (N, 4)``, a recurrent ``state (2, N, 3)`` holding
    the batch on axis 1, and a scalar sample rate ``sr`` (int64)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = {
        "w1": rng.normal(0, 1, (4, 5)).astype(f32), "ws": rng.normal(0, 1, (3, 5)).astype(f32),
        "w2": rng.normal(0, 1, (5, 3)).astype(f32), "axes": np.array([0], np.int64),
        "khz": np.array(16000.0, f32),
    }  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("ReduceSum", ["state", "axes"], ["s"], keepdims=0),
        helper.make_node("MatMul", ["s", "ws"], ["sh"]),
        helper.make_node("Add", ["a", "sh"], ["mixed"]),  # the state meets the site's rows
        helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["srf", "khz"], ["ratio"]),
        helper.make_node("Mul", ["mixed", "ratio"], ["m2"]),
        helper.make_node("MatMul", ["m2", "w2"], ["logits"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
        helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, "N", 3]),
        helper.make_tensor_value_info("sr", TensorProto.INT64, []),
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    return _model(nodes, inputs, [out], inits, opset=13)


def test_other_inputs_are_given_fixed_or_made_per_batch() -> None:
    model = multi_input()
    with pytest.raises(UnsupportedModelError, match=r"inputs=\{'state': '...', 'sr': '...'\}"):
        OnnxAdapter(model)
    with pytest.raises(InvalidParameterError, match=r"names \['nope'\].*\['x', 'state', 'sr'\]"):
        OnnxAdapter(model, inputs={"nope": 1, "state": 0, "sr": 1})

    def state(x: np.ndarray) -> np.ndarray:
        return np.full((2, len(x), 3), 0.25, np.float32)

    adapter = OnnxAdapter(model, inputs={"state": state, "sr": 8000})
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x, "state": state(x), "sr": np.array(8000, np.int64)})[0]
    np.testing.assert_allclose(adapter.run(x).logits[0], want, rtol=1e-5, atol=1e-6)
    iv = Interventions.zero_ablate(adapter.sites, {"act": np.eye(5, dtype=bool)})
    together = adapter.run(x, iv).logits  # the state holds the batch: rows go one by one
    alone = np.concatenate([adapter.run(x, iv.rows(r, r + 1)).logits for r in range(5)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    y = want.argmax(1)
    result = dk.analyze(model, (x, y), inputs={"state": state, "sr": 8000}, orderings=2,
                        fractions=3, progress=False)  # fmt: skip
    assert float(result["accuracy"]) == 1.0


def two_outputs(names: tuple[str, str], widths: tuple[int, int] = (8, 3)) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.normal(size=(4, 5)).astype(np.float32),
        "wa": rng.normal(size=(5, widths[0])).astype(np.float32),
        "wb": rng.normal(size=(5, widths[1])).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("MatMul", ["a", "wa"], [names[0]]),
        helper.make_node("MatMul", ["a", "wb"], [names[1]]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", w])
            for n, w in zip(names, widths, strict=True)]  # fmt: skip
    return _model(nodes, [x], outs, inits, opset=13)


def test_several_possible_outputs_are_refused_unless_one_is_the_logits() -> None:
    with pytest.warns(DirectionKitWarning, match=r"read from 'logits' by its name"):
        named = OnnxAdapter(two_outputs(("embedding", "logits")))
    assert named.output_name == "logits" and "by its name" in named.assumptions[0]
    model = two_outputs(("linear_1", "linear_2"))  # what torch's exporter names a dict's
    with pytest.raises(UnsupportedModelError, match=r"'linear_1'.*'linear_2'.*output="):
        OnnxAdapter(model)
    assert OnnxAdapter(model, output=1).output_name == "linear_2"
    assert OnnxAdapter(model, output="linear_2").output_name == "linear_2"
    with pytest.raises(InvalidParameterError, match="index 5"):
        OnnxAdapter(model, output=5)


def test_a_softmax_written_out_by_hand_is_taken_for_probabilities() -> None:
    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.normal(size=(4, 5)).astype(np.float32),
        "w2": rng.normal(size=(5, 3)).astype(np.float32),
        "ax": np.array([1], np.int64),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("MatMul", ["a", "w2"], ["z"]),
        helper.make_node("Exp", ["z"], ["e"]),
        helper.make_node("ReduceSum", ["e", "ax"], ["total"], keepdims=1),
        helper.make_node("Div", ["e", "total"], ["p"]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                   [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 3])], inits, 13)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    adapter = OnnxAdapter(model)
    with pytest.warns(DirectionKitWarning, match="probabilities by their values"):
        logits = adapter.run(x).logits
    assert adapter.output_kind == "probabilities"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(logits[0], np.log(session.run(None, {"x": x})[0]), rtol=1e-5)
    result = dk.analyze(adapter, (x, np.arange(7) % 3), metrics=[], progress=False)
    assert "sums to one" in result.attrs["assumptions"][0]


def test_activations_inside_control_flow_are_named_as_the_reason() -> None:
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["r"])], "then", [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 3])],
    )  # fmt: skip
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=then)]
    model = _model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        {"cond": np.array(True)}, 13,
    )  # fmt: skip
    with pytest.raises(UnsupportedModelError, match=r"\['If'\] nodes hold subgraphs.*sites="):
        OnnxAdapter(model)


def test_a_gate_times_its_input_is_the_activation_not_the_gate() -> None:
    # paddle2onnx at opset 11 writes hard-swish as x * Clip(x + 3, 0, 6) / 6: the unit's
    # activity is the product, which the site must be (not the Clip, the gate)
    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.normal(size=(4, 5)).astype(np.float32),
        "w2": rng.normal(size=(5, 3)).astype(np.float32),
        "three": np.array(3.0, np.float32), "six": np.array(6.0, np.float32),
        "zero": np.array(0.0, np.float32),
    }  # fmt: skip
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "three"], ["h3"]),
        helper.make_node("Clip", ["h3", "zero", "six"], ["gate"], name="Clip@0"),
        helper.make_node("Mul", ["h", "gate"], ["hg"]),
        helper.make_node("Div", ["hg", "six"], ["a"]),
        helper.make_node("MatMul", ["a", "w2"], ["z"]),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                   [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])], inits, 13)
    adapter = OnnxAdapter(model)
    assert list(adapter.sites) == ["Clip@0"] and adapter.site_ops["Clip@0"] == "x*Clip"
    x = rng.normal(size=(6, 4)).astype(np.float32) * 3
    h = x @ inits["w1"]
    hardswish = h * np.clip(h + 3, 0, 6) / 6
    recorded = adapter.run(x, record=["Clip@0"]).activations["Clip@0"]
    np.testing.assert_allclose(recorded, hardswish, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(adapter.unit_weight_l1("Clip@0"), np.abs(inits["w1"]).sum(0))


def test_a_single_score_is_a_binary_classifier_in_both_paths(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    import warnings

    from directionkit.adapters.torch import TorchAdapter

    torch.manual_seed(0)
    for final in (torch.nn.Sigmoid(), torch.nn.Identity()):
        net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 1),
                                  final).eval()  # fmt: skip
        x = np.random.default_rng(1).normal(size=(30, 4)).astype(np.float32)
        with torch.no_grad():
            score = net(torch.from_numpy(x)).numpy()[:, 0].astype(np.float64)
        p = score if isinstance(final, torch.nn.Sigmoid) else 1 / (1 + np.exp(-score))
        y = (np.random.default_rng(2).random(30) < 0.5).astype(int)
        want_loss = -np.mean(np.where(y == 1, np.log(p), np.log1p(-p)))  # binary cross-entropy
        want_acc = np.mean((p > 0.5) == (y == 1))
        path = tmp_path / f"{type(final).__name__}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.from_numpy(x[:2]),), str(path), dynamo=True,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
        if isinstance(final, torch.nn.Sigmoid):  # a sigmoid says so
            kind, given = "binary-probability", None
        else:  # a random model's logits all lie in [0, 1] here: ambiguous, refused
            kind, given = "binary-logit", "binary-logit"
            for model in (net, str(path)):
                with pytest.raises(UnsupportedModelError, match=r"will not guess.*output_kind"):
                    dk.analyze(model, (x, y), metrics=[], progress=False)
        assert TorchAdapter(net, example_input=x[:4], output_kind=given).output_kind == kind
        for model in (net, str(path)):
            result = dk.analyze(model, (x, y), metrics=["ablation"], orderings=2, fractions=3,
                                output_kind=given, progress=False)  # fmt: skip
            assert result.attrs["output_kind"] == kind
            assert float(result["loss"]) == pytest.approx(want_loss, rel=1e-4)
            assert float(result["accuracy"]) == pytest.approx(want_acc)


def test_outer_tensors_read_inside_control_flow_are_kept(tmp_path: Path) -> None:
    # a site outside an If whose branch reads a constant made outside it: the rewrite
    # must keep that constant (it was pruned: "input ... is not output of any node")
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(size=(4, 5)).astype(np.float32), "cond": np.array(True)}
    branch_w = helper.make_node("Constant", [], ["w2"], value=numpy_helper.from_array(
        rng.normal(size=(5, 3)).astype(np.float32), "w2v"))  # fmt: skip
    body = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w2"], ["zb"])], "body", [],
        [helper.make_tensor_value_info("zb", TensorProto.FLOAT, ["N", 3])],
    )  # fmt: skip
    nodes = [
        branch_w,
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["a"], name="act"),
        helper.make_node("If", ["cond"], ["z"], then_branch=body, else_branch=body),
    ]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                   [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])], inits, 13)
    adapter = OnnxAdapter(model)
    assert list(adapter.sites) == ["act"]
    x = rng.normal(size=(6, 4)).astype(np.float32)
    iv = Interventions.zero_ablate(adapter.sites, {"act": np.eye(5, dtype=bool)})
    out = adapter.run(x, iv).logits
    alone = np.concatenate([adapter.run(x, iv.rows(r, r + 1)).logits for r in range(5)])
    np.testing.assert_allclose(out, alone, rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0], adapter.run(x).logits[0])


def test_a_fixed_batch_input_with_a_state_made_per_batch_is_freed() -> None:
    model = multi_input()
    for value in (*model.graph.input, *model.graph.output):  # a batch of 1 fixed in the file
        dims = value.type.tensor_type.shape.dim
        for dim in dims:
            if dim.HasField("dim_param") and dim.dim_param == "N":
                dim.Clear()
                dim.dim_value = 1
    adapter = OnnxAdapter(model, inputs={"state": lambda x: np.zeros((2, len(x), 3), np.float32),
                                         "sr": 16000})  # fmt: skip
    assert adapter._fixed_batch is None  # freed for the data input and the state
    assert adapter.run(np.zeros((5, 4), np.float32)).logits.shape == (1, 5, 3)
