"""The paper's definitions, each checked against a hand-written numpy forward pass.

A tiny conv net whose spatial positions have different means and variances, so that
per-element and per-channel statistics differ measurably: conv mean-ablation per element
(paper A.1), conv noise scaled by the sd over a map's elements, raw vs BatchNorm-folded
filter L1 (A.3), top-5 accuracy, probability outputs, float64 models, ``last:K`` layers;
then the torch adapter and its ONNX export agree on all of them.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import directionkit as dk  # noqa: E402
from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.errors import InvalidParameterError  # noqa: E402
from directionkit.experiments import ablation_curve, n_clamped, noise_curve  # noqa: E402
from directionkit.experiments._data import Batches  # noqa: E402
from directionkit.experiments._engine import scope_sites  # noqa: E402
from directionkit.experiments._statistics import element_statistics, unit_moments  # noqa: E402
from directionkit.report import summary_table  # noqa: E402

pytestmark = pytest.mark.requires_torch
N_CLASSES = 7


def tiny_net(seed: int = 0, batch_norm: bool = True) -> nn.Sequential:
    """Conv(1->2) [BN] ReLU, Conv(2->3) ReLU, Flatten, Linear(48 -> 7): sites "2"/"1", "4"/"3"."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Conv2d(1, 2, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(2))
    layers += [nn.ReLU(), nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(),
               nn.Linear(48, N_CLASSES)]  # fmt: skip
    net = nn.Sequential(*layers).eval()
    if batch_norm:
        bn = net[1]
        with torch.no_grad():
            bn.running_mean.copy_(torch.tensor([0.3, -0.2]))
            bn.running_var.copy_(torch.tensor([0.5, 2.0]))
            bn.weight.copy_(torch.tensor([1.5, 0.7]))
            bn.bias.copy_(torch.tensor([0.1, 0.4]))
    return net


def images(n: int, seed: int) -> np.ndarray:
    """4x4 images whose pixels have position-dependent means and spreads."""
    rng = np.random.default_rng(seed)
    mean = np.linspace(-1.0, 2.0, 16).reshape(4, 4)
    spread = np.linspace(0.2, 2.0, 16).reshape(4, 4)[::-1]
    return (mean + spread * rng.normal(size=(n, 1, 4, 4))).astype(np.float32)


