"""The ONNX adapter: the shared contract, agreement with torch and numpy, graph variants."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import directionkit as dk  # noqa: E402
from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.onnx import OnnxAdapter  # noqa: E402
from directionkit.errors import (  # noqa: E402
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)
from directionkit.testing import AdapterTests, NumpyMLPAdapter  # noqa: E402
from tests.adapters.onnx_models import dense_graph, pin_batch, random_dense  # noqa: E402

pytestmark = pytest.mark.requires_onnxruntime


def rows(batch: int, features: int = 6, seed: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(batch if seed is None else seed)
    return rng.normal(size=(batch, features)).astype(np.float32)


class TestOnnxHandBuiltContract(AdapterTests):
    def make_adapter(self) -> OnnxAdapter:
        return OnnxAdapter(dense_graph(*random_dense()))

    def make_input(self, batch: int) -> np.ndarray:
        return rows(batch)


class TestOnnxFixedBatchContract(AdapterTests):
    """A batch fixed to 4 that cannot be freed: one intervention per run, padded to 4 rows."""

    def make_adapter(self) -> OnnxAdapter:
        return OnnxAdapter(pin_batch(dense_graph(*random_dense(), batch=4), 4))

    def make_input(self, batch: int) -> np.ndarray:
        return rows(batch)


class TestOnnxIoBindingContract(AdapterTests):
    """The IO-binding path (CUDA's) exercised on the CPU provider."""

    def make_adapter(self) -> OnnxAdapter:
        return OnnxAdapter(dense_graph(*random_dense(), gemm=True), io_binding=True)

    def make_input(self, batch: int) -> np.ndarray:
        return rows(batch)


def numpy_twin(seed: int = 0) -> tuple[OnnxAdapter, NumpyMLPAdapter]:
    weights, biases = random_dense(seed)
    onnx_adapter = OnnxAdapter(dense_graph(weights, biases, names=["hidden0", "hidden1"]))
    return onnx_adapter, NumpyMLPAdapter(weights, biases)


def test_interventions_and_noise_equal_the_numpy_reference_row_by_row() -> None:
    adapter, reference = numpy_twin()
    assert list(adapter.sites) == list(reference.sites) == ["hidden0", "hidden1"]
    rng = np.random.default_rng(5)
    m = 7
    iv = Interventions(
        scale={n: rng.random((m, s.n_units)) * 2 for n, s in reference.sites.items()},
        shift={n: rng.normal(size=(m, s.n_units)) for n, s in reference.sites.items()},
        noise_std={n: rng.random((m, s.n_units)) for n, s in reference.sites.items()},
        seed=11,
    ).for_batch(3)
    x = rows(9)
    got = adapter.run(x, iv, record=["hidden0", "hidden1"])
    want = reference.run(x, iv, record=["hidden0", "hidden1"])
    np.testing.assert_allclose(got.logits, want.logits, rtol=1e-4, atol=1e-4)
    for name in reference.sites:
        np.testing.assert_allclose(got.activations[name], want.activations[name], 1e-5, 1e-5)


def test_only_a_later_site_edited_expands_there_and_graph_optimisations_change_nothing() -> None:
    adapter, reference = numpy_twin(1)
    iv = Interventions.zero_ablate(adapter.sites, {"hidden1": np.eye(4, dtype=bool)})
    x = rows(5)
    out = adapter.run(x, iv).logits
    np.testing.assert_allclose(out, reference.run(x, iv).logits, 1e-5, 1e-5)
    rewrite = adapter._sessions[(frozenset({"hidden1"}), frozenset(), frozenset(), False)]
    assert not rewrite.at_input  # the first layer ran on B rows, not M*B
    plain = OnnxAdapter(dense_graph(*random_dense(1)), graph_optimization=False)
    iv_plain = Interventions.zero_ablate(plain.sites, {"act1": np.eye(4, dtype=bool)})
    np.testing.assert_allclose(plain.run(x, iv_plain).logits, out, 1e-6, 1e-6)


def test_fixed_batch_gives_the_same_numbers_as_a_free_batch(caplog) -> None:  # type: ignore[no-untyped-def]
    weights, biases = random_dense(2)
    with caplog.at_level(logging.WARNING, logger="directionkit.adapters.onnx"):
        fixed = OnnxAdapter(pin_batch(dense_graph(weights, biases, batch=4), 4))
    assert "fixed batch size of 4" in caplog.text
    assert fixed._fixed_batch == 4  # the fallback: one intervention per run
    free = OnnxAdapter(dense_graph(weights, biases))
    std = {n: np.ones(s.n_units) for n, s in free.sites.items()}
    iv = Interventions.noise(std, scales=[0.0, 0.5, 1.0], seed=2)
    x = rows(7)  # 4 + 3: the second piece is padded
    a, b = fixed.run(x, iv, record=list(free.sites)), free.run(x, iv, record=list(free.sites))
    np.testing.assert_allclose(a.logits, b.logits, 1e-5, 1e-5)
    for name in free.sites:
        np.testing.assert_allclose(a.activations[name], b.activations[name], 1e-6, 1e-6)


def test_old_ir_with_initializers_as_inputs_and_old_opsets_run() -> None:
    weights, biases = random_dense(3)
    reference = NumpyMLPAdapter(weights, biases)
    for opset, ir in ((9, 3), (13, 7), (21, 10)):
        model = dense_graph(weights, biases, opset=opset, ir_version=ir,
                            initializers_as_inputs=ir < 4)  # fmt: skip
        adapter = OnnxAdapter(model)
        iv = Interventions.zero_ablate(adapter.sites, {"act0": np.eye(5, dtype=bool)})
        ref_iv = Interventions.zero_ablate(reference.sites, {"hidden0": np.eye(5, dtype=bool)})
        np.testing.assert_allclose(
            adapter.run(rows(3), iv).logits, reference.run(rows(3), ref_iv).logits, 1e-5, 1e-5
        )


def test_legacy_exporter_names_become_module_paths() -> None:
    names = ["/features/features.1/Relu", "/3/relu/Relu", "/3/relu_1/Relu", "/blk/act/Relu_1"]
    adapter = OnnxAdapter(dense_graph(*random_dense(sizes=(6, 5, 4, 4, 4, 3)), names=names))
    assert list(adapter.sites) == ["features.1", "3.relu", "3.relu#1", "blk.act#1"]


def test_a_final_softmax_is_no_site_and_probabilities_become_log_probabilities() -> None:
    weights, biases = random_dense(4)
    adapter = OnnxAdapter(dense_graph(weights, biases, final="Softmax"))
    assert list(adapter.sites) == ["act0", "act1"]
    assert adapter.output_kind == "probabilities"
    logits = NumpyMLPAdapter(weights, biases).run(rows(5)).logits
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(adapter.run(rows(5)).logits, log_p, 1e-4, 1e-4)
    sigmoid = OnnxAdapter(dense_graph(weights, biases, final="Sigmoid"))
    assert list(sigmoid.sites) == ["act0", "act1"]
    assert sigmoid.output_kind == "sigmoid-probabilities"
    log_s = -np.log1p(np.exp(-logits[0].astype(np.float64)))
    np.testing.assert_allclose(sigmoid.run(rows(5)).logits[0], log_s, 1e-4, 1e-4)
    y = np.arange(5) % 3  # the core's loss: -log(s[y] / sum(s))
    loss = -(log_s - np.log(np.exp(log_s).sum(-1, keepdims=True)))[np.arange(5), y].mean()
    result = dk.analyze(sigmoid, (rows(5), y), metrics=[], progress=False).dataset
    assert float(result["loss"]) == pytest.approx(loss, rel=1e-4)


def test_several_outputs_pick_the_logits_and_output_overrides() -> None:
    model = dense_graph(*random_dense(), final="Softmax")
    model.graph.output.append(onnx.helper.make_tensor_value_info("z2", 1, ["N", 3]))
    model.graph.node.append(onnx.helper.make_node("ArgMax", ["z2"], ["label"], axis=1))
    model.graph.output.append(onnx.helper.make_tensor_value_info("label", 7, ["N", 1]))
    adapter = OnnxAdapter(model)
    assert adapter.output_name == "z2" and adapter.output_kind == "logits"
    probs = OnnxAdapter(model, output="probs")
    assert probs.output_kind == "probabilities"
    np.testing.assert_allclose(
        np.exp(probs.run(rows(3)).logits).sum(-1), np.ones((1, 3)), 1e-5, 1e-5
    )
    with pytest.raises(InvalidParameterError, match="'nope'"):
        OnnxAdapter(model, output="nope")
    with pytest.raises(UnsupportedModelError, match="not class scores"):
        OnnxAdapter(model, output="label")


def test_a_model_without_class_scores_is_refused() -> None:
    w = onnx.numpy_helper.from_array(np.ones((3, 2, 1, 1), np.float32), "w")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Conv", ["x", "w"], ["c"]),
         onnx.helper.make_node("Relu", ["c"], ["r"]),
         onnx.helper.make_node("Conv", ["r", "w2"], ["seg"])],
        "segmenter", [onnx.helper.make_tensor_value_info("x", 1, ["N", 2, 4, 4])],
        [onnx.helper.make_tensor_value_info("seg", 1, ["N", 3, 4, 4])],
        [w, onnx.numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w2")],
    )  # fmt: skip
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModelError, match="no output of class scores"):
        OnnxAdapter(model)


