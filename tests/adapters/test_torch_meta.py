"""A torch model whose weights live on the 'meta' device (shapes only) is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import directionkit as dk  # noqa: E402
from directionkit.adapters.torch import TorchAdapter  # noqa: E402
from directionkit.errors import UnsupportedModelError  # noqa: E402

pytestmark = pytest.mark.requires_torch


def test_a_model_on_the_meta_device_is_refused_with_how_to_load_it() -> None:
    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    data = (np.zeros((4, 4), np.float32), np.array([0, 1, 0, 1]))
    with pytest.raises(UnsupportedModelError, match=r"'meta' device.*to_empty"):
        dk.analyze(net, data, progress=False)
    cpu = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with pytest.raises(UnsupportedModelError, match="device='meta' was asked for"):
        TorchAdapter(cpu, device="meta")
    assert all(p.device.type == "cpu" for p in cpu.parameters())  # the model is untouched
