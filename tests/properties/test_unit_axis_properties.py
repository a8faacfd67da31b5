"""Properties of a site's unit axis: wherever the units lie, a unit is the same unit.

A channels-last activation ``(B, H, W, C)`` with its units on axis 2 must give exactly
what the same activation laid out channels-first ``(B, C, H, W)`` gives: the statistics
of its elements, the shift an intervention adds, and through the torch adapter the
recorded activity and the logits under any ablation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from directionkit.adapter import Interventions, RunOutput, Site, units_last
from directionkit.experiments._data import Batches
from directionkit.experiments._statistics import element_statistics


class Elements:
    """A model whose only site is its input, with its units on a given axis."""

    def __init__(self, shape: tuple[int, ...], axis: int) -> None:
        self._sites = {"a": Site("a", shape[axis], "conv", 0, shape=shape, axis=axis)}

    @property
    def sites(self) -> Mapping[str, Site]:
        return self._sites

    def run(self, x: Any, interventions: Any = None, record: Sequence[str] = ()) -> RunOutput:
        x = np.asarray(x)
        return RunOutput(np.zeros((1, len(x), 2)), {n: units_last(self._sites[n], x).mean(1)
                                                    for n in record})  # fmt: skip

    def record_elements(self, x: Any, sites: Sequence[str]) -> dict[str, np.ndarray]:
        return {n: np.asarray(x) for n in sites}


shapes = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))


@given(shapes, st.integers(0, 2), st.integers(1, 6), st.data())
def test_statistics_of_a_unit_do_not_depend_on_where_its_axis_is(shape, axis, n, data) -> None:  # type: ignore[no-untyped-def]
    first = data.draw(hnp.arrays(np.float64, (n, *shape),
                                 elements=st.floats(-100, 100, allow_subnormal=False)))  # fmt: skip
    moved = np.moveaxis(first, 1, 1 + axis)  # the same map, units on `axis`
    labels = np.zeros(n, int)
    mean_a, std_a = element_statistics(Elements(shape, 0), Batches((first, labels)), ["a"])
    mean_b, std_b = element_statistics(Elements(moved.shape[1:], axis), Batches((moved, labels)),
                                       ["a"])  # fmt: skip
    np.testing.assert_allclose(std_b["a"], std_a["a"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mean_b["a"], np.moveaxis(mean_a["a"], 0, axis), atol=1e-9)
    np.testing.assert_allclose(std_a["a"], first.transpose(1, 0, 2, 3).reshape(shape[0], -1)
                               .std(axis=1), atol=1e-9)  # fmt: skip


@given(shapes, st.integers(0, 2), st.data())
def test_a_per_unit_shift_lands_on_the_unit_axis(shape, axis, data) -> None:  # type: ignore[no-untyped-def]
    units = shape[axis]
    site = Site("a", units, "conv", 0, shape=shape, axis=axis)
    masks = data.draw(hnp.arrays(bool, (3, units)))
    means = data.draw(hnp.arrays(np.float64, units, elements=st.floats(-5, 5)))
    iv = Interventions.mean_ablate({"a": site}, {"a": masks}, {"a": means})
    shift = np.broadcast_to(iv.shift_with_fill(site, shape), (3, 1, *shape))
    for m in range(3):
        for u in range(units):
            at = np.take(shift[m, 0], u, axis=axis)  # every element of unit u
            np.testing.assert_array_equal(at, means[u] if masks[m, u] else 0.0)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 5), st.integers(1, 3), st.integers(1, 3), st.data())
def test_a_channels_last_model_is_its_channels_first_twin(c, h, w, data) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from torch import nn

    from directionkit.adapters.torch import TorchAdapter

    if c in (h, w):
        h, w = c + 1, c + 2  # the axis of length C must be unique to be found by its length

    class Twin(nn.Module):
        def __init__(self, last: bool) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(2, c, 1)
            self.head = nn.Linear(c, 3)
            self.last = last

        def forward(self, x: Any) -> Any:
            maps = self.conv(x)
            if self.last:  # (B, H, W, C): the ReLU sees channels last
                a = torch.relu(maps.permute(0, 2, 3, 1))
                return self.head(a.mean(dim=(1, 2)))
            return self.head(torch.relu(maps).mean(dim=(2, 3)))

    x = np.random.default_rng(c * 10 + h).normal(size=(4, 2, h, w)).astype(np.float32)
    first = TorchAdapter(Twin(False), example_input=x)
    last = TorchAdapter(Twin(True), example_input=x)
    assert last.sites["relu()"].axis == 2 and first.sites["relu()"].axis == 0
    masks = data.draw(hnp.arrays(bool, (4, c)))
    iv = Interventions.zero_ablate(first.sites, {"relu()": masks})
    a = first.run(x, iv, record=["relu()"])
    b = last.run(x, iv, record=["relu()"])
    np.testing.assert_allclose(b.logits, a.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.activations["relu()"], a.activations["relu()"], rtol=1e-5,
                               atol=1e-6)  # fmt: skip