def test_the_callers_file_and_model_proto_are_never_modified(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = dense_graph(*random_dense())
    before = model.SerializeToString()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    on_disk = path.read_bytes()
    for source in (model, path, str(path), on_disk):
        adapter = OnnxAdapter(source)
        iv = Interventions.zero_ablate(adapter.sites, {"act0": np.eye(5, dtype=bool)})
        adapter.run(rows(3), iv, record=["act0", "act1"])
    assert model.SerializeToString() == before
    assert path.read_bytes() == on_disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_unit_weight_l1_matches_numpy_for_matmul_and_gemm() -> None:
    weights, biases = random_dense(6)
    for gemm in (False, True):
        adapter = OnnxAdapter(dense_graph(weights, biases, gemm=gemm))
        for i, name in enumerate(adapter.sites):
            np.testing.assert_allclose(
                adapter.unit_weight_l1(name), np.abs(weights[i]).sum(axis=0), 1e-6
            )
    with pytest.raises(SiteNotFoundError):
        adapter.unit_weight_l1("nope")


def test_bad_models_are_refused_clearly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.onnx"
    onnx.save(dense_graph(*random_dense()), str(good))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[:40])
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    for path in (truncated, text):
        with pytest.raises(UnsupportedModelError, match=str(path.name)):
            OnnxAdapter(path)
    with pytest.raises(UnsupportedModelError, match="no such file"):
        OnnxAdapter(tmp_path / "missing.onnx")
    with pytest.raises(UnsupportedModelError, match="Got int"):
        OnnxAdapter(3)
    linear = dense_graph([np.ones((6, 3))], [np.zeros(3)])
    with pytest.raises(UnsupportedModelError, match="no hidden activation"):
        OnnxAdapter(linear)
    with pytest.raises(SiteNotFoundError, match="act0"):
        OnnxAdapter(good, sites=["nope"])
    with pytest.raises(InvalidParameterError, match="'device'"):
        OnnxAdapter(good, device="tpu")


