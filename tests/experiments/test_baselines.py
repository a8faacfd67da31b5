"""The field's baseline generalization measures, each against an independent computation:
explicit path enumeration, scipy's singular values, per-example loops, and the flatness'
end point re-evaluated through the numpy reference adapter."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import scipy.linalg

import directionkit as dk
from directionkit.adapter import LinearChain
from directionkit.experiments import BASELINES, baseline_measures
from directionkit.experiments._baselines import (
    FLATNESS_DRAWS,
    FLATNESS_DROP,
    FLATNESS_EPSILON,
)
from directionkit.testing import NumpyMLPAdapter


def _net(seed: int = 0, hidden: tuple[int, ...] = (5, 4)) -> NumpyMLPAdapter:
    return NumpyMLPAdapter.random(n_in=3, hidden=hidden, n_classes=3, seed=seed)


def _data(net: NumpyMLPAdapter, n: int = 200, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = net.predict(X)
    flip = rng.random(n) < 0.2  # some examples wrong: negative margins too
    y[flip] = (y[flip] + 1) % 3
    return X, y


def _path_norm_by_paths(weights: list[np.ndarray], biases: list[np.ndarray]) -> float:
    """sum_j f_{w^2}(1)_j by enumerating every path: from each input and each bias to each
    output, the product of the squared weights along it (a bias squared starts a path)."""
    sizes = [weights[0].shape[0], *(w.shape[1] for w in weights)]
    total = 0.0
    layers = len(weights)
    for start in range(layers + 1):  # start 0: an input; start s >= 1: a bias of layer s-1
        for path in itertools.product(*(range(n) for n in sizes[start:])):
            product = 1.0 if start == 0 else biases[start - 1][path[0]] ** 2
            for offset, (a, b) in enumerate(itertools.pairwise(path)):
                product *= weights[start + offset][a, b] ** 2
            total += product
    return total


def test_weight_measures_match_independent_computations() -> None:
    net = _net()
    X, y = _data(net)
    measures = baseline_measures(net, (X, y), batch_size=64, weightwatcher=False)
    weights, biases = net.weights, net.biases
    assert int(measures["parameter_count"]) == sum(w.size + b.size for w, b in
                                                   zip(weights, biases, strict=True))  # fmt: skip
    frobenius = sum(np.log(scipy.linalg.norm(w, "fro") ** 2) for w in weights)
    assert float(measures["log_frobenius_product"]) == pytest.approx(frobenius, rel=1e-12)
    spectral = [scipy.linalg.svdvals(w)[0] for w in weights]
    assert float(measures["log_spectral_product"]) == pytest.approx(
        sum(np.log(s**2) for s in spectral), rel=1e-12
    )
    assert float(measures["log_path_norm"]) == pytest.approx(
        np.log(_path_norm_by_paths(weights, biases)), rel=1e-12
    )
    # the margin, example by example
    margins = []
    for x, label in zip(X, y, strict=True):
        logits = net.run(x[None]).logits[0, 0]
        others = [v for j, v in enumerate(logits) if j != label]
        margins.append(logits[label] - max(others))
    assert (np.array(margins) < 0).any()
    gamma = np.percentile(margins, 10)
    assert float(measures["output_margin"]) == pytest.approx(gamma, rel=1e-12)
    assert float(measures["spectral_margin"]) == pytest.approx(gamma / np.prod(spectral))
    for name in measures.data_vars:
        assert measures[name].attrs["definition"] == BASELINES[str(name)].definition


def _accuracy_under_noise(net: NumpyMLPAdapter, X: np.ndarray, y: np.ndarray, sigma: float,
                          seed: int) -> float:  # fmt: skip
    """Mean accuracy over the flatness' draws (same seed, same order), through the reference
    adapter's own forward pass."""
    rng = np.random.default_rng(seed)
    params = [*net.weights, *net.biases]
    accuracies = []
    for _ in range(FLATNESS_DRAWS):
        z = [rng.standard_normal(p.shape) for p in params]
        noisy = [p + np.sqrt((sigma * p) ** 2 + FLATNESS_EPSILON**2) * e
                 for p, e in zip(params, z, strict=True)]  # fmt: skip
        layers = len(net.weights)
        other = NumpyMLPAdapter(noisy[:layers], noisy[layers:])
        accuracies.append(float((other.predict(X) == y).mean()))
    return float(np.mean(accuracies))


