"""The PyTorch adapter: the shared contract, brute-force references, and no leaks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.errors import (  # noqa: E402
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)
from directionkit.testing import AdapterTests  # noqa: E402

pytestmark = pytest.mark.requires_torch


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


class Residual(nn.Module):
    """A conv block with BatchNorm, a skip connection and a reused ReLU module."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


def convnet(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        Residual(4),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3),
    )  # fmt: skip
    # non-trivial BatchNorm statistics, so folding them into the L1 norm matters
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    return net


class TestTorchMLPContract(AdapterTests):
    def make_adapter(self) -> TorchAdapter:
        return TorchAdapter(mlp(), example_input=self.make_input(1))

    def make_input(self, batch: int) -> np.ndarray:
        return np.random.default_rng(batch).normal(size=(batch, 6)).astype(np.float32)


class TestTorchResidualConvContract(AdapterTests):
    def make_adapter(self) -> TorchAdapter:
        return TorchAdapter(convnet(), example_input=self.make_input(1))

    def make_input(self, batch: int) -> np.ndarray:
        return np.random.default_rng(batch).normal(size=(batch, 2, 5, 5)).astype(np.float32)


def brute_force_mlp(net: nn.Sequential, x: np.ndarray, scale: dict, shift: dict) -> np.ndarray:
    """A plain forward pass with each activation edited by hand, one intervention at a time."""
    w = [net[i].weight.detach().double().numpy() for i in (0, 2, 4)]
    b = [net[i].bias.detach().double().numpy() for i in (0, 2, 4)]
    h1 = np.maximum(x @ w[0].T + b[0], 0) * scale["1"] + shift["1"]
    h2 = np.maximum(h1 @ w[1].T + b[1], 0) * scale["3"] + shift["3"]
    return h2 @ w[2].T + b[2]


def test_mlp_interventions_equal_a_hand_edited_forward_pass() -> None:
    net = mlp()
    x = np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)
    adapter = TorchAdapter(net, example_input=x)
    rng = np.random.default_rng(1)
    masks = {"1": rng.random((6, 5)) < 0.5, "3": rng.random((6, 4)) < 0.5}
    means = {"1": rng.random(5), "3": rng.random(4)}
    iv = Interventions.mean_ablate(adapter.sites, masks, means)
    out = adapter.run(x, iv).logits
    for m in range(6):
        scale = {s: iv.scale[s][m] for s in masks}
        shift = {s: iv.shift[s][m] for s in masks}
        np.testing.assert_allclose(
            out[m], brute_force_mlp(net, x, scale, shift), rtol=1e-5, atol=1e-5
        )


def test_conv_interventions_and_recording_equal_a_hand_edited_forward_pass() -> None:
    net = convnet().eval()
    x = np.random.default_rng(0).normal(size=(3, 2, 5, 5)).astype(np.float32)
    adapter = TorchAdapter(net, example_input=x)
    assert list(adapter.run(x).logits.shape) == [1, 3, 3]
    assert list(adapter.sites) == ["2", "3.relu", "3.relu#1"]
    assert all(s.kind == "conv" and s.n_units == 4 for s in adapter.sites.values())
    keep = np.array([1.0, 0.0, 1.0, 0.0])
    iv = Interventions.zero_ablate(adapter.sites, {"3.relu": [keep == 0], "2": [keep == 1]})
    out = adapter.run(x, iv, record=["2", "3.relu#1"])
    with torch.no_grad():
        t = torch.from_numpy(x)
        a0 = net[2](net[1](net[0](t))) * torch.tensor(1 - keep, dtype=torch.float32).view(
            1, 4, 1, 1
        )
        blk = net[3]
        a1 = blk.relu(blk.bn1(blk.conv1(a0))) * torch.tensor(keep, dtype=torch.float32).view(
            1, 4, 1, 1
        )
        a2 = blk.relu(blk.bn2(blk.conv2(a1)) + a0)
        expected = net[6](net[5](net[4](a2)))
        clean0 = net[2](net[1](net[0](t)))
    np.testing.assert_allclose(out.logits[0], expected.numpy(), rtol=1e-5, atol=1e-5)
    # recording gives the site's own (pre-edit) activity averaged over space
    np.testing.assert_allclose(
        out.activations["2"], clean0.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        out.activations["3.relu#1"], a2.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6
    )


