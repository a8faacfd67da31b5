"""Single directions through every layer: experiments and analyze along bases, checked
against brute-force loops (numpy forward passes, a torch hook per intervention), torch
against ONNX, and scikit-learn's PCA."""

from __future__ import annotations

import numpy as np
import pytest

import directionkit as dk
from directionkit import directions
from directionkit.adapter import Interventions
from directionkit.errors import DirectionKitError, InvalidParameterError
from directionkit.experiments import ablation_curve, activation_statistics
from directionkit.testing import NumpyMLPAdapter


def _net_and_data(n: int = 90) -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    net = NumpyMLPAdapter.random(n_in=5, hidden=(7, 6), n_classes=3, seed=0)
    X = np.random.default_rng(1).normal(size=(n, 5))
    y = net.predict(X)
    y[::4] = np.arange(len(y[::4])) % 3  # some wrong, every class present
    return net, X, y


def _numpy_forward(net: NumpyMLPAdapter, X: np.ndarray, edits: dict[int, object]) -> np.ndarray:
    """The MLP by hand; ``edits[i](h)`` replaces hidden layer i's activity."""
    h = X
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        h = h @ w + b
        if i < len(net.weights) - 1:
            h = np.maximum(h, 0)
            if i in edits:
                h = edits[i](h)  # type: ignore[operator]
    return h


def test_an_ablation_curve_along_random_directions_matches_a_numpy_loop() -> None:
    net, X, y = _net_and_data()
    bases = {name: directions.random(site, seed=3) for name, site in net.sites.items()}
    rotated = directions.along(net, bases)
    curve = ablation_curve(rotated, (X, y), orderings=3, fractions=5, seed=4)
    order = curve["ablation_order"].values[0]
    u = [np.asarray(bases[f"hidden{i}"]) for i in range(2)]
    offsets = [0, 7]
    for o in range(3):
        for f, fraction in enumerate(curve["fraction"].values):
            removed = order[o, : int(np.floor(fraction * 13 + 0.5))]
            edits = {}
            for i in range(2):
                mine = removed[(removed >= offsets[i]) & (removed < offsets[i] + u[i].shape[0])]
                rows = u[i][mine - offsets[i]]
                edits[i] = lambda h, r=rows: h - (h @ r.T) @ r  # remove the span of the rows
            logits = _numpy_forward(net, X, edits)
            expected = np.mean(logits.argmax(1) == y)
            assert curve["ablation_accuracy"].values[0, o, f] == pytest.approx(expected)


def test_the_unit_basis_gives_today_s_analysis_exactly() -> None:
    net, X, y = _net_and_data()
    kwargs = dict(train_data=(X, y), orderings=2, fractions=4, noise_repeats=2, progress=False)
    plain = dk.analyze(net, (X, y), **kwargs).dataset
    eye = {name: np.eye(site.n_units) for name, site in net.sites.items()}
    along = dk.analyze(net, (X, y), directions=eye, **kwargs).dataset
    assert "weight_l1" in plain and "weight_l1" not in along
    for name in plain.data_vars:
        if name.startswith("importance_"):
            # the plain MLP's importance takes the incremental (rank-1) path, which a
            # wrapped adapter cannot: the same numbers to rounding, summed differently
            np.testing.assert_allclose(along[name], plain[name], rtol=0, atol=1e-12)
        elif name != "weight_l1":
            np.testing.assert_array_equal(along[name], plain[name], err_msg=name)
    np.testing.assert_array_equal(along["direction_basis"].values, np.concatenate(
        [np.pad(np.eye(7), ((0, 0), (0, 0))), np.pad(np.eye(6), ((0, 0), (0, 1)),
                                                      constant_values=np.nan)]
    ))  # fmt: skip


