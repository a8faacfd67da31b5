"""Models nobody here wrote, from the packages' own constructors, for the adapter zoo tests.

torchvision's wheel on PyPI is a CUDA build: beside the CPU torch its compiled ops
(``torchvision::nms``) do not load, and ``import torchvision`` (and so ``import
transformers``, which imports it) fails while registering their fake kernels.  The
model constructors are pure Python and never call those ops, so :func:`torchvision`
declares the two missing operator schemas and imports the package again.  It declares
them only when the ops did not load, so a working torchvision is imported untouched.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library: Any = None  # the Library holding the declared schemas must stay alive


def torchvision() -> ModuleType:
    """``torchvision``, imported even where its compiled ops cannot load (see above)."""
    global _library
    torch = pytest.importorskip("torch")
    try:
        return importlib.import_module("torchvision")
    except ImportError as err:
        pytest.skip(f"torchvision is not installed ({err}); install the test extra")
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS.values():
            _library.define(schema)
    return importlib.import_module("torchvision")


def transformers() -> ModuleType:
    """``transformers`` (it imports torchvision when that is installed: then through
    :func:`torchvision`; without torchvision it imports as it is)."""
    if importlib.util.find_spec("torchvision") is not None:
        torchvision()
    return pytest.importorskip("transformers")


def vision_zoo() -> dict[str, tuple[Callable[[], Any], tuple[int, ...]]]:
    """torchvision classifiers from their own constructors (random weights), with the
    input shape each is tried on: ``name -> (build, (C, H, W))``.  Small widths and
    images keep the CPU tests fast; the structure (blocks, SE gates, channels-last maps,
    class-map heads) is the library's own."""
    tv = torchvision()
    models = tv.models
    convnext = importlib.import_module("torchvision.models.convnext")
    vit = importlib.import_module("torchvision.models.vision_transformer")
    densenet = importlib.import_module("torchvision.models.densenet")
    return {
        "resnet18": (lambda: models.resnet18(num_classes=10), (3, 32, 32)),
        "mobilenet_v3_small": (lambda: models.mobilenet_v3_small(num_classes=10), (3, 32, 32)),
        "efficientnet_b0": (lambda: models.efficientnet_b0(num_classes=10), (3, 32, 32)),
        "densenet121": (
            lambda: densenet.DenseNet(
                growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=10
            ),
            (3, 32, 32),
        ),
        "squeezenet1_1": (lambda: models.squeezenet1_1(num_classes=10), (3, 64, 64)),
        "convnext": (
            lambda: convnext.ConvNeXt(
                [convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, None, 1)],
                num_classes=10,
            ),
            (3, 32, 32),
        ),
        "vit": (
            lambda: vit.VisionTransformer(
                image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                mlp_dim=64, num_classes=10,
            ),
            (3, 32, 32),
        ),
    }


def text_zoo() -> dict[str, Callable[[], Any]]:
    """HuggingFace sequence classifiers from small configs (random weights, offline)."""
    tf = transformers()
    return {
        "bert": lambda: tf.BertForSequenceClassification(
            tf.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                          num_attention_heads=2, intermediate_size=64, num_labels=3)
        ),
        "distilbert": lambda: tf.DistilBertForSequenceClassification(
            tf.DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                num_labels=3)
        ),
        "gpt2": lambda: tf.GPT2ForSequenceClassification(
            tf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                          num_labels=3, pad_token_id=0)
        ),
    }


def tokens(n: int, length: int = 12, seed: int = 0) -> np.ndarray:
    """``(n, length)`` token ids in 1..99 (0 is GPT-2's pad token here)."""
    return np.random.default_rng(seed).integers(1, 100, size=(n, length))