def test_prefix_runs_once_per_batch_when_only_a_later_site_is_edited() -> None:
    net = mlp()
    seen: list[int] = []
    handle = net[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    adapter = TorchAdapter(net)
    x = np.zeros((4, 6), np.float32)
    adapter.run(x)
    seen.clear()
    adapter.run(x, Interventions.identity({"3": 4}, n=10))
    assert seen == [4]  # the first layer saw the data batch once, not 10 x 4 rows
    handle.remove()


def snapshot(net: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in net.state_dict().items()},
        "training": [m.training for m in net.modules()],
        "grad": [p.requires_grad for p in net.parameters()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in net.modules()
        ],
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["training"] == after["training"]
    assert before["grad"] == after["grad"]
    assert before["hooks"] == after["hooks"]
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


class Boom(nn.Module):
    armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed:
            raise RuntimeError("boom")
        return x


def test_model_is_untouched_after_runs_and_after_an_exception_mid_run() -> None:
    net = nn.Sequential(
        nn.Linear(6, 5), nn.ReLU(), Boom(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)
    )
    net.train()
    net[3].weight.requires_grad_(False)
    before = snapshot(net)
    x = np.ones((2, 6), np.float32)
    adapter = TorchAdapter(net, example_input=x)
    adapter.run(x, Interventions.noise({"1": np.ones(5)}, [1.0]), record=["1"])
    assert_same(before, snapshot(net))
    net[2].armed = True
    with pytest.raises(RuntimeError, match="boom"):
        adapter.run(x, Interventions.zero_ablate(adapter.sites, {"1": [[True] * 5, [False] * 5]}))
    assert_same(before, snapshot(net))
    assert net.training


def test_a_reused_module_gives_one_site_per_call_and_the_output_activation_is_no_site() -> None:
    net = nn.Sequential(convnet(), nn.Sigmoid())
    adapter = TorchAdapter(net, example_input=np.zeros((1, 2, 5, 5), np.float32))
    assert list(adapter.sites) == ["0.2", "0.3.relu", "0.3.relu#1"]
    assert [s.depth for s in adapter.sites.values()] == [0, 1, 2]


def test_sites_can_be_chosen_by_name_and_unknown_names_list_the_valid_ones() -> None:
    adapter = TorchAdapter(mlp(), sites=["3"], example_input=np.zeros((1, 6), np.float32))
    assert list(adapter.sites) == ["3"] and adapter.sites["3"].depth == 0
    with pytest.raises(SiteNotFoundError, match=r"Unknown site 'fc9'. Valid sites are: '1', '3'"):
        TorchAdapter(mlp(), sites=["fc9"], example_input=np.zeros((1, 6), np.float32))
    with pytest.raises(InvalidParameterError, match="example_input"):
        TorchAdapter(mlp()).sites  # noqa: B018


def test_models_without_sites_or_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(UnsupportedModelError, match="no hidden activation"):
        TorchAdapter(nn.Linear(3, 2), example_input=np.zeros((1, 3), np.float32))
    with pytest.raises(UnsupportedModelError, match=r"torch\.nn\.Module"):
        TorchAdapter("model.pt")  # type: ignore[arg-type]


def test_unit_weight_l1_is_the_raw_filter_and_the_folded_one_has_batchnorm_in() -> None:
    net = mlp()
    adapter = TorchAdapter(net, example_input=np.zeros((1, 6), np.float32))
    np.testing.assert_allclose(
        adapter.unit_weight_l1("3"), np.abs(net[2].weight.detach().numpy()).sum(1), rtol=1e-6
    )
    conv = convnet()
    adapter = TorchAdapter(conv, example_input=np.zeros((1, 2, 5, 5), np.float32))
    w = conv[0].weight.detach().double().numpy()
    bn = conv[1]
    factor = np.abs(
        bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.double().numpy() + bn.eps)
    )
    np.testing.assert_allclose(adapter.unit_weight_l1("2"), np.abs(w).reshape(4, -1).sum(1), 1e-6)
    np.testing.assert_allclose(
        adapter.unit_weight_l1_folded("2"), np.abs(w).reshape(4, -1).sum(1) * factor, rtol=1e-6
    )
    assert not np.allclose(factor, 1.0)  # the two differ on this model


