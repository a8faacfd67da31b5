"""TorchAdapter in residual models: rows expand at the input of the enclosing block.

Every result is checked against an independent one-intervention-at-a-time forward pass
(hooks of its own, :func:`naive_logits`) and against the input-expansion path.  Models
are float64 so that batched and unbatched passes agree to rounding and accuracies are
identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from directionkit.adapter import Interventions  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.experiments import ablation_curve, noise_curve, unit_importance  # noqa: E402
from directionkit.reference_models.models import ResNet  # noqa: E402
from directionkit.testing import AdapterTests  # noqa: E402
from tests.adapters.test_torch import Boom, Residual, assert_same, snapshot  # noqa: E402

pytestmark = [pytest.mark.requires_torch, pytest.mark.usefixtures("one_torch_thread")]


def randomise_norms(net: nn.Module) -> nn.Module:
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return net


def small_resnet(seed: int = 0) -> nn.Module:
    """The reference bottleneck ResNet, 2 + 2 blocks, on 3x8x8 inputs, float64."""
    torch.manual_seed(seed)
    net = ResNet(blocks=(2, 2), n_classes=5, base=4, small_input=True)
    return randomise_norms(net).double().eval()


def images(n: int, seed: int = 0, shape: tuple[int, ...] = (3, 8, 8)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape))


def naive_logits(net: nn.Module, x: np.ndarray, iv: Interventions, row: int) -> np.ndarray:
    """Intervention ``row`` alone: a plain forward pass, each activation-module call edited."""
    calls: dict[str, int] = {}
    handles = []

    def edit(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: Any, a: torch.Tensor) -> torch.Tensor:
            count = calls.get(name, 0)
            calls[name] = count + 1
            site = name if count == 0 else f"{name}#{count}"
            if site not in iv.sites:
                return a
            unit_shape = [1] * a.ndim
            unit_shape[1 if a.ndim == 4 else -1] = a.shape[1 if a.ndim == 4 else -1]
            scale = torch.from_numpy(iv.scale[site][row]).reshape(unit_shape)
            shift = torch.from_numpy(iv.shift[site][row]).reshape(unit_shape)
            fill = torch.from_numpy(iv.fill[site])[None] if site in iv.fill else 0.0
            noise = torch.from_numpy(iv.noise_std[site][row]).reshape(unit_shape)
            eps = torch.from_numpy(iv.standard_normal(site, row, tuple(a.shape))).double()
            return a * scale + shift + (1 - scale) * fill + noise * eps

        return hook

    for name, module in net.named_modules():
        if isinstance(module, nn.ReLU):
            handles.append(module.register_forward_hook(edit(name)))
    try:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()
    finally:
        for handle in handles:
            handle.remove()


def three_ways(net: nn.Module, **kwargs: Any) -> dict[str, TorchAdapter]:
    """Block expansion (default), forced input expansion, and one row per pass."""
    forced = TorchAdapter(net, **kwargs)
    forced._force_input_expansion = True
    return {
        "block": TorchAdapter(net, **kwargs),
        "input": forced,
        "one_at_a_time": TorchAdapter(net, memory_budget=1, **kwargs),
    }


def random_masks(adapter: TorchAdapter, names: list[str], m: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {name: rng.random((m, adapter.sites[name].n_units)) < 0.5 for name in names}


# -- the contract, with every intervention starting inside a block ------------------
class TestTorchResNetBlockExpansionContract(AdapterTests):
    rtol = atol = 1e-10

    def make_adapter(self) -> TorchAdapter:
        net = small_resnet()
        sites = [s for s in TorchAdapter(net, example_input=self.make_input(1)).sites
                 if s.startswith("stages.1.")]  # fmt: skip
        return TorchAdapter(net, sites=sites, example_input=self.make_input(1))

    def make_input(self, batch: int) -> np.ndarray:
        return images(batch, seed=batch)


# -- where the rows expand ------------------------------------------------------------
def test_rows_expand_at_the_input_of_the_block_holding_the_first_site() -> None:
    net = small_resnet()
    x = images(3)
    rows: dict[str, list[int]] = {}
    watched = {"stem": net.stem[0], "0.0": net.stages[0][0].conv1,
               "0.1": net.stages[0][1].conv1, "1.0": net.stages[1][0].conv1,
               "1.1": net.stages[1][1].conv1, "fc": net.fc}  # fmt: skip

    def count(key: str):  # type: ignore[no-untyped-def]
        return lambda module, inputs, output: rows.setdefault(key, []).append(inputs[0].shape[0])

    handles = [module.register_forward_hook(count(key)) for key, module in watched.items()]
    try:
        adapter = TorchAdapter(net, example_input=x)
        site = "stages.1.0.relu#1"
        assert adapter.sites[site].layer == "stages.1.0"
        iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 4, seed=0))
        first = adapter.run(x, iv).logits  # learns: the site fails, its block works
        assert adapter.expansion_points == {site: "stages.1.0"}
        assert adapter.prefix_cache
        rows.clear()
        again = adapter.run(x, iv).logits  # one pass, at the learned point
        assert rows == {"stem": [3], "0.0": [3], "0.1": [3], "1.0": [12], "1.1": [12],
                        "fc": [12]}  # fmt: skip
        np.testing.assert_array_equal(first, again)
        for row in range(4):
            np.testing.assert_allclose(again[row], naive_logits(net, x, iv, row), 1e-10, 1e-12)

        forced = TorchAdapter(net, example_input=x)
        forced._force_input_expansion = True
        rows.clear()
        np.testing.assert_allclose(forced.run(x, iv).logits, again, 1e-10, 1e-12)
        assert set(rows["stem"]) == {12} and not forced.prefix_cache
    finally:
        for handle in handles:
            handle.remove()


def test_a_site_that_allows_it_still_expands_at_itself() -> None:
    net = small_resnet()
    x = images(3)
    adapter = TorchAdapter(net, example_input=x)
    iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, ["stem.2"], 3, 1))
    adapter.run(x, iv)
    assert adapter.expansion_points == {"stem.2": "stem.2"}


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.relu(self.conv(x))


class Outer(nn.Module):
    """A skip connection around ``b``, which has one inside: ``b`` cannot expand, ``a`` can."""

    def __init__(self) -> None:
        super().__init__()
        self.b = Inner()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.b(x)) + x


class Shared(nn.Module):
    """One residual block called twice (shared weights), between a stem and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU())
        self.blk = Residual(4)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blk(self.blk(self.stem(x))))


