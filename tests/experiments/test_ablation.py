"""Ablation curves and unit importance against brute force and hand-built models."""

from __future__ import annotations

import numpy as np
import pytest

from directionkit.errors import DirectionKitError, InvalidParameterError, SiteNotFoundError
from directionkit.experiments import ablation_curve, n_clamped, unit_importance
from directionkit.testing import NumpyMLPAdapter


def forward_by_hand(net: NumpyMLPAdapter, x: np.ndarray, edits: dict) -> np.ndarray:
    """A plain forward pass; ``edits[i] = (scale, shift)`` applied after ReLU ``i``."""
    h = x
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        h = h @ w + b
        if i < len(net.weights) - 1:
            h = np.maximum(h, 0)
            if i in edits:
                h = h * edits[i][0] + edits[i][1]
    return h


@pytest.fixture
def problem() -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    net = NumpyMLPAdapter.random(n_in=5, hidden=(8, 6), n_classes=3, seed=1)
    x = np.random.default_rng(2).normal(size=(90, 5))
    y = net.predict(x)
    y[::7] = (y[::7] + 1) % 3  # not perfectly fit, so curves are not trivial
    return net, x, y


@pytest.mark.parametrize("method", ["general", "incremental"])
@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
@pytest.mark.parametrize("scope", ["all", "hidden0", "hidden1", "last:1"])
def test_every_point_of_the_curve_equals_a_hand_edited_forward_pass(
    problem, scope, ablate_to, method
) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    means = {"hidden0": np.linspace(0.1, 0.8, 8), "hidden1": np.linspace(0.2, 0.6, 6)}
    curve = ablation_curve(net, (x, y), scope, orderings=3, fractions=[0.0, 0.3, 0.5, 1.0],
                           ablate_to=ablate_to, seed=4, means=means, batch_size=25,
                           method=method)  # fmt: skip
    order = curve["ablation_order"].values[0]
    offsets = {0: 0, 1: 8}
    for o in range(3):
        for f, fraction in enumerate(curve["fraction"].values):
            clamped = order[o, : n_clamped(fraction, order.shape[1])]
            edits = {}
            for layer, width in ((0, 8), (1, 6)):
                gone = np.zeros(width, bool)
                local = clamped - offsets[layer]
                gone[local[(local >= 0) & (local < width)]] = True
                if gone.any():
                    fill = means[f"hidden{layer}"] if ablate_to == "mean" else np.zeros(width)
                    edits[layer] = (~gone * 1.0, gone * fill)
            expected = (forward_by_hand(net, x, edits).argmax(1) == y).mean()
            assert curve["ablation_accuracy"].values[0, o, f] == pytest.approx(expected), (
                o,
                fraction,
            )