def test_plain_mlps_are_recognised_as_linear_chains_and_others_are_not() -> None:
    net = mlp()
    adapter = TorchAdapter(net, example_input=np.zeros((1, 6), np.float32))
    chain = adapter.linear_chain()
    assert chain is not None and dict(chain.site_layers) == {"1": 0, "3": 1}
    np.testing.assert_allclose(chain.weights[1], net[2].weight.detach().double().numpy().T)
    conv = TorchAdapter(convnet(), example_input=np.zeros((1, 2, 5, 5), np.float32))
    assert conv.linear_chain() is None
    gelu = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 3))
    assert TorchAdapter(gelu, example_input=np.zeros((1, 6), np.float32)).linear_chain() is None


@pytest.mark.parametrize("ablate_to", ["zero", "mean"])
def test_incremental_and_general_ablation_curves_agree_on_a_torch_mlp(ablate_to: str) -> None:
    from directionkit.experiments import ablation_curve

    torch.manual_seed(3)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Dropout(0.5),
                        nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))  # fmt: skip
    x = np.random.default_rng(0).normal(size=(300, 3, 4)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 300)
    adapter = TorchAdapter(net, example_input=x[:1])
    kwargs = dict(
        orderings=4, fractions=11, ablate_to=ablate_to, seed=2, batch_size=128, train_data=(x, y)
    )
    fast = ablation_curve(adapter, (x, y), method="incremental", **kwargs)
    slow = ablation_curve(adapter, (x, y), method="general", **kwargs)
    # float64 incremental vs float32 forward passes: at most one example may flip
    np.testing.assert_allclose(
        fast["ablation_accuracy"], slow["ablation_accuracy"], atol=1 / 300 + 1e-12
    )
    np.testing.assert_array_equal(fast["ablation_order"], slow["ablation_order"])
    conv = TorchAdapter(convnet(), example_input=np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(InvalidParameterError, match="plain ReLU MLP"):
        ablation_curve(
            conv, (np.zeros((4, 2, 5, 5), np.float32), np.zeros(4, int)), method="incremental"
        )


def test_incremental_and_general_unit_importance_agree_on_a_torch_mlp() -> None:
    from directionkit.experiments import unit_importance

    net = mlp(4)
    x = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, 200)
    adapter = TorchAdapter(net, example_input=x[:1])
    fast = unit_importance(adapter, (x, y), method="incremental", batch_size=64)
    slow = unit_importance(adapter, (x, y), method="general", batch_size=64)
    np.testing.assert_allclose(fast["importance_loss"], slow["importance_loss"], atol=1e-5)
    np.testing.assert_allclose(
        fast["importance_accuracy"], slow["importance_accuracy"], atol=1 / 200
    )


def test_experiments_find_the_sites_from_their_first_batch() -> None:
    """No example_input: every experiment (and analyze) runs the first example to find them."""
    import directionkit as dk
    from directionkit.experiments import (
        ablation_curve,
        activation_statistics,
        noise_curve,
        record_activations,
        unit_importance,
    )

    X = np.random.default_rng(0).normal(size=(30, 6)).astype(np.float32)
    y = np.arange(30) % 3
    reference = TorchAdapter(mlp(), example_input=X[:1])
    expected = ablation_curve(reference, (X, y), orderings=2, fractions=3, method="general")
    for run in (
        lambda a: ablation_curve(a, (X, y), orderings=2, fractions=3, method="general"),
        lambda a: unit_importance(a, (X, y)),
        lambda a: activation_statistics(a, (X, y)),
        lambda a: noise_curve(a, (X, y), (X, y), scales=[0.0, 1.0], repeats=1),
        lambda a: dk.analyze(a, (X, y), orderings=2, fractions=3, progress=False),
    ):
        adapter = TorchAdapter(mlp())
        assert adapter.sites_pending
        run(adapter)
        assert not adapter.sites_pending and list(adapter.sites) == ["1", "3"]
    lazy = ablation_curve(TorchAdapter(mlp()), (X, y), orderings=2, fractions=3, method="general")
    np.testing.assert_array_equal(lazy["ablation_accuracy"], expected["ablation_accuracy"])
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y)), batch_size=8
    )
    adapter = TorchAdapter(mlp())
    assert unit_importance(adapter, loader)["importance_loss"].sizes["unit"] == 9
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        record_activations(TorchAdapter(mlp()), (X, y), f"{tmp}/acts.zarr")


def test_the_default_memory_budget_is_256_mib_on_the_cpu() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert TorchAdapter(net).memory_budget == 256 * 2**20
    assert TorchAdapter(net, memory_budget=12345).memory_budget == 12345