def test_bad_data_is_refused_clearly() -> None:
    adapter = OnnxAdapter(dense_graph(*random_dense()))
    with pytest.raises(InvalidDataError, match=r"\(batch, 6\)"):
        adapter.run(np.zeros((3, 5), np.float32))
    with pytest.raises(InvalidDataError, match="non-empty"):
        adapter.run(np.zeros((0, 6), np.float32))
    with pytest.raises(InvalidParameterError, match="units"):
        adapter.run(rows(2), Interventions.zero_ablate({"act0": 4}, {"act0": [[True] * 4]}))
    ints = adapter.run(np.ones((2, 6), np.int64)).logits  # integers are cast to the input's float
    np.testing.assert_allclose(ints, adapter.run(np.ones((2, 6), np.float32)).logits)


# -- torch exports (dynamo exporter, external data) ------------------------------------
torch = pytest.importorskip("torch")

from directionkit import analyze  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from tests.adapters.onnx_models import (  # noqa: E402
    exported_convnet,
    exported_mlp,
    exported_reference_mlp,
)
from tests.adapters.test_torch import convnet, mlp  # noqa: E402


class TestOnnxExportedMLPContract(AdapterTests):
    def make_adapter(self) -> OnnxAdapter:
        return OnnxAdapter(exported_mlp())

    def make_input(self, batch: int) -> np.ndarray:
        return rows(batch)


