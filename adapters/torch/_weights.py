"""The weights behind a site: the module producing it (and a BatchNorm in between),
the L1 norm of each unit's incoming weights, and the model as a chain of Linear layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from directionkit.adapter import LinearChain
from directionkit.errors import SiteNotFoundError, UnsupportedModelError

from ._trace import Call, Trace

if TYPE_CHECKING:
    from ._adapter import TorchAdapter

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _weight_producer(
    trace: Trace, call: Call, where: str
) -> tuple[nn.Module | None, nn.Module | None]:
    """The weighted module feeding a site (for weight L1), and a BatchNorm in between."""
    before = call.start if where == "input" else call.order
    if where == "output" and call.kind == "module" and _weighted(call.module):
        return call.module, None  # the output of a Linear/Conv itself
    producer = trace.producer(before)
    shape = call.in_shape if where == "input" else call.shape
    if (
        producer is None
        or producer.kind != "module"
        or not _weighted(producer.module)
        or producer.shape is None
        or shape is None
        or producer.shape[1:] != shape[1:]  # a concatenation, a reshape in between
    ):
        return None, None
    norm = None
    for other in trace.calls[producer.order + 1 : before]:
        if other.kind == "module" and isinstance(other.module, _NORMS):
            norm = other.module if other.shape == producer.shape else None
    return producer.module, norm


def _weight_l1(adapter: TorchAdapter, site: str, folded: bool) -> np.ndarray:
    if site not in adapter.sites:
        raise SiteNotFoundError(site, adapter.sites)
    producer, norm = adapter._producers.get(site, (None, None))
    if producer is None:
        raise UnsupportedModelError(
            f"No Linear or Conv module is called just before site {site!r}; its incoming "
            "weights are unknown."
        )
    n_units = adapter.sites[site].n_units
    with torch.no_grad():
        weight = producer.weight.detach().to("cpu", torch.float64)
        if type(producer).__name__ == "Conv1D" and weight.ndim == 2:
            weight = weight.T  # transformers' Conv1D stores (in, out)
        l1 = weight.abs().reshape(weight.shape[0], -1).sum(dim=1)
        if l1.shape[0] != n_units:
            raise UnsupportedModelError(
                f"The module producing site {site!r} has {l1.shape[0]} outputs but the "
                f"site has {n_units} units."
            )
        if folded and norm is not None and norm.affine and norm.track_running_stats:
            gamma = norm.weight.detach().to("cpu", torch.float64)
            var = norm.running_var.detach().to("cpu", torch.float64)
            l1 = l1 * (gamma / torch.sqrt(var + norm.eps)).abs()
    return l1.numpy()


def _linear_chain(adapter: TorchAdapter) -> LinearChain | None:
    """The body of :meth:`TorchAdapter.linear_chain` (see there)."""
    if not isinstance(adapter.module, nn.Sequential) or adapter.output_kind != "logits":
        return None
    layers = [m for m in adapter.module if not isinstance(m, nn.Dropout | nn.Identity)]
    if layers and isinstance(layers[0], nn.Flatten):
        layers = layers[1:]
    weights, biases, site_layers = [], [], {}
    names = {id(m): n for n, m in adapter.module.named_children()}
    for position, module in enumerate(layers):
        expect_linear = position % 2 == 0
        if expect_linear and isinstance(module, nn.Linear):
            w = module.weight.detach().to("cpu")  # the model's own dtype
            weights.append(w.T.numpy().copy())
            b = module.bias
            biases.append(
                np.zeros(w.shape[0], weights[-1].dtype)
                if b is None
                else b.detach().to("cpu").numpy().copy()
            )
        elif not expect_linear and type(module) is nn.ReLU:
            site_layers[names[id(module)]] = len(weights) - 1
        else:
            return None
    if len(layers) % 2 == 0 or not weights:
        return None  # must end with a Linear
    if not all(name in site_layers for name in adapter.sites):
        return None
    return LinearChain(tuple(weights), tuple(biases), site_layers)


def _weighted(module: nn.Module | None) -> bool:
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and weight.ndim >= 2
