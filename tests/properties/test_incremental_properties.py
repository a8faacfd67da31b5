"""The incremental cumulative-ablation path equals the general one on any plain ReLU MLP.

The incremental path updates the first scoped site's consumer along each ordering and
drops the rows of the consumer's outputs once the ordering has clamped them (they are
never read again); both shortcuts must leave every curve point exactly as the general
path's full forward passes compute it, for any depth, width, scope and fill.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from directionkit.experiments import _incremental, ablation_curve
from directionkit.testing import NumpyMLPAdapter


@st.composite
def problems(draw: st.DrawFn) -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray, str, bool, int]:
    hidden = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=4)))
    n_classes = draw(st.integers(2, 4))
    seed = draw(st.integers(0, 2**16))
    net = NumpyMLPAdapter.random(n_in=3, hidden=hidden, n_classes=n_classes, seed=seed)
    x = np.random.default_rng(seed + 1).normal(size=(draw(st.integers(10, 40)), 3))
    y = np.random.default_rng(seed + 2).integers(0, n_classes, len(x))
    scopes = ["all", *(f"hidden{i}" for i in range(len(hidden))),
              *(f"last:{k}" for k in range(1, len(hidden) + 1))]  # fmt: skip
    return net, x, y, draw(st.sampled_from(scopes)), draw(st.booleans()), seed


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(1, 3), st.integers(2, 7), st.sampled_from([1, 3, 8, 1024]))
def test_incremental_equals_general_on_any_mlp(problem, orderings, fractions, block) -> None:  # type: ignore[no-untyped-def]
    """``block``: examples per block (the library's 1,024 is one block per test batch; the
    small ones cut each batch into several blocks and worker tasks)."""
    saved, _incremental.BLOCK = _incremental.BLOCK, block
    try:
        check_incremental_equals_general(problem, orderings, fractions)
    finally:
        _incremental.BLOCK = saved


def check_incremental_equals_general(problem, orderings, fractions) -> None:  # type: ignore[no-untyped-def]
    net, x, y, scope, mean, seed = problem
    means = (
        {s: np.random.default_rng(seed + 3).uniform(0, 1, net.sites[s].n_units) for s in net.sites}
        if mean
        else None
    )
    kwargs = dict(orderings=orderings, fractions=fractions, seed=seed, batch_size=17,
                  ablate_to="mean" if mean else "zero", means=means)  # fmt: skip
    fast = ablation_curve(net, (x, y), scope, method="incremental", **kwargs)
    slow = ablation_curve(net, (x, y), scope, method="general", **kwargs)
    np.testing.assert_array_equal(fast["ablation_order"].values, slow["ablation_order"].values)
    # float64 throughout: identical, but for a near-tie of two logits flipping one example
    gap = np.abs(fast["ablation_accuracy"].values - slow["ablation_accuracy"].values) * len(y)
    assert np.count_nonzero(gap > 1e-9) <= 1 and gap.max() <= 1 + 1e-9, gap