class TestOnnxExportedResidualConvContract(AdapterTests):
    def make_adapter(self) -> OnnxAdapter:
        return OnnxAdapter(exported_convnet())

    def make_input(self, batch: int) -> np.ndarray:
        return np.random.default_rng(batch).normal(size=(batch, 2, 5, 5)).astype(np.float32)


def test_an_export_keeps_its_torch_site_names_and_weights() -> None:
    assert exported_mlp().with_suffix(".onnx.data").exists()  # torch writes external data
    for net, path, shape in ((mlp(), exported_mlp(), (1, 6)),
                             (convnet(), exported_convnet(), (1, 2, 5, 5))):  # fmt: skip
        torch_adapter = TorchAdapter(net, example_input=np.zeros(shape, np.float32))
        onnx_adapter = OnnxAdapter(path)
        assert dict(onnx_adapter.sites) == dict(torch_adapter.sites)
        for name in torch_adapter.sites:
            np.testing.assert_allclose(
                onnx_adapter.unit_weight_l1_folded(name),
                torch_adapter.unit_weight_l1_folded(name),
                1e-5,
            )
    # the MLP has no BatchNorm: its raw filters are in the export
    torch_mlp = TorchAdapter(mlp(), example_input=np.zeros((1, 6), np.float32))
    for name in torch_mlp.sites:
        np.testing.assert_allclose(
            OnnxAdapter(exported_mlp()).unit_weight_l1(name), torch_mlp.unit_weight_l1(name), 1e-5
        )
    # the dynamo exporter folded the convnet's BatchNorms into its Convs: raw filters are gone
    conv = OnnxAdapter(exported_convnet())
    with pytest.raises(UnsupportedModelError, match="folded a BatchNorm"):
        conv.unit_weight_l1("2")
    assert list(conv.sites) == ["2", "3.relu", "3.relu#1"]
    assert [s.layer for s in conv.sites.values()] == [None, "3", "3"]


def test_a_residual_graph_expands_before_its_block_and_a_chain_at_the_site() -> None:
    conv = OnnxAdapter(exported_convnet())
    x = np.random.default_rng(0).normal(size=(3, 2, 5, 5)).astype(np.float32)
    conv.run(x, Interventions.zero_ablate(conv.sites, {"3.relu": np.eye(4, dtype=bool)}))
    rewrite = conv._sessions[(frozenset({"3.relu"}), frozenset(), frozenset(), False)]
    # "3.relu" is inside the residual block whose input (site "2") the skip reads
    assert rewrite.expand_at == conv._site_info["2"].tensor
    chain = OnnxAdapter(exported_mlp())
    chain.run(rows(3), Interventions.zero_ablate(chain.sites, {"1": np.eye(5, dtype=bool)}))
    assert not chain._sessions[(frozenset({"1"}), frozenset(), frozenset(), False)].at_input