def test_orderings_are_seeded_permutations_of_the_scope(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    a = ablation_curve(net, (x, y), "hidden1", orderings=4, fractions=3, seed=7)
    b = ablation_curve(net, (x, y), "hidden1", orderings=4, fractions=3, seed=7)
    c = ablation_curve(net, (x, y), "hidden1", orderings=4, fractions=3, seed=8)
    np.testing.assert_array_equal(a["ablation_order"], b["ablation_order"])
    assert not np.array_equal(a["ablation_order"], c["ablation_order"])
    for row in a["ablation_order"].values[0]:
        assert sorted(row) == list(range(8, 14))  # hidden1's units along `unit`


def test_curve_starts_at_clean_accuracy_and_ends_at_chance(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, _ = problem
    y = np.tile([0, 1, 2], 30)  # balanced, so a constant prediction scores exactly 1/3
    curve = ablation_curve(net, (x, y), "all", orderings=2, fractions=5)["ablation_accuracy"]
    clean = (net.predict(x) == y).mean()
    np.testing.assert_allclose(curve.sel(fraction=0.0), clean)
    np.testing.assert_allclose(curve.sel(fraction=1.0), 1 / 3)


def test_mean_ablation_differs_from_zero_ablation(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    zero = ablation_curve(net, (x, y), orderings=2, fractions=5)["ablation_accuracy"]
    mean = ablation_curve(
        net, (x, y), orderings=2, fractions=5, ablate_to="mean", train_data=(x, y)
    )["ablation_accuracy"]
    assert not np.allclose(zero, mean)


@pytest.mark.parametrize("ablate_to", ["mean", "channel-mean"])
def test_mean_ablation_without_means_or_train_data_is_refused(problem, ablate_to) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem  # the means are never taken silently from the evaluated data
    with pytest.raises(InvalidParameterError, match="'train_data' parameter of ablation_curve"):
        ablation_curve(net, (x, y), orderings=2, fractions=5, ablate_to=ablate_to)


def hand_built(duplicated: bool) -> NumpyMLPAdapter:
    """Class 1 iff x0 > 0.  Hidden unit 0 (and unit 1 when duplicated) carries x0; unit 2
    carries noise the output ignores."""
    w1 = np.array([[1.0, 1.0 if duplicated else 0.0, 0.0], [0.0, 0.0, 1.0]])
    w2 = np.array([[0.0, 4.0], [0.0, 4.0 if duplicated else 0.0], [0.0, 0.0]])
    return NumpyMLPAdapter([w1, w2], [np.zeros(3), np.array([0.5, 0.0])])


def test_a_unit_that_alone_carries_the_class_has_the_whole_importance() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack(
        [rng.choice([-1.0, 1.0], 200) * rng.uniform(1, 2, 200), rng.normal(size=200)]
    )
    y = (x[:, 0] > 0).astype(int)
    single = unit_importance(hand_built(False), (x, y))
    clean, chance = 1.0, (y == 0).mean()  # ablating unit 0 leaves the constant answer "0"
    assert abs(chance - 0.5) < 0.1
    np.testing.assert_allclose(single["importance_accuracy"].values, [chance - clean, 0, 0])
    assert single["importance_loss"].values[0] > 0.5
    np.testing.assert_allclose(single["importance_loss"].values[1:], 0, atol=1e-12)
    robust = unit_importance(hand_built(True), (x, y))
    np.testing.assert_allclose(robust["importance_accuracy"].values, 0, atol=1e-12)
    assert list(robust["site"].values) == ["hidden0"] * 3


@pytest.mark.parametrize("method", ["general", "incremental"])
@pytest.mark.parametrize("site", ["hidden0", "hidden1"])
def test_importance_equals_brute_force_per_unit(problem, method, site) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    result = unit_importance(net, (x, y), sites=[site], batch_size=40, method=method)
    layer, width = int(site[-1]), (8, 6)[int(site[-1])]

    def loss_acc(logits: np.ndarray) -> tuple[float, float]:
        z = logits - logits.max(1, keepdims=True)
        ce = np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]
        return ce.mean(), (logits.argmax(1) == y).mean()

    base_loss, base_acc = loss_acc(forward_by_hand(net, x, {}))
    for u in range(width):
        keep = np.ones(width)
        keep[u] = 0
        loss, acc = loss_acc(forward_by_hand(net, x, {layer: (keep, np.zeros(width))}))
        assert result["importance_loss"].values[u] == pytest.approx(loss - base_loss, abs=1e-10)
        assert result["importance_accuracy"].values[u] == pytest.approx(acc - base_acc)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fractions": [0.0, 1.5]}, "'fractions' parameter of ablation_curve"),
        ({"fractions": 1}, "'fractions' parameter of ablation_curve"),
        ({"orderings": 0}, "'orderings' parameter of ablation_curve must be an int >= 1"),
        ({"ablate_to": "one"}, "'ablate_to' parameter"),
        ({"scope": "last:9"}, "last:K"),
    ],
)
def test_bad_parameters_are_refused(problem, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    with pytest.raises(DirectionKitError, match=match):
        ablation_curve(net, (x, y), **kwargs)


def test_bad_data_is_refused(problem) -> None:  # type: ignore[no-untyped-def]
    net, x, y = problem
    with pytest.raises(DirectionKitError, match="empty"):
        ablation_curve(net, [])
    with pytest.raises(DirectionKitError, match=r"must lie in \[0, 3\)"):
        ablation_curve(net, (x, y + 3))
    with pytest.raises(DirectionKitError, match="one label per example"):
        ablation_curve(net, (x, y[:-1]))
    with pytest.raises(SiteNotFoundError, match="hidden7"):
        ablation_curve(net, (x, y), scope="hidden7")