@pytest.mark.parametrize("seed", [0, 3])
def test_flatness_is_the_edge_of_the_allowed_accuracy_drop(seed: int) -> None:
    net = _net(seed)
    X, y = _data(net, seed=seed + 1)
    clean = float((net.predict(X) == y).mean())
    measures = baseline_measures(net, (X, y), seed=seed, weightwatcher=False)
    sigma = 1 / np.sqrt(float(measures["pacbayes_mag_flatness"]))
    assert clean - _accuracy_under_noise(net, X, y, sigma, seed) <= FLATNESS_DROP
    assert clean - _accuracy_under_noise(net, X, y, sigma * (1 + 1e-6), seed) > FLATNESS_DROP


def test_a_rescaled_network_has_the_same_invariant_measures() -> None:
    """ReLU is positively homogeneous: layer i times c, layer i+1 over c is the same function.
    The margin, the spectral and Frobenius products and the path norm do not change; the
    parameter count neither."""
    net = _net(hidden=(6,))
    X, y = _data(net)
    c = 7.0
    scaled = NumpyMLPAdapter([net.weights[0] * c, net.weights[1] / c],
                             [net.biases[0] * c, net.biases[1]])  # fmt: skip
    a = baseline_measures(net, (X, y), weightwatcher=False)
    b = baseline_measures(scaled, (X, y), weightwatcher=False)
    for name in ("parameter_count", "log_frobenius_product", "log_spectral_product",
                 "log_path_norm", "output_margin", "spectral_margin"):  # fmt: skip
        assert float(b[name]) == pytest.approx(float(a[name]), rel=1e-9, abs=1e-9), name


class _NoChain:
    """The reference MLP without its linear chain: only the margin can be measured."""

    def __init__(self, net: NumpyMLPAdapter) -> None:
        self.net = net
        self.sites = net.sites

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self.net.run(*args, **kwargs)


class _WrongChain(NumpyMLPAdapter):
    """An adapter whose linear chain is not the model it runs."""

    def linear_chain(self) -> LinearChain:
        chain = super().linear_chain()
        return LinearChain(tuple(w * 2 for w in chain.weights), chain.biases, chain.site_layers)


def test_a_model_without_a_chain_gets_the_margin_and_a_note() -> None:
    net = _net()
    X, y = _data(net)
    measures = baseline_measures(_NoChain(net), (X, y), weightwatcher=True)
    assert list(measures.data_vars) == ["output_margin"]
    note = measures.attrs["baselines_note"]
    assert "plain ReLU MLP" in note and "_NoChain" in note and "an ONNX model" in note


def test_a_chain_that_is_not_the_model_is_refused() -> None:
    net = _net()
    wrong = _WrongChain(net.weights, net.biases)
    measures = baseline_measures(wrong, _data(net), weightwatcher=False)
    assert list(measures.data_vars) == ["output_margin"]
    assert "does not reproduce its outputs" in measures.attrs["baselines_note"]