@pytest.mark.parametrize("which", ["mlp", "reference_mlp", "convnet"])
def test_every_metric_of_analyze_agrees_between_torch_and_its_onnx_export(which: str) -> None:
    if which == "mlp":
        net, path = mlp(), exported_mlp()
        x = np.random.default_rng(1).normal(size=(120, 6)).astype(np.float32)
    elif which == "reference_mlp":
        from directionkit.reference_models.models import MLP

        torch.manual_seed(0)
        net, path = MLP(64, (24, 12), 10), exported_reference_mlp()
        x = np.random.default_rng(1).random(size=(120, 1, 8, 8)).astype(np.float32)
    else:
        net, path = convnet(), exported_convnet()
        x = np.random.default_rng(1).normal(size=(120, 2, 5, 5)).astype(np.float32)
    with torch.no_grad():
        y = net.eval()(torch.from_numpy(x)).argmax(1).numpy()
    n_classes = 10 if which == "reference_mlp" else 3
    y[::3] = np.arange(40) % n_classes  # every class present, and some predictions wrong
    kwargs = dict(
        train_data=(x, y), orderings=3, fractions=6, noise_scales=[0.0, 0.5, 2.0],
        noise_repeats=2, scopes=("all", "last:1"), batch_size=50, progress=False,
    )  # fmt: skip
    ref = analyze(net, (x, y), **kwargs).dataset
    got = analyze(str(path), (x, y), **kwargs).dataset
    if which == "convnet":  # the exporter folded its BatchNorms: no raw filter norm
        assert "folded a BatchNorm" in got.attrs["weight_l1_note"]
        ref = ref.drop_vars("weight_l1")
    assert sorted(got.data_vars) == sorted(ref.data_vars)
    assert "weight_l1_folded" in got.data_vars
    assert list(got["site"].values) == list(ref["site"].values)
    np.testing.assert_array_equal(got["ablation_order"], ref["ablation_order"])
    for name in ref.data_vars:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_a_legacy_export_keeps_the_torch_site_names_and_agrees_with_torch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import warnings

    net = convnet()
    path = tmp_path / "legacy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
        torch.onnx.export(
            net.eval(), (torch.zeros(2, 2, 5, 5),), str(path), dynamo=False, opset_version=11,
            input_names=["x"], dynamic_axes={"x": {0: "b"}},
        )  # fmt: skip
    adapter = OnnxAdapter(path)
    assert onnx.load(str(path)).opset_import[0].version == 11
    torch_adapter = TorchAdapter(net, example_input=np.zeros((1, 2, 5, 5), np.float32))
    # the legacy exporter records no module classes, so which module is a block (a layer)
    # is unknown: every site is a layer of its own there
    assert dict(adapter.sites) == {
        n: dataclasses.replace(s, layer=None) for n, s in torch_adapter.sites.items()
    }
    x = np.random.default_rng(0).normal(size=(4, 2, 5, 5)).astype(np.float32)
    masks = {n: np.random.default_rng(1).random((3, s.n_units)) < 0.5
             for n, s in adapter.sites.items()}  # fmt: skip
    iv = Interventions.zero_ablate(adapter.sites, masks)
    got, want = (
        adapter.run(x, iv, record=list(adapter.sites)),
        torch_adapter.run(x, iv, record=list(adapter.sites)),
    )
    np.testing.assert_allclose(got.logits, want.logits, 1e-5, 1e-5)
    for name in adapter.sites:  # recorded conv maps, reduced in the graph (opset 11 form)
        np.testing.assert_allclose(got.activations[name], want.activations[name], 1e-5, 1e-5)


