"""Models nobody here wrote, through both adapters: the same sites and the same numbers.

Every model comes from its package's own constructor (torchvision, transformers; random
weights, small widths and images to keep the CPU time down) and is exported by torch's
own (dynamo) ONNX exporter; :func:`directionkit.analyze` runs on the module and on the
export, and the two must find the same sites (names, units, unit axes, layers) and give
the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import directionkit as dk  # noqa: E402
from directionkit.adapters.onnx import OnnxAdapter  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.errors import DirectionKitWarning, UnsupportedModelError  # noqa: E402
from directionkit.experiments import unit_importance  # noqa: E402
from tests import zoo  # noqa: E402

pytestmark = [pytest.mark.requires_torch, pytest.mark.requires_onnxruntime]

VISION = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "densenet121", "squeezenet1_1",
          "convnext", "vit")  # fmt: skip
TEXT = ("bert", "distilbert", "gpt2")
N = 12  # examples analysed (at least one per class)


def _build(name: str) -> tuple[Any, np.ndarray]:
    torch.manual_seed(0)
    if name in TEXT:
        model = zoo.text_zoo()[name]().eval()
        if name == "gpt2":
            model.config.use_cache = False  # the exporter cannot return a cache object
        return model, zoo.tokens(N)
    build, shape = zoo.vision_zoo()[name]
    model = build().eval()
    if name == "vit":  # torchvision zero-initialises the head: give it scores to compare
        torch.nn.init.normal_(model.heads.head.weight, std=0.2)
    return model, np.random.default_rng(0).random((N, *shape)).astype(np.float32)


def export(model: Any, example: np.ndarray, path: Path, **options: Any) -> Path:
    """torch's own exporter, as a user would call it (a free batch axis)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.as_tensor(example),), str(path), dynamo=True, external_data=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},), **options,
        )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """name -> (module, inputs, path of its ONNX export), exported once per module."""
    folder = tmp_path_factory.mktemp("zoo")
    cache: dict[str, Any] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, name: str) -> Any:
            model, x = _build(name)
            cache[name] = (model, x, export(model, x[:2], folder / f"{name}.onnx"))
            return cache[name]

    yield Lazy()