def params(net: nn.Sequential) -> dict[str, np.ndarray]:
    p = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    return p


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 convolution, padding 1, by loops over the kernel (float64)."""
    n, _, h, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, width))
    for i in range(3):
        for j in range(3):
            out += np.einsum("bchw,oc->bohw", padded[:, :, i : i + h, j : j + width], w[:, :, i, j])
    return out + b[None, :, None, None]


def forward(net: nn.Sequential, x: np.ndarray, edits: dict | None = None) -> tuple:
    """Logits (B, 7) and both sites' activations; ``edits[k](h)`` replaces site k's output."""
    p, edits = params(net), edits or {}
    bn = isinstance(net[1], nn.BatchNorm2d)
    first, second = ("2", "4") if bn else ("1", "3")
    h = conv2d(np.asarray(x, np.float64), p["0.weight"], p["0.bias"])
    if bn:
        scale = p["1.weight"] / np.sqrt(p["1.running_var"] + net[1].eps)
        h = (h - p["1.running_mean"][None, :, None, None]) * scale[None, :, None, None]
        h = h + p["1.bias"][None, :, None, None]
    h = np.maximum(h, 0)
    h = edits[first](h) if first in edits else h
    a1 = h
    k = "3" if bn else "2"
    h = np.maximum(conv2d(h, p[f"{k}.weight"], p[f"{k}.bias"]), 0)
    h = edits[second](h) if second in edits else h
    a2 = h
    k = "6" if bn else "5"
    logits = h.reshape(len(h), -1) @ p[f"{k}.weight"].T + p[f"{k}.bias"]
    return logits, {first: a1, second: a2}


@pytest.fixture(scope="module")
def setup() -> tuple:
    net = tiny_net()
    train_x, test_x = images(80, seed=1), images(60, seed=2)
    train_y = forward(net, train_x)[0].argmax(1)
    test_y = forward(net, test_x)[0].argmax(1)
    test_y[::4] = (test_y[::4] + 1) % N_CLASSES  # some wrong, so curves are not trivial
    adapter = TorchAdapter(net, example_input=train_x[:1])
    return net, adapter, (train_x, train_y), (test_x, test_y)


def clamp(mask: np.ndarray, template: np.ndarray):  # type: ignore[no-untyped-def]
    """Edit that clamps the channels where ``mask`` is True to ``template`` (C, H, W)."""
    keep = (~mask).astype(np.float64)[None, :, None, None]
    return lambda h: h * keep + (1 - keep) * np.broadcast_to(template, h.shape[1:])[None]


def test_element_means_and_map_sds_are_the_numpy_ones(setup) -> None:  # type: ignore[no-untyped-def]
    net, adapter, train, _ = setup
    means, map_std = element_statistics(adapter, Batches(train, batch_size=30), ["2", "4"])
    acts = forward(net, train[0])[1]
    for name, a in acts.items():
        np.testing.assert_allclose(means[name], a.mean(axis=0), rtol=1e-5, atol=1e-6)
        pooled = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1).std(axis=1)
        np.testing.assert_allclose(map_std[name], pooled, rtol=1e-5, atol=1e-6)
        # the test's premise: positions differ, so per-element != per-channel
        spread = means[name].max(axis=(1, 2)) - means[name].min(axis=(1, 2))
        assert np.all(spread > 0.1 * np.abs(means[name]).mean())
        spatial_sd = a.mean(axis=(2, 3)).std(axis=0)
        assert np.all(pooled > 1.2 * spatial_sd)  # the old definition was much smaller
    old = unit_moments(adapter, Batches(train), ["2", "4"]).std()
    np.testing.assert_allclose(old[:2], acts["2"].mean(axis=(2, 3)).std(axis=0), rtol=1e-5)


@pytest.mark.parametrize("ablate_to", ["mean", "channel-mean"])
def test_mean_ablation_curves_equal_a_hand_clamped_forward_pass(setup, ablate_to) -> None:  # type: ignore[no-untyped-def]
    net, adapter, train, (x, y) = setup
    fractions = [0.0, 0.2, 0.4, 0.6, 1.0]
    curve = ablation_curve(
        adapter, (x, y), "all", orderings=3, fractions=fractions, ablate_to=ablate_to, seed=5,
        train_data=train, batch_size=25,
    )  # fmt: skip
    assert curve.attrs["means_from"] == "train_data"
    acts = forward(net, train[0])[1]
    templates = {
        n: a.mean(axis=0) if ablate_to == "mean" else
        np.broadcast_to(a.mean(axis=(0, 2, 3))[:, None, None], a.shape[1:])
        for n, a in acts.items()
    }  # fmt: skip
    order = curve["ablation_order"].values[0]
    for o in range(3):
        for f, fraction in enumerate(fractions):
            gone = np.zeros(5, bool)
            gone[order[o, : n_clamped(fraction, 5)]] = True
            edits = {"2": clamp(gone[:2], templates["2"]), "4": clamp(gone[2:], templates["4"])}
            expected = (forward(net, x, edits)[0].argmax(1) == y).mean()
            assert curve["ablation_accuracy"].values[0, o, f] == pytest.approx(expected)


def test_per_element_and_per_channel_mean_ablation_differ_measurably(setup) -> None:  # type: ignore[no-untyped-def]
    net, adapter, train, (x, _) = setup
    acts = forward(net, train[0])[1]
    masks = {"2": np.array([[True, False]]), "4": np.array([[False, True, True]])}
    per_element = {n: a.mean(axis=0) for n, a in acts.items()}
    per_channel = {n: a.mean(axis=(0, 2, 3)) for n, a in acts.items()}
    got = adapter.run(x, Interventions.mean_ablate(adapter.sites, masks, per_element)).logits[0]
    edits = {n: clamp(masks[n][0], per_element[n]) for n in masks}
    np.testing.assert_allclose(got, forward(net, x, edits)[0], rtol=1e-4, atol=1e-4)
    other = adapter.run(x, Interventions.mean_ablate(adapter.sites, masks, per_channel)).logits[0]
    assert np.abs(got - other).mean() > 0.05


def test_noise_is_scaled_by_the_sd_over_each_maps_elements(setup) -> None:  # type: ignore[no-untyped-def]
    net, adapter, train, (x, y) = setup
    scales, repeats, seed = [0.0, 0.5, 2.0], 2, 3
    curve = noise_curve(adapter, (x, y), train, scales, repeats, seed, batch_size=30)
    assert curve.attrs["noise_sd"] == "map"
    acts = forward(net, train[0])[1]
    std = {n: np.moveaxis(a, 1, 0).reshape(a.shape[1], -1).std(axis=1) for n, a in acts.items()}
    iv = Interventions.noise(std, scales=np.tile(scales, repeats), seed=seed)
    correct = np.zeros(len(scales) * repeats)
    for batch, start in enumerate(range(0, len(y), 30)):
        xb, yb = x[start : start + 30], y[start : start + 30]
        drawn = iv.for_batch(batch)
        for row in range(len(correct)):
            edits = {
                n: (lambda h, n=n, row=row, d=drawn: h + d.noise_std[n][row][None, :, None, None]
                    * d.standard_normal(n, row, h.shape))
                for n in std
            }  # fmt: skip
            correct[row] += (forward(net, xb, edits)[0].argmax(1) == yb).sum()
    expected = (correct / len(y)).reshape(repeats, len(scales))
    # float32 in torch against float64 here: allow one example's prediction to flip
    np.testing.assert_allclose(curve.values, expected, atol=1.01 / len(y))
    assert expected[:, -1].mean() < expected[:, 0].mean()  # the noise is strong enough to matter
    spatial = noise_curve(adapter, (x, y), train, scales, repeats, seed, batch_size=30,
                          noise_sd="spatial-mean")  # fmt: skip
    assert spatial.attrs["noise_sd"] == "spatial-mean"


def test_weight_l1_is_the_raw_filter_and_weight_l1_folded_has_batchnorm_in(setup) -> None:  # type: ignore[no-untyped-def]
    net, adapter, _, (x, y) = setup
    p = params(net)
    raw = np.abs(p["0.weight"]).sum(axis=(1, 2, 3))
    factor = np.abs(p["1.weight"] / np.sqrt(p["1.running_var"] + net[1].eps))
    result = dk.analyze(adapter, (x, y), metrics=["weight_l1"], progress=False).dataset
    second = np.abs(p["3.weight"]).sum(axis=(1, 2, 3))  # no BatchNorm: both the same
    np.testing.assert_allclose(result["weight_l1"], np.r_[raw, second], rtol=1e-6)
    np.testing.assert_allclose(result["weight_l1_folded"], np.r_[raw * factor, second], 1e-6)


def top5(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    ranks = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    return (ranks == y[:, None]).any(axis=1)


def test_top5_accuracy_everywhere_matches_numpy_ranks(setup) -> None:  # type: ignore[no-untyped-def]
    net, adapter, train, (x, y) = setup
    y = y.copy()
    y[::2] = (y[::2] + 3) % N_CLASSES  # many top-1 misses, some top-5 hits
    result = dk.analyze(adapter, (x, y), train_data=train, metrics=["ablation", "importance"],
                        accuracy="top5", orderings=2, fractions=3, progress=False)  # fmt: skip
    clean = forward(net, x)[0]
    assert float(result["accuracy"]) == pytest.approx(top5(clean, y).mean())
    assert float(result["accuracy"]) > (clean.argmax(1) == y).mean() + 0.1
    assert result.dataset.attrs["accuracy"] == "top5"
    np.testing.assert_allclose(
        result["ablation_accuracy"].sel(fraction=0.0), top5(clean, y).mean(), rtol=1e-12
    )
    for unit, (site, index) in enumerate([("2", 0), ("2", 1), ("4", 0), ("4", 1), ("4", 2)]):
        gone = np.zeros(2 if site == "2" else 3, bool)
        gone[index] = True
        zero = np.zeros((len(gone), 4, 4))
        ablated = forward(net, x, {site: clamp(gone, zero)})[0]
        assert float(result["importance_accuracy"][unit]) == pytest.approx(
            top5(ablated, y).mean() - top5(clean, y).mean()
        )
    assert "accuracy (top5)" in summary_table(result)
    three = nn.Sequential(nn.Flatten(), nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 3))
    with pytest.raises(InvalidParameterError, match="more than 5 classes"):
        dk.analyze(three, (x, y % 3), accuracy="top5", metrics=["ablation"], progress=False)


def test_mean_ablation_in_analyze_needs_training_data(setup) -> None:  # type: ignore[no-untyped-def]
    _, adapter, train, test = setup
    with pytest.raises(InvalidParameterError, match="train_data"):
        dk.analyze(adapter, test, ablate_to="mean", metrics=["ablation"], progress=False)
    result = dk.analyze(adapter, test, train_data=train, ablate_to="channel-mean",
                        metrics=["ablation"], orderings=2, fractions=3, progress=False)  # fmt: skip
    assert result.dataset.attrs["means_from"] == "train_data"
    assert result.dataset.attrs["parameters"]["ablate_to"] == "channel-mean"


@pytest.mark.parametrize(
    ("final", "expected_kind"),
    [(nn.Softmax(dim=1), "probabilities"), (nn.LogSoftmax(dim=1), "log-probabilities"),
     (nn.Sigmoid(), "sigmoid-probabilities")],
)  # fmt: skip
def test_probability_outputs_are_detected_and_scored_as_log_probabilities(
    setup, final, expected_kind, caplog
) -> None:  # type: ignore[no-untyped-def]
    net, _, _, (x, y) = setup
    wrapped = nn.Sequential(*net, final).eval()
    with caplog.at_level(logging.INFO, logger="directionkit.adapters.torch"):
        adapter = TorchAdapter(wrapped, example_input=x[:1])
    assert adapter.output_kind == expected_kind
    assert type(final).__name__ in caplog.text
    assert list(adapter.sites) == ["2", "4"]  # the output activation is not a site
    z = forward(net, x)[0].astype(np.float64)
    if isinstance(final, nn.Sigmoid):  # per-class probabilities s, renormalised for the loss
        scores = -np.log1p(np.exp(-z))  # log s
        loss = -(scores - np.log(np.exp(scores).sum(1, keepdims=True)))
    else:
        top = z.max(1, keepdims=True)
        scores = z - top - np.log(np.exp(z - top).sum(1, keepdims=True))  # log p
        loss = -scores
    np.testing.assert_allclose(adapter.run(x).logits[0], scores, rtol=1e-4, atol=1e-4)
    result = dk.analyze(adapter, (x, y), metrics=[], progress=False).dataset
    assert float(result["loss"]) == pytest.approx(loss[np.arange(len(y)), y].mean(), rel=1e-4)
    assert float(result["accuracy"]) == pytest.approx((z.argmax(1) == y).mean())
    assert result.attrs["output_kind"] == expected_kind


def test_a_float64_model_runs_in_float64(setup) -> None:  # type: ignore[no-untyped-def]
    net, _, _, (x, _) = setup
    double = tiny_net().double()
    adapter = TorchAdapter(double, example_input=x[:1])  # float32 input: cast to the model's
    out = adapter.run(x.astype(np.float64), record=["4"])
    assert out.logits.dtype == np.float64
    np.testing.assert_allclose(out.logits[0], forward(net, x)[0], rtol=1e-10, atol=1e-10)
    elements = adapter.record_elements(x, ["2"])["2"]
    np.testing.assert_allclose(elements, forward(net, x)[1]["2"], rtol=1e-10, atol=1e-12)


def test_last_k_counts_layers_and_a_resnet_block_is_one_layer() -> None:
    from directionkit.reference_models.models import ConvNet, ResNet

    torch.manual_seed(0)
    resnet = ResNet(blocks=(1, 1), n_classes=5, base=4, small_input=True)
    sites = TorchAdapter(resnet, example_input=np.zeros((1, 3, 8, 8), np.float32)).sites
    blocks = ["stages.0.0", "stages.1.0"]
    assert [s.layer for s in sites.values()] == [None, *[b for b in blocks for _ in range(3)]]
    assert scope_sites(sites, "last:1", "t") == [f"{blocks[1]}.relu{c}" for c in ("", "#1", "#2")]
    assert len(scope_sites(sites, "last:2", "t")) == 6
    assert scope_sites(sites, "last:3", "t") == list(sites)
    with pytest.raises(InvalidParameterError, match="number of layers"):
        scope_sites(sites, "last:4", "t")
    conv = ConvNet(3, 10, channels=(2, 2, 2, 2), strides=(1, 1, 1, 1))
    conv_sites = TorchAdapter(conv, example_input=np.zeros((1, 3, 8, 8), np.float32)).sites
    assert scope_sites(conv_sites, "last:3", "t") == list(conv_sites)[-3:]
    x = np.random.default_rng(0).normal(size=(20, 3, 8, 8)).astype(np.float32)
    preset = dk.analyze(conv, (x, np.arange(20) % 10), scopes="paper-conv", metrics=["ablation"],
                        orderings=1, fractions=2, progress=False)  # fmt: skip
    assert list(preset["scope"].values) == ["all", "last:3"]
    assert preset.dataset.attrs["parameters"]["scopes"] == ["all", "last:3"]


# -- the ONNX export agrees on every definition ------------------------------------------
@pytest.mark.parametrize(
    ("variant", "options"),
    [("paper", {"ablate_to": "mean", "accuracy": "top5"}),  # default noise_sd="map"
     ("alternatives", {"ablate_to": "channel-mean", "noise_sd": "spatial-mean"}),
     ("softmax", {"ablate_to": "mean"})],  # the model ends in a Softmax
)  # fmt: skip
def test_torch_and_its_onnx_export_agree_on_every_definition(setup, variant, options) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    from directionkit.adapters.onnx import OnnxAdapter
    from tests.adapters.onnx_models import export

    net, adapter, train, (x, y) = setup
    if variant == "softmax":
        net = nn.Sequential(*net, nn.Softmax(dim=1)).eval()
        adapter = TorchAdapter(net, example_input=x[:1])
    onnx_adapter = OnnxAdapter(export(net, x[:2], f"paper_definitions_{variant}"))
    assert dict(onnx_adapter.sites) == dict(adapter.sites)  # names, layers, shapes
    assert onnx_adapter.output_kind == adapter.output_kind
    y = y.copy()
    y[::2] = (y[::2] + 3) % N_CLASSES
    y[:N_CLASSES] = np.arange(N_CLASSES)  # every class present, for the class means
    kwargs = dict(
        train_data=train, orderings=3, fractions=6, noise_scales=[0.0, 0.5, 2.0],
        noise_repeats=2, scopes=("all", "last:1"), batch_size=25, progress=False, **options,
    )  # fmt: skip
    ref = dk.analyze(adapter, (x, y), **kwargs).dataset
    got = dk.analyze(onnx_adapter, (x, y), **kwargs).dataset
    assert got.attrs["parameters"] == ref.attrs["parameters"]
    # the exporter folded the BatchNorm into the first Conv: only the folded L1 is known
    assert "weight_l1" not in got and "folded a BatchNorm" in got.attrs["weight_l1_note"]
    assert sorted(got.data_vars) == sorted(set(ref.data_vars) - {"weight_l1"})
    for name in got.data_vars:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-4, atol=1e-4, err_msg=name)
    if variant != "paper":
        return
    # and the per-element clamp through the ONNX graph equals the hand pass
    acts = forward(net, train[0])[1]
    masks = {"2": np.array([[True, True]]), "4": np.array([[True, False, True]])}
    means = {n: a.mean(axis=0) for n, a in acts.items()}
    logits = onnx_adapter.run(x, Interventions.mean_ablate(onnx_adapter.sites, masks, means))
    edits = {n: clamp(masks[n][0], means[n]) for n in masks}
    np.testing.assert_allclose(logits.logits[0], forward(net, x, edits)[0], rtol=1e-4, atol=1e-4)