def test_statistics_along_directions_are_the_projected_unit_statistics() -> None:
    # class means and unit means are linear in the activity: along U they are U @ them
    net, X, y = _net_and_data()
    units = activation_statistics(net, (X, y))
    bases = {name: directions.random(site, k=4, seed=5) for name, site in net.sites.items()}
    along = activation_statistics(directions.along(net, bases), (X, y))
    for name in net.sites:
        u = np.asarray(bases[name])
        mine = units["class_mean"].values[units["site"].values == name]
        got = along["class_mean"].values[along["site"].values == name]
        np.testing.assert_allclose(got, u @ mine, atol=1e-10)


def test_pca_is_scikit_learn_s_pca_of_the_activity() -> None:
    from sklearn.decomposition import PCA

    net, X, y = _net_and_data()
    basis = directions.pca(net, (X, y), "hidden0", k=3, batch_size=17)
    activity = net.run(X, record=["hidden0"]).activations["hidden0"]
    reference = PCA(n_components=3).fit(activity).components_
    signs = np.sign(np.sum(reference * basis.values, axis=1))
    np.testing.assert_allclose(basis.values, reference * signs[:, None], atol=1e-8)
    assert basis.attrs["basis"] == "pca" and basis.attrs["basis_vectors"] == len(X)


def test_class_means_spans_every_class_mean_difference() -> None:
    net, X, y = _net_and_data()
    basis = directions.class_means(net, (X, y), "hidden1").values
    activity = net.run(X, record=["hidden1"]).activations["hidden1"]
    means = np.stack([activity[y == c].mean(0) for c in range(3)])
    differences = means[1:] - means[0]
    assert basis.shape == (2, 6)
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(differences @ basis.T @ basis, differences, atol=1e-10)


def test_analyze_along_directions_refuses_bad_requests_before_any_pass() -> None:
    net, X, y = _net_and_data()
    with pytest.raises(InvalidParameterError, match=r"'directions'.*units"):
        dk.analyze(net, (X, y), directions="rotated", progress=False)
    with pytest.raises(InvalidParameterError, match="train_data"):
        dk.analyze(net, (X, y), directions="pca", progress=False)
    with pytest.raises(DirectionKitError, match="not orthonormal"):
        dk.analyze(net, (X, y), directions={"hidden0": np.ones((2, 7))}, progress=False)
    with pytest.raises(DirectionKitError, match="nope"):
        dk.analyze(net, (X, y), directions={"nope": np.eye(2)}, progress=False)
    with pytest.raises(InvalidParameterError, match="property of units"):
        dk.analyze(net, (X, y), directions="random", metrics=["weight_l1"], progress=False)


def test_along_refuses_a_basis_of_another_site_and_a_second_wrap() -> None:
    net, _, _ = _net_and_data()
    other = directions.random(net.sites["hidden1"])
    with pytest.raises(InvalidParameterError, match="'hidden0' was made for site 'hidden1'"):
        directions.along(net, {"hidden0": other})
    rotated = directions.along(net, {"hidden1": other})
    with pytest.raises(InvalidParameterError, match="already"):
        directions.along(rotated, {})


def test_interventions_refuse_a_basis_that_is_not_orthonormal_or_does_not_fit() -> None:
    iv = Interventions.zero_ablate({"a": 2}, {"a": [[True, False]]})
    with pytest.raises(InvalidParameterError, match="orthonormal"):
        iv.along({"a": [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]})
    with pytest.raises(InvalidParameterError, match=r"shape \(2, n_units\)"):
        iv.along({"a": np.eye(3)})
    with pytest.raises(InvalidParameterError, match="no 'scale'"):
        iv.along({"b": np.eye(2)})


torch = pytest.importorskip("torch")


def _torch_mlp():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5), torch.nn.ReLU(),
        torch.nn.Linear(5, 3),
    ).eval()  # fmt: skip


