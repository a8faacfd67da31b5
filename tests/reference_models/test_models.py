"""Reference models: shapes, layouts checked against known sizes, and site discovery."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.errors import DirectionKitError  # noqa: E402
from directionkit.reference_models.models import MLP, ConvNet, ResNet, resnet50  # noqa: E402

pytestmark = pytest.mark.requires_torch


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_resnet50_has_torchvisions_parameter_count() -> None:
    assert n_params(resnet50()) == 25_557_032  # torchvision.models.resnet50


def test_paper_convnet_layout_and_inputs_of_both_data_sets() -> None:
    net = ConvNet(3, 10)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 128, 256, 256, 256, 512, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 1, 2, 1, 1, 2, 1, 1, 2, 1, 1]
    small = ConvNet(1, 10, width=0.25, batch_norm=False)
    assert small(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in small.modules())
    adapter = TorchAdapter(small, example_input=np.zeros((1, 1, 28, 28), np.float32))
    assert len(adapter.sites) == 11 and all(s.kind == "conv" for s in adapter.sites.values())
    assert [s.n_units for s in adapter.sites.values()][-1] == 128


def test_mlp_is_a_linear_chain_with_two_sites() -> None:
    net = MLP(784, hidden=(32, 16), n_classes=10, dropout=0.2)
    adapter = TorchAdapter(net, example_input=np.zeros((1, 784), np.float32))
    assert [s.n_units for s in adapter.sites.values()] == [32, 16]
    assert adapter.linear_chain() is not None  # dropout is an identity in eval mode
    with pytest.raises(DirectionKitError, match="'dropout' parameter of MLP"):
        MLP(784, dropout=1.0)


def test_small_resnet_reuses_relu_per_block_and_gives_one_site_per_call() -> None:
    net = ResNet(blocks=(1, 1), n_classes=10, base=4, small_input=True)
    adapter = TorchAdapter(net, example_input=np.zeros((1, 3, 16, 16), np.float32))
    names = list(adapter.sites)
    assert names[0] == "stem.2"
    assert "stages.0.0.relu" in names and "stages.0.0.relu#2" in names
    assert len(names) == 1 + 3 * 2
    with pytest.raises(DirectionKitError, match="channels, strides"):
        ConvNet(3, 10, channels=(8, 8), strides=(1,))