def nested() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Sequential(Outer()),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))  # fmt: skip
    return net.double().eval()


def test_the_smallest_working_ancestor_is_found_from_the_innermost_outwards() -> None:
    net = nested()
    x = images(4, shape=(2, 5, 5))
    ways = three_ways(net, example_input=x)
    site = "2.0.b.relu"
    iv = Interventions.zero_ablate(
        ways["block"].sites, random_masks(ways["block"], [site, "2.0.relu"], 5, seed=2)
    )
    out = {key: adapter.run(x, iv).logits for key, adapter in ways.items()}
    # the site and 2.0.b fail (skips inside and around b); 2.0 works
    assert ways["block"].expansion_points == {site: "2.0"}
    assert ways["input"].expansion_points == {}
    for row in range(5):
        expected = naive_logits(net, x, iv, row)
        for key in ways:
            np.testing.assert_allclose(out[key][row], expected, 1e-10, 1e-12, err_msg=key)


@pytest.mark.parametrize("site", ["blk.relu", "blk.relu#2"])
def test_a_module_called_twice_is_no_expansion_point(site: str) -> None:
    torch.manual_seed(2)
    net = randomise_norms(Shared()).double().eval()
    x = images(3, shape=(2, 5, 5))
    adapter = TorchAdapter(net, example_input=x)
    assert [s for s in adapter.sites if s.startswith("blk")] == [
        "blk.relu", "blk.relu#1", "blk.relu#2", "blk.relu#3"
    ]  # fmt: skip
    iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 4, seed=3))
    out = adapter.run(x, iv).logits
    assert adapter.expansion_points == {site: ""}  # not "blk": it runs twice per pass
    assert not adapter.prefix_cache
    for row in range(4):
        np.testing.assert_allclose(out[row], naive_logits(net, x, iv, row), 1e-10, 1e-12)