def _labels(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's own predictions, so that curves fall, but every class at least once
    (class-conditional means need every class; a random model predicts a few)."""
    with torch.inference_mode():
        out = model(torch.as_tensor(x))
    logits = out if isinstance(out, torch.Tensor) else out["logits"]
    y = logits.argmax(-1).numpy()
    n_classes = logits.shape[-1]
    y[:n_classes] = np.arange(n_classes)
    return y


@pytest.mark.parametrize("name", VISION + TEXT)
def test_torch_and_the_onnx_export_find_the_same_sites(name: str, exported: Any) -> None:
    model, x, path = exported[name]
    torch_sites = dict(TorchAdapter(model, example_input=x[:2]).sites)
    onnx_sites = dict(OnnxAdapter(path).sites)
    assert list(onnx_sites) == list(torch_sites)
    assert onnx_sites == torch_sites  # units, kind, depth, layer, shape, unit axis


#: per model: a site and its (units, per-example shape); units are channels, features of
#: tokens, never image rows
EXPECTED = {
    "resnet18": {"relu": (64, (64, 16, 16)), "layer4.1.relu#1": (512, (512, 1, 1))},
    "squeezenet1_1": {"features.12.expand3x3_activation": (256, (256, 3, 3))},
    "convnext": {  # channels-last (H, W, 4C): the GELU of each block
        "features.1.0.block.4": (64, (8, 8, 64)),
        "features.3.0.block.4": (128, (4, 4, 128)),
    },
    "vit": {"encoder.layers.encoder_layer_1.mlp.1": (64, (17, 64))},
    "bert": {
        "bert.encoder.layer.0.intermediate.intermediate_act_fn": (64, (12, 64)),
        "bert.encoder.layer.1.intermediate.intermediate_act_fn": (64, (12, 64)),
        "bert.pooler.activation": (32, (32,)),
    },
    "distilbert": {
        "distilbert.transformer.layer.0.ffn.activation": (64, (12, 64)),
        "distilbert.transformer.layer.1.ffn.activation": (64, (12, 64)),
        "relu()": (32, (32,)),  # the head's nn.ReLU() made inside forward
    },
    "gpt2": {
        "transformer.h.0.mlp.act": (128, (12, 128)),
        "transformer.h.1.mlp.act": (128, (12, 128)),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_units_are_channels_and_features_not_positions(name: str, exported: Any) -> None:
    model, x, _ = exported[name]
    sites = TorchAdapter(model, example_input=x[:2]).sites
    for site, (units, shape) in EXPECTED[name].items():
        assert (sites[site].n_units, sites[site].shape) == (units, shape), site
        assert sites[site].shape[sites[site].unit_axis] == units


@pytest.mark.parametrize("name", TEXT)
def test_every_transformer_gets_its_feed_forward_sites(name: str, exported: Any) -> None:
    model, x, path = exported[name]
    for adapter in (TorchAdapter(model, example_input=x[:2]), OnnxAdapter(path)):
        ff = [n for n in adapter.sites if any(k in n for k in ("intermediate", "ffn", "mlp"))]
        assert len(ff) == 2, list(adapter.sites)  # one per layer


@pytest.mark.parametrize("name", VISION + TEXT)
def test_analyze_gives_the_same_numbers_from_the_module_and_its_export(
    name: str, exported: Any
) -> None:
    model, x, path = exported[name]
    y = _labels(model, x)
    options = dict(
        orderings=2, fractions=3, noise_scales=[0.0, 1.0], noise_repeats=1, n_bins=4,
        progress=False, train_data=(x, y),
        metrics=["statistics", "ablation", "noise", "weight_l1"],
    )  # fmt: skip
    with warnings.catch_warnings():  # DenseNet's concatenations have no weight_l1: NaN
        warnings.simplefilter("ignore", DirectionKitWarning)
        a = dk.analyze(model, (x, y), **options).dataset
        b = dk.analyze(str(path), (x, y), **options).dataset
    # (the raw weight_l1 is the exporter's to drop: it folds BatchNorm into the convs)
    note = "weight_l1_folded_note"
    assert a.attrs.get(note, "").split(":")[0] == b.attrs.get(note, "").split(":")[0]

    def where(info: dict[str, Any]) -> dict[str, Any]:  # the op's name is the framework's
        return {k: {f: v for f, v in e.items() if f not in ("op", "unit_axis_from")}
                for k, e in info.items()}  # fmt: skip

    assert where(a.attrs["site_info"]) == where(b.attrs["site_info"])
    for variable in ("accuracy", "loss", "ablation_accuracy", "ablation_auc", "class_mean",
                     "selectivity", "unit_mean", "unit_std", "noise_accuracy",
                     "weight_l1_folded"):  # fmt: skip
        np.testing.assert_allclose(
            b[variable].values, a[variable].values, rtol=1e-4, atol=1e-5, err_msg=variable
        )
    assert (a["ablation_order"].values == b["ablation_order"].values).all()
    # single-unit importance on the last two sites (every site costs one session each)
    sites = list(a.attrs["site_info"])[-2:]
    importance = [
        unit_importance(adapter, (x, y), sites)
        for adapter in (TorchAdapter(model, example_input=x[:2]), OnnxAdapter(path))
    ]
    for variable in ("importance_loss", "importance_accuracy"):
        np.testing.assert_allclose(importance[1][variable].values, importance[0][variable].values,
                                   rtol=1e-4, atol=1e-5, err_msg=variable)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind"),
    [("resnet18", "random"), ("convnext", "pca"), ("vit", "random"), ("bert", "pca"),
     ("gpt2", "random")],
)  # fmt: skip
def test_analyze_along_directions_agrees_between_the_module_and_its_export(
    name: str, kind: str, exported: Any
) -> None:
    # maps (NCHW and channels-last) and tokens: the projections at every position
    model, x, path = exported[name]
    y = _labels(model, x)
    options = dict(
        orderings=2, fractions=3, noise_scales=[0.0, 1.0], noise_repeats=1, n_bins=4,
        progress=False, train_data=(x, y), directions=kind,
        metrics=["statistics", "ablation", "noise"],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DirectionKitWarning)
        a = dk.analyze(model, (x, y), **options).dataset
        b = dk.analyze(str(path), (x, y), **options).dataset
    assert a.attrs["parameters"]["directions"] == kind
    np.testing.assert_allclose(b["direction_basis"], a["direction_basis"], atol=1e-4)
    for variable in ("accuracy", "class_mean", "unit_mean", "unit_std", "noise_accuracy"):
        np.testing.assert_allclose(
            b[variable].values, a[variable].values, rtol=1e-3, atol=1e-4, err_msg=variable
        )
    # a near-tie may round the other way in the other framework: one example at most (with
    # every direction ablated only rounding residue is left, and every logit ties)
    flips = np.abs(b["ablation_accuracy"].values - a["ablation_accuracy"].values) * N
    assert flips.max() <= 1 + 1e-9


def test_convnext_tiny_has_channels_as_units_at_every_stage() -> None:
    # the real convnext_tiny (28M parameters, random weights): its GELU outputs are
    # channels-last (B, H, W, 4C), 384 to 3072 units each, never H image rows
    torch.manual_seed(0)
    model = zoo.torchvision().models.convnext_tiny(num_classes=10).eval()
    sites = TorchAdapter(model, example_input=np.zeros((2, 3, 64, 64), np.float32)).sites
    assert len(sites) == 18  # one GELU per block: 3 + 3 + 9 + 3
    widths = {96: 384, 192: 768, 384: 1536, 768: 3072}
    for site in sites.values():
        assert site.axis == 2 and site.kind == "conv"
        assert site.n_units in widths.values() and site.shape[2] == site.n_units
    assert sorted({s.n_units for s in sites.values()}) == sorted(widths.values())


class LSTMClassifier(torch.nn.Module):
    """An LSTM with a ReLU on its sequence output: no Linear or Conv feeds that site."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
        self.relu = torch.nn.ReLU()
        self.fc = torch.nn.Linear(16, 3)

    def forward(self, ids: Any) -> Any:
        out, _ = self.lstm(self.embed(ids))
        return self.fc(self.relu(out)[:, -1])


def test_an_lstm_keeps_every_measure_it_has_and_says_which_it_has_not(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier().eval()
    x = np.random.default_rng(0).integers(0, 50, (24, 7))
    y = np.arange(24) % 3
    path = export(model, x[:2], tmp_path / "lstm.onnx")
    got = []
    for m in (model, str(path)):
        with pytest.warns(DirectionKitWarning, match=r"weight_l1 left out: No .*site 'relu'"):
            got.append(dk.analyze(m, (x, y), orderings=2, fractions=3, progress=False).dataset)
    for result in got:  # every measure computed before weight_l1 is kept
        assert {"ablation_auc", "selectivity", "importance_loss"} <= set(result.data_vars)
        assert "weight_l1" not in result and "weight_l1" in result.attrs["skipped"]
        assert result.attrs["site_info"]["relu"]["unit_axis"] == 1  # (T, H): H units
    for variable in ("accuracy", "ablation_accuracy", "selectivity", "importance_loss"):
        np.testing.assert_allclose(got[1][variable], got[0][variable], rtol=1e-4, atol=1e-5)


class TwoHeads(torch.nn.Module):
    """Returns a dict: an embedding and the class scores."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU())
        self.embedding = torch.nn.Linear(8, 16)
        self.classifier = torch.nn.Linear(8, 4)

    def forward(self, x: Any) -> Any:
        h = self.body(x)
        return {"embedding": self.embedding(h), "logits": self.classifier(h)}


def test_a_dict_output_model_is_scored_on_its_logits_in_both_paths(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TwoHeads().eval()
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x))["logits"].argmax(1).numpy()
    named = export(model, x[:2], tmp_path / "named.onnx", output_names=["embedding", "logits"])
    plain = export(model, x[:2], tmp_path / "plain.onnx")  # outputs named by the FX graph
    results = [dk.analyze(model, (x, y), metrics=["ablation"], orderings=2, fractions=3,
                          progress=False)]  # fmt: skip
    with pytest.warns(DirectionKitWarning, match="read from 'logits' by its name"):
        results.append(dk.analyze(str(named), (x, y), metrics=["ablation"], orderings=2,
                                  fractions=3, progress=False))  # fmt: skip
    with pytest.raises(UnsupportedModelError, match=r"none is named 'logits'.*output="):
        OnnxAdapter(plain)
    results.append(dk.analyze(str(plain), (x, y), metrics=["ablation"], orderings=2,
                              fractions=3, output=1, progress=False))  # fmt: skip
    for result in results:
        assert float(result["accuracy"]) == 1.0  # the embedding's argmax would be chance
        np.testing.assert_allclose(result["ablation_accuracy"], results[0]["ablation_accuracy"])
    assert results[0].attrs["output"] == "output['logits']"


def test_a_squeezenet_audit_without_one_class_gives_every_defined_measure() -> None:
    model, x = _build("squeezenet1_1")
    y = np.arange(len(x)) % 10
    y[y == 6] = 0  # no example of class 6
    with pytest.warns(DirectionKitWarning, match=r"no example of 1 of the model's 10 classes"):
        result = dk.analyze(model, (x, y), train_data=(x, y), orderings=2, fractions=3,
                            noise_scales=[0.0, 1.0], noise_repeats=1, importance_units=8,
                            progress=False).dataset  # fmt: skip
    assert result.attrs["classes_missing"] == [6] and not result.attrs["skipped"]
    for name in ("ablation_auc", "noise_accuracy", "importance_loss", "weight_l1"):
        assert name in result, name
    assert np.isfinite(result["selectivity"]).all() and np.isfinite(result["mutual_info"]).all()
