"""The model and data shared by the benchmarks, so that "the B1 workload" is one definition.

Imported by the benchmark scripts, which run as ``python benchmarks/<script>.py`` (their
folder is then first on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import n_clamped


def mlp(hidden: int = 512) -> nn.Sequential:
    """MLP 784-hidden-hidden-10 with torch's default initialisation, in eval mode."""
    return nn.Sequential(
        nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, 10),
    ).eval()  # fmt: skip


def b1_workload(n: int) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """B1's seeded MLP 784-512-512-10, ``n`` uniform inputs, and its own predictions as
    labels with every third one replaced at random (not a perfect fit)."""
    torch.manual_seed(0)
    model = mlp()
    x = torch.rand(n, 784)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::3] = torch.randint(0, 10, y[::3].shape)
    return model, x, y


def curve_masks(adapter: TorchAdapter, curve: Any, names: list[str]) -> list[dict]:
    """The keep-masks (1 = unit kept) of every point of an ablation curve, from the curve's
    own orderings: what a naive hook loop clamps to reproduce it point by point."""
    order = curve["ablation_order"].values[0]
    offsets, total = {}, 0
    for name, site in adapter.sites.items():
        offsets[name] = total
        total += site.n_units
    points = []
    for o in range(order.shape[0]):
        for fraction in curve["fraction"].values:
            keep = np.ones(total, np.float32)
            keep[order[o, : n_clamped(fraction, order.shape[1])]] = 0
            points.append({n: keep[offsets[n] : offsets[n] + adapter.sites[n].n_units]
                           for n in names})  # fmt: skip
    return points