def test_plain_mlps_are_linear_chains_and_take_the_incremental_path() -> None:
    from directionkit.experiments import ablation_curve, unit_importance

    weights, biases = random_dense(7)
    for model in (dense_graph(weights, biases), dense_graph(weights, biases, gemm=True),
                  dense_graph(weights, biases, final="Softmax")):  # fmt: skip
        chain = OnnxAdapter(model).linear_chain()
        assert chain is not None and chain.site_layers == {"act0": 0, "act1": 1}
        for got, want in zip(chain.weights, weights, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
        for got, want in zip(chain.biases, biases, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert OnnxAdapter(dense_graph(weights, biases, final="Sigmoid")).linear_chain() is None
    assert OnnxAdapter(exported_convnet()).linear_chain() is None
    adapter = OnnxAdapter(exported_mlp())
    assert adapter.linear_chain() is not None
    x = rows(200)
    y = adapter.run(x).logits[0].argmax(1)
    y[::3] = np.arange(len(y[::3])) % 3
    fast = ablation_curve(adapter, (x, y), orderings=3, fractions=6, method="incremental")
    slow = ablation_curve(adapter, (x, y), orderings=3, fractions=6, method="general")
    assert np.abs(fast["ablation_accuracy"] - slow["ablation_accuracy"]).max() <= 1 / 200
    a, b = unit_importance(adapter, (x, y)), unit_importance(adapter, (x, y), method="general")
    np.testing.assert_allclose(a["importance_loss"], b["importance_loss"], atol=1e-5)


def test_decomposed_torch_activations_are_one_site_each_and_agree_with_torch() -> None:
    from tests.adapters.onnx_models import export

    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 5), torch.nn.GELU(), torch.nn.Linear(5, 4), torch.nn.SiLU(),
        torch.nn.Linear(4, 4), torch.nn.Hardswish(), torch.nn.Linear(4, 3),
    )  # fmt: skip
    adapter = OnnxAdapter(export(net, np.zeros((2, 6), np.float32), "smooth"))
    torch_adapter = TorchAdapter(net, example_input=np.zeros((1, 6), np.float32))
    assert dict(adapter.sites) == dict(torch_adapter.sites)
    assert list(adapter.sites) == ["1", "3", "5"]
    rng = np.random.default_rng(4)
    iv = Interventions(
        scale={n: rng.random((3, s.n_units)) for n, s in adapter.sites.items()},
        shift={n: rng.normal(size=(3, s.n_units)) for n, s in adapter.sites.items()},
        noise_std={n: rng.random((3, s.n_units)) for n, s in adapter.sites.items()},
        seed=2,
    )
    x = rows(5)
    got = adapter.run(x, iv, record=list(adapter.sites))
    want = torch_adapter.run(x, iv, record=list(adapter.sites))
    np.testing.assert_allclose(got.logits, want.logits, 1e-5, 1e-5)
    for name in adapter.sites:
        np.testing.assert_allclose(got.activations[name], want.activations[name], 1e-5, 1e-5)


def test_a_residual_network_expands_at_the_block_input_not_the_model_input() -> None:
    from directionkit.reference_models.models import ResNet
    from tests.adapters.onnx_models import export

    torch.manual_seed(0)
    net = ResNet(blocks=(1, 1), n_classes=3, in_channels=2, base=4, small_input=True)
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    adapter = OnnxAdapter(export(net, x, "small_resnet"))
    torch_adapter = TorchAdapter(net, example_input=x[:1])
    assert dict(adapter.sites) == dict(torch_adapter.sites)
    last_block = [n for n in adapter.sites if n.startswith("stages.1.")]
    rng = np.random.default_rng(2)
    iv = Interventions.zero_ablate(
        adapter.sites, {n: rng.random((4, adapter.sites[n].n_units)) < 0.5 for n in last_block}
    )
    record = list(adapter.sites)
    got, want = adapter.run(x, iv, record=record), torch_adapter.run(x, iv, record=record)
    np.testing.assert_allclose(got.logits, want.logits, 1e-5, 1e-5)
    for name in record:
        np.testing.assert_allclose(got.activations[name], want.activations[name], 1e-5, 1e-5)
    rewrite = adapter._sessions[(frozenset(last_block), frozenset(record), frozenset(), False)]
    # the rows grow at the output of the first block (the site before the last block)
    assert rewrite.expand_at == adapter._site_info["stages.0.0.relu#2"].tensor
    assert not rewrite.at_input


def test_the_default_memory_budget_is_256_mib_on_the_cpu() -> None:
    from directionkit.adapter import CPU_MEMORY_BUDGET

    model = dense_graph(*random_dense())
    assert OnnxAdapter(model, device="cpu").memory_budget == CPU_MEMORY_BUDGET == 256 * 2**20
    assert OnnxAdapter(model, memory_budget=12345).memory_budget == 12345