def test_torch_and_onnx_give_the_same_measures() -> None:
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    from tests.adapters.onnx_models import export

    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 8), torch.nn.ReLU(), torch.nn.Linear(8, 6),
        torch.nn.ReLU(), torch.nn.Linear(6, 4),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3, 4)).astype(np.float32)
    with torch.no_grad():
        y = module(torch.from_numpy(X)).argmax(1).numpy()
    y[:20] = (y[:20] + 1) % 4  # most right, some wrong: a flatness and margins of both signs
    path = export(module, X[:2], "baselines_mlp")
    from_torch = dk.analyze(module, (X, y), metrics=["baselines"], progress=False).dataset
    from_onnx = dk.analyze(str(path), (X, y), metrics=["baselines"], progress=False).dataset
    for name in [n for n in BASELINES if n != "weightwatcher_alpha"]:
        assert float(from_onnx[name]) == pytest.approx(float(from_torch[name]), rel=1e-4), name
    pytest.importorskip("weightwatcher")  # the test extra brings it
    alpha = "weightwatcher_alpha"  # read from the ONNX file's weights too
    assert float(from_onnx[alpha]) == pytest.approx(float(from_torch[alpha]), rel=1e-4)


def test_weightwatcher_alpha_is_the_packages_mean_alpha() -> None:
    torch = pytest.importorskip("torch")
    weightwatcher = pytest.importorskip("weightwatcher")
    torch.manual_seed(1)
    module = torch.nn.Sequential(
        torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 80), torch.nn.ReLU(),
        torch.nn.Linear(80, 10),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 64)).astype(np.float32), rng.integers(0, 10, 50)
    measures = dk.analyze(module, (X, y), metrics=["baselines"], progress=False).dataset
    details = weightwatcher.WeightWatcher(model=module).analyze()
    alphas = np.asarray(details["alpha"], np.float64)
    assert float(measures["weightwatcher_alpha"]) == pytest.approx(alphas.mean(), rel=1e-9)
    assert measures["weightwatcher_alpha"].attrs["higher_is_better"] == 0


def test_baselines_only_by_name() -> None:
    net = _net()
    X, y = _data(net)
    default = dk.analyze(net, (X, y), progress=False).dataset
    assert not set(BASELINES) & set(default.data_vars)
    asked = dk.analyze(net, (X, y), metrics=["baselines"], progress=False).dataset
    assert {"output_margin", "pacbayes_mag_flatness"} <= set(asked.data_vars)
    assert asked["output_margin"].attrs["higher_is_better"] == 1
    with pytest.raises(dk.errors.InvalidParameterError, match="metrics"):
        dk.analyze(net, (X, y), metrics=["baseline"], progress=False)


class _Shuffling:
    """A loader that gives its batches in a new order on every pass (shuffle=True)."""

    def __init__(self, X: np.ndarray, y: np.ndarray) -> None:
        self.X, self.y, self.passes = X, y, 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        self.passes += 1
        order = np.random.default_rng(self.passes).permutation(len(self.y))
        for start in range(0, len(order), 32):
            chosen = order[start:start + 32]
            yield self.X[chosen], self.y[chosen]


def test_a_shuffling_loader_gives_the_same_measures_as_arrays() -> None:
    net = _net()
    X, y = _data(net)
    loader = _Shuffling(X, y)
    from_loader = baseline_measures(net, loader, weightwatcher=False)
    from_arrays = baseline_measures(net, (X, y), weightwatcher=False)
    assert "baselines_note" not in from_loader.attrs  # the chain was checked on its own batch
    for name in ("output_margin", "log_path_norm", "spectral_margin", "pacbayes_mag_flatness"):
        assert float(from_loader[name]) == pytest.approx(float(from_arrays[name]), rel=1e-12)
    assert loader.passes == 1  # one pass over the data


def test_labels_outside_the_classes_are_refused() -> None:
    net = _net()
    X, y = _data(net)
    y[3] = -1
    with pytest.raises(dk.errors.InvalidDataError):
        baseline_measures(net, (X, y), weightwatcher=False)


def test_flatness_without_a_finite_value_is_left_out_saying_why() -> None:
    net = _net()
    X = np.random.default_rng(0).normal(size=(300, 3))
    y = np.random.default_rng(1).integers(0, 3, 300)  # labels the net does not know: at chance
    measures = baseline_measures(net, (X, y), weightwatcher=False)
    assert "pacbayes_mag_flatness" not in measures
    assert "no weight noise lowers the accuracy" in measures.attrs["baselines_note"]
