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
        orderings=2, fractions=3, importance_units=12, noise_scales=[0.0, 1.0], noise_repeats=1,
        n_bins=4, progress=False, train_data=(x, y),
    )  # fmt: skip
    got = {
        "torch": dk.analyze(model, (x, y), **options).dataset,
        "onnx": dk.analyze(str(path), (x, y), **options).dataset,
    }
    a, b = got["torch"], got["onnx"]
    def where(info: dict[str, Any]) -> dict[str, Any]:  # the op's name is the framework's
        return {k: {f: v for f, v in e.items() if f not in ("op", "unit_axis_from")}
                for k, e in info.items()}  # fmt: skip

    assert where(a.attrs["site_info"]) == where(b.attrs["site_info"])
    for variable in ("accuracy", "loss", "ablation_accuracy", "ablation_auc", "class_mean",
                     "selectivity", "unit_mean", "unit_std", "importance_loss",
                     "importance_accuracy", "noise_accuracy"):  # fmt: skip
        np.testing.assert_allclose(
            b[variable].values, a[variable].values, rtol=1e-4, atol=1e-5, err_msg=variable
        )
    assert (a["ablation_order"].values == b["ablation_order"].values).all()
