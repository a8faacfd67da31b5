"""A real third-party model: scikit-learn's MLPClassifier on digits, converted by skl2onnx.

Every measure directionkit reports is recomputed here by brute force from the
classifier's own ``coefs_`` and ``intercepts_``, with plain numpy loops.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")

from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

import directionkit as dk  # noqa: E402
from directionkit.adapters.onnx import OnnxAdapter  # noqa: E402

pytestmark = pytest.mark.requires_onnxruntime


@pytest.fixture(scope="module")
def audited(tmp_path_factory):  # type: ignore[no-untyped-def]
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier((24, 12), max_iter=200, random_state=0).fit(X[:1000], y[:1000])
    model = skl2onnx.to_onnx(clf, initial_types=[("input", FloatTensorType([None, 64]))])
    path = tmp_path_factory.mktemp("sk") / "mlp.onnx"
    path.write_bytes(model.SerializeToString())
    data = (X[1000:1400], y[1000:1400])
    result = dk.analyze(str(path), data, orderings=3, fractions=5, batch_size=128,
                        progress=False, seed=4)  # fmt: skip
    return clf, path, data, result.dataset


def forward(clf: MLPClassifier, x: np.ndarray, masks: list[np.ndarray] | None = None):  # type: ignore[no-untyped-def]
    """Hidden activations and log-probabilities, units multiplied by ``masks``."""
    h, hidden = x.astype(np.float64), []
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        h = h @ w + b
        if i < len(clf.coefs_) - 1:
            h = np.maximum(h, 0)
            hidden.append(h)
            if masks is not None:
                h = h * masks[i]
    z = h - h.max(axis=1, keepdims=True)
    return hidden, z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_the_converted_model_is_read_as_a_probability_model(audited) -> None:  # type: ignore[no-untyped-def]
    clf, path, (x, _), ds = audited
    adapter = OnnxAdapter(path)
    assert list(adapter.sites) == ["Relu", "Relu1"]  # the final Softmax is no site
    assert adapter.output_kind == "probabilities"
    np.testing.assert_allclose(np.exp(adapter.run(x).logits[0]), clf.predict_proba(x), atol=1e-5)
    assert float(ds["accuracy"]) == pytest.approx(clf.score(x, audited[2][1]))


def test_selectivity_matches_a_loop_over_units(audited) -> None:  # type: ignore[no-untyped-def]
    clf, _, (x, y), ds = audited
    hidden, _ = forward(clf, x)
    expected = []
    for layer in hidden:
        for unit in range(layer.shape[1]):
            means = np.array([layer[y == c, unit].mean() for c in range(10)])
            top = means.argmax()
            rest = np.delete(means, top).mean()
            expected.append(0.0 if means.max() == 0 else (means[top] - rest) / (means[top] + rest))
    np.testing.assert_allclose(ds["selectivity"], expected, atol=1e-5)
    weights = np.concatenate([np.abs(w).sum(axis=0) for w in clf.coefs_[:-1]])
    np.testing.assert_allclose(ds["weight_l1"], weights, rtol=1e-5)


def test_importance_matches_ablating_each_unit_by_hand(audited) -> None:  # type: ignore[no-untyped-def]
    clf, _, (x, y), ds = audited
    sizes = [w.shape[1] for w in clf.coefs_[:-1]]
    _, clean = forward(clf, x)
    clean_loss, clean_acc = -clean[np.arange(len(y)), y].mean(), (clean.argmax(1) == y).mean()
    loss, acc = [], []
    for layer, size in enumerate(sizes):
        for unit in range(size):
            masks = [np.ones(s) for s in sizes]
            masks[layer][unit] = 0
            _, logp = forward(clf, x, masks)
            loss.append(-logp[np.arange(len(y)), y].mean() - clean_loss)
            acc.append((logp.argmax(1) == y).mean() - clean_acc)
    # the loss is -log p[y] of the model's probabilities, so it equals sklearn's own loss
    np.testing.assert_allclose(ds["importance_loss"], loss, atol=1e-4)
    np.testing.assert_allclose(ds["importance_accuracy"], acc, atol=1e-9)


def test_the_ablation_curve_matches_clamping_the_reported_orderings_by_hand(audited) -> None:  # type: ignore[no-untyped-def]
    clf, _, (x, y), ds = audited
    sizes = [w.shape[1] for w in clf.coefs_[:-1]]
    order = ds["ablation_order"].sel(scope="all").values
    fractions = ds["fraction"].values
    curve = ds["ablation_accuracy"].sel(scope="all").values
    for o, ordering in enumerate(order):
        for f, fraction in enumerate(fractions):
            flat = np.ones(sum(sizes))
            flat[ordering[: int(np.floor(fraction * len(ordering) + 0.5))]] = 0
            masks = np.split(flat, np.cumsum(sizes)[:-1])
            _, logp = forward(clf, x, masks)
            assert curve[o, f] == pytest.approx((logp.argmax(1) == y).mean(), abs=1e-9)
    assert curve[:, 0] == pytest.approx(float(ds["accuracy"]))
    assert np.all(np.abs(curve[:, -1] - 0.1) <= 0.1)  # every unit clamped: chance


def test_a_fixed_batch_conversion_with_a_zipmap_is_freed(audited, caplog) -> None:  # type: ignore[no-untyped-def]
    """Class scores read before the ZipMap (no graph output) are still checked and freed."""
    import logging

    clf, _, (X, _), _ = audited
    model = skl2onnx.to_onnx(clf, initial_types=[("input", FloatTensorType([2, 64]))])
    with caplog.at_level(logging.WARNING, logger="directionkit.adapters.onnx"):
        adapter = OnnxAdapter(model)
    assert adapter._fixed_batch is None and "fixed batch" not in caplog.text
    log_p = np.log(clf.predict_proba(X[:7]))
    np.testing.assert_allclose(adapter.run(X[:7]).logits[0], log_p, rtol=1e-4, atol=1e-4)
