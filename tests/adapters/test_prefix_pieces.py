"""Prefix caching under a memory budget: when M rows x B examples do not fit, both
adapters cut the *examples* into pieces that each take every row, so the layers before
the first intervened site still run once per example, and the numbers do not change."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.reference_models.models import ConvNet  # noqa: E402


def small_convnet() -> nn.Module:
    torch.manual_seed(0)
    net = ConvNet(1, 5, channels=(4, 6, 8, 8), strides=(1, 2, 1, 1))
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net.eval()


def masks(n_rows: int, n_units: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n_rows, n_units)) < 0.4


def by_hand(net: nn.Module, x: np.ndarray, site_index: int, rows: np.ndarray) -> np.ndarray:
    """Logits (M, B, C): one plain forward per row, the site's channels multiplied by hand."""
    layers = list(net)
    relus = [i for i, m in enumerate(layers) if isinstance(m, nn.ReLU)]
    out = []
    with torch.no_grad():
        for row in rows:
            h = torch.from_numpy(x)
            for i, layer in enumerate(layers):
                h = layer(h)
                if i == relus[site_index]:
                    h = h * torch.from_numpy(~row).float()[None, :, None, None]
            out.append(h.numpy())
    return np.stack(out)


def test_torch_pieces_keep_the_prefix_once_per_example_and_the_numbers() -> None:
    net = small_convnet()
    x = np.random.default_rng(1).random((13, 1, 10, 10)).astype(np.float32)
    adapter = TorchAdapter(net, example_input=x[:1], memory_budget=70_000)  # forces pieces
    last = list(adapter.sites)[-1]
    rows = masks(9, adapter.sites[last].n_units)
    # the first request of a site learns where rows can expand (it counts the budget from
    # the input until then, which may cost its first piece one more pass); after that:
    adapter.run(x[:3], Interventions.zero_ablate(adapter.sites, {last: rows}))
    assert adapter.expansion_points == {last: last}  # a plain chain: at the site itself
    seen: list[int] = []
    handle = net[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    try:
        out = adapter.run(x, Interventions.zero_ablate(adapter.sites, {last: rows})).logits
    finally:
        handle.remove()
    assert len(seen) > 1, "the budget should have forced several pieces"
    assert sum(seen) == x.shape[0]  # the first layer saw every example exactly once
    np.testing.assert_allclose(out, by_hand(net, x, 3, rows), rtol=1e-5, atol=1e-6)
    roomy = TorchAdapter(net, example_input=x[:1])
    full = roomy.run(x, Interventions.zero_ablate(roomy.sites, {last: rows})).logits
    np.testing.assert_allclose(out, full, rtol=1e-5, atol=1e-6)


def test_torch_noise_keeps_the_whole_batch_and_draws_the_same_noise() -> None:
    net = small_convnet()
    x = np.random.default_rng(2).random((7, 1, 10, 10)).astype(np.float32)
    tight = TorchAdapter(net, example_input=x[:1], memory_budget=70_000)
    roomy = TorchAdapter(net, example_input=x[:1])
    iv = Interventions.noise({n: np.ones(s.n_units) for n, s in tight.sites.items()},
                             [0.0, 0.5, 1.0], seed=3)  # fmt: skip
    np.testing.assert_allclose(
        tight.run(x, iv).logits, roomy.run(x, iv).logits, rtol=1e-5, atol=1e-6
    )


def test_onnx_pieces_give_the_numbers_of_one_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("onnxruntime")
    from directionkit.adapters.onnx import OnnxAdapter
    from tests.adapters.onnx_models import export

    net = small_convnet()
    path = export(net, np.zeros((2, 1, 10, 10), np.float32), "pieces_convnet")
    x = np.random.default_rng(1).random((13, 1, 10, 10)).astype(np.float32)
    tight, roomy = OnnxAdapter(path, memory_budget=70_000), OnnxAdapter(path)
    names = list(tight.sites)
    assert tight._example_piece(  # the budget forces pieces of examples
        Interventions.zero_ablate(tight.sites, {names[-1]: masks(9, 8)}), 13,
        tight._row_numel(None, x),
    ) < 13  # fmt: skip
    for site in (names[-1], names[1]):
        rows = masks(9, tight.sites[site].n_units)
        iv = Interventions.zero_ablate(tight.sites, {site: rows})
        out = tight.run(x, iv).logits
        np.testing.assert_allclose(out, roomy.run(x, iv).logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            out, by_hand(net, x, names.index(site), rows), rtol=1e-4, atol=1e-5
        )
    noisy = Interventions.noise({names[-1]: np.ones(8)}, [0.0, 1.0], seed=4)
    np.testing.assert_allclose(
        tight.run(x, noisy).logits, roomy.run(x, noisy).logits, rtol=1e-5, atol=1e-6
    )