def test_torch_along_a_basis_matches_a_hook_per_intervention() -> None:
    # the brute force a user would write: one forward hook per intervention row
    from directionkit.adapters.torch import TorchAdapter

    net = _torch_mlp()
    x = np.random.default_rng(2).normal(size=(10, 6)).astype(np.float32)
    adapter = TorchAdapter(net, sites=["1", "3"])
    adapter.run(x[:1])  # finds the sites
    basis = np.asarray(directions.random(adapter.sites["1"], k=5, seed=7))
    masks = np.random.default_rng(3).random((4, 5)) < 0.5
    iv = Interventions.zero_ablate({"1": 5}, {"1": masks}).along({"1": basis})
    got = adapter.run(x, iv).logits
    u = torch.from_numpy(basis.astype(np.float32))
    for row in range(4):
        rows = u[torch.from_numpy(masks[row])]
        handle = net[1].register_forward_hook(lambda m, i, o, r=rows: o - (o @ r.T) @ r)
        try:
            with torch.no_grad():
                expected = net(torch.from_numpy(x)).numpy()
        finally:
            handle.remove()
        np.testing.assert_allclose(got[row], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["random", "pca"])
def test_torch_and_onnx_agree_along_directions(kind: str) -> None:
    pytest.importorskip("onnxruntime")
    from tests.adapters.onnx_models import exported_convnet
    from tests.adapters.test_torch import convnet

    net, path = convnet(), exported_convnet()
    x = np.random.default_rng(1).normal(size=(60, 2, 5, 5)).astype(np.float32)
    with torch.no_grad():
        y = net.eval()(torch.from_numpy(x)).argmax(1).numpy()
    y[::3] = np.arange(20) % 3
    kwargs = dict(
        train_data=(x, y), orderings=2, fractions=4, noise_scales=[0.0, 1.0], noise_repeats=2,
        batch_size=25, progress=False, directions=kind, ablate_to="mean",
        metrics=["statistics", "ablation", "importance", "noise"],
    )  # fmt: skip
    ref = dk.analyze(net, (x, y), **kwargs).dataset
    got = dk.analyze(str(path), (x, y), **kwargs).dataset
    assert list(got["site"].values) == list(ref["site"].values)
    for name in ref.data_vars:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4, err_msg=name)


def test_pca_completes_directions_without_activity_the_same_way_every_time() -> None:
    from sklearn.decomposition import PCA

    from directionkit.directions._measured import _completion

    net, X, y = _net_and_data()
    basis = directions.pca(net, (X[:3], y[:3]), "hidden0")  # 3 vectors in 7 units: rank 2
    rows = basis.values
    assert rows.shape == (7, 7) and basis.attrs["basis_rank"] == 2
    np.testing.assert_allclose(rows @ rows.T, np.eye(7), atol=1e-12)
    activity = net.run(X[:3], record=["hidden0"]).activations["hidden0"]
    reference = PCA(n_components=2).fit(activity).components_
    np.testing.assert_allclose(np.abs(np.sum(rows[:2] * reference, axis=1)), 1.0, atol=1e-8)
    # the completion is a continuous function of the components: rounding stays rounding
    nudged = rows[:2] + 1e-9 * np.random.default_rng(0).normal(size=rows[:2].shape)
    q = np.linalg.qr(nudged.T)[0].T  # orthonormal again, signs as the components'
    nudged = q * np.sign(np.sum(q * rows[:2], axis=1))[:, None]
    np.testing.assert_allclose(_completion(nudged, 7), rows[2:], atol=1e-7)


def test_pca_of_a_layer_with_one_live_unit_is_a_basis() -> None:
    # the only component lies exactly along a unit: completing it must not give a zero row
    # (quick-scale reproduce hit this: R's diagonal is 0 for a unit already in the span)
    weights = [np.array([[1.0, 0.0, 0.0, 0.0]]), np.ones((4, 2))]
    biases = [np.array([0.0, -1.0, -1.0, -1.0]), np.zeros(2)]  # units 1-3 never fire
    net = NumpyMLPAdapter(weights, biases)
    X = np.abs(np.random.default_rng(0).normal(size=(20, 1)))
    basis = directions.pca(net, (X, np.zeros(20, int)), "hidden0")
    assert basis.attrs["basis_rank"] == 1
    np.testing.assert_allclose(basis.values[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(basis.values @ basis.values.T, np.eye(4), atol=1e-12)