def test_a_single_example_batch_teaches_nothing_but_is_right() -> None:
    """With B == 1 the site's M rows broadcast against the block's 1-row skip tensor."""
    net = small_resnet()
    adapter = TorchAdapter(net, example_input=images(1))
    site = "stages.1.1.relu#1"
    iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 3, seed=4))
    for batch, learned in ((1, {}), (4, {site: "stages.1.1"}), (1, {site: "stages.1.1"})):
        x = images(batch, seed=batch)
        out = adapter.run(x, iv).logits
        assert adapter.expansion_points == learned
        for row in range(3):
            np.testing.assert_allclose(out[row], naive_logits(net, x, iv, row), 1e-10, 1e-12)


def test_each_first_site_keeps_its_own_expansion_point() -> None:
    net = small_resnet()
    x = images(3)
    adapter = TorchAdapter(net, example_input=x)
    for site in ("stages.0.1.relu", "stages.1.1.relu#1", "stages.1.1.relu#2", "stem.2"):
        iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 2, seed=5))
        adapter.run(x, iv)
    assert adapter.expansion_points == {
        "stages.0.1.relu": "stages.0.1", "stages.1.1.relu#1": "stages.1.1",
        # the last ReLU of a bottleneck comes after its residual sum: it can expand itself
        "stages.1.1.relu#2": "stages.1.1.relu#2", "stem.2": "stem.2",
    }  # fmt: skip


# -- the experiments, three ways -------------------------------------------------------
def assert_same_results(results: dict[str, xr.Dataset | xr.DataArray]) -> None:
    reference = results["one_at_a_time"]
    for result in results.values():
        xr.testing.assert_allclose(result, reference, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(  # "paper-conv" is the scopes "all" and "last:3"
    ("scope", "ablate_to"), [("last:3", "zero"), ("last:3", "mean"), ("all", "zero")]
)
def test_cumulative_ablation_is_the_same_whichever_way_rows_expand(
    scope: str, ablate_to: str
) -> None:
    net = small_resnet()
    x, y = images(12), np.random.default_rng(9).integers(0, 5, 12)
    ways = three_ways(net)
    results = {
        key: ablation_curve(
            adapter,
            (x, y),
            scope,
            orderings=2,
            fractions=4,
            ablate_to=ablate_to,
            batch_size=6,
            train_data=(x, y),
        )
        for key, adapter in ways.items()
    }
    assert_same_results(results)
    expected = {"stages.0.1.relu": "stages.0.1"} if scope == "last:3" else {"stem.2": "stem.2"}
    assert ways["block"].expansion_points == expected


def test_single_unit_importance_is_the_same_whichever_way_rows_expand() -> None:
    net = small_resnet()
    x, y = images(12), np.random.default_rng(8).integers(0, 5, 12)
    sites = ["stages.1.1.relu#1", "stages.1.1.relu#2"]
    ways = three_ways(net, example_input=x[:1])
    results = {key: unit_importance(adapter, (x, y), sites, batch_size=6)
               for key, adapter in ways.items()}  # fmt: skip
    assert_same_results(results)
    assert ways["block"].expansion_points == {  # one request per site
        "stages.1.1.relu#1": "stages.1.1", "stages.1.1.relu#2": "stages.1.1.relu#2"
    }  # fmt: skip


def test_noise_is_the_same_whichever_way_rows_expand() -> None:
    net = small_resnet()
    x, y = images(12), np.random.default_rng(7).integers(0, 5, 12)
    sites = [s for s in TorchAdapter(net, example_input=x[:1]).sites if s.startswith("stages.1")]
    ways = three_ways(net, example_input=x[:1], sites=sites)
    results = {key: noise_curve(adapter, (x, y), (x, y), scales=(0.0, 0.5, 2.0), repeats=2,
                                batch_size=6)
               for key, adapter in ways.items()}  # fmt: skip
    assert_same_results(results)
    assert ways["block"].expansion_points == {"stages.1.0.relu": "stages.1.0"}
    # and per row, against the hand-edited pass
    adapter = ways["block"]
    iv = Interventions.noise({s: np.full(adapter.sites[s].n_units, 0.7) for s in sites},
                             scales=[0.0, 1.0, 3.0], seed=4)  # fmt: skip
    out = adapter.run(x, iv, record=[sites[0], sites[-1]])
    for row in range(3):
        np.testing.assert_allclose(out.logits[row], naive_logits(net, x, iv, row), 1e-10, 1e-12)
    # recorded: the first B rows, the clean activity before the first site, row 0 after it
    forced = ways["input"].run(x, iv, record=[sites[0], sites[-1]])
    for name in (sites[0], sites[-1]):
        np.testing.assert_allclose(out.activations[name], forced.activations[name], 1e-10, 1e-12)


def test_mean_ablation_with_element_templates_matches_the_hand_edited_pass() -> None:
    net = small_resnet()
    x = images(5)
    adapter = TorchAdapter(net, example_input=x)
    sites = ["stages.1.0.relu#1", "stages.1.1.relu#2"]
    templates = adapter.record_elements(images(30, seed=3), sites)
    iv = Interventions.mean_ablate(adapter.sites, random_masks(adapter, sites, 4, seed=6),
                                   {s: templates[s].mean(axis=0) for s in sites})  # fmt: skip
    assert set(iv.fill) == set(sites)
    out = adapter.run(x, iv).logits
    assert adapter.expansion_points == {sites[0]: "stages.1.0"}
    for row in range(4):
        np.testing.assert_allclose(out[row], naive_logits(net, x, iv, row), 1e-10, 1e-12)


# -- no leaks ----------------------------------------------------------------------------
def test_no_hook_is_left_after_failed_expansions_or_an_exception() -> None:
    net = small_resnet()
    boom = Boom()
    net.stages[1][1].conv3 = nn.Sequential(net.stages[1][1].conv3, boom)
    net.train()
    before = snapshot(net)
    x = images(3)
    adapter = TorchAdapter(net, example_input=x)
    site = "stages.1.1.relu"
    iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 3, seed=7))
    adapter.run(x, iv, record=[site])  # fails at the site, expands at the block
    assert adapter.expansion_points == {site: "stages.1.1"}
    assert_same(before, snapshot(net))
    boom.armed = True
    with pytest.raises(RuntimeError, match="boom"):
        adapter.run(x, iv)
    assert_same(before, snapshot(net))
    assert net.training


def test_the_memory_budget_counts_only_the_activations_that_hold_m_rows() -> None:
    net = small_resnet()
    x = images(3)
    site = "stages.1.1.relu"
    numel = TorchAdapter(net, example_input=x)._site_numel
    expanded = sum(n for name, n in numel.items() if name.startswith("stages.1.1."))
    assert expanded < sum(numel.values()) / 2
    passes: list[int] = []
    handle = net.fc.register_forward_hook(lambda m, i, o: passes.append(o.shape[0]))
    try:  # room for 4 rows of the last block, 1 row of every activation
        adapter = TorchAdapter(net, example_input=x, memory_budget=4 * 3 * 3 * expanded * 4)
        iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 4, seed=8))
        adapter.run(x, iv)
        assert adapter.expansion_points == {site: "stages.1.1"}
        passes.clear()
        out = adapter.run(x, iv).logits
        assert passes == [12]  # all four rows in one pass
    finally:
        handle.remove()
    for row in range(4):
        np.testing.assert_allclose(out[row], naive_logits(net, x, iv, row), 1e-10, 1e-12)


def test_an_error_before_the_rows_expand_is_raised_at_once() -> None:
    net = small_resnet()
    boom = Boom()
    net.stem = nn.Sequential(net.stem, boom)
    x = images(3)
    adapter = TorchAdapter(net, example_input=x)
    passes: list[int] = []
    handle = net.stem[0][0].register_forward_hook(lambda m, i, o: passes.append(1))
    boom.armed = True
    site = "stages.1.1.relu"
    iv = Interventions.zero_ablate(adapter.sites, random_masks(adapter, [site], 3, seed=9))
    try:
        with pytest.raises(RuntimeError, match="boom"):
            adapter.run(x, iv)
    finally:
        handle.remove()
    assert passes == [1]  # no other expansion point was tried: the error is not theirs
    assert adapter.expansion_points == {}
