"""Interventions along any basis, any subset of its directions, at any site: the adapters
against a brute-force forward pass that edits the activity by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directionkit import directions
from directionkit.adapter import Interventions
from directionkit.testing import NumpyMLPAdapter

NET = NumpyMLPAdapter.random(n_in=4, hidden=(6, 5, 3), n_classes=3, seed=0)
X = np.random.default_rng(0).normal(size=(7, 4))


@st.composite
def rotated_ablation(draw: st.DrawFn, sites: dict[str, int]) -> tuple[str, np.ndarray, np.ndarray]:
    """A site, a random orthonormal basis of k of its directions, and masks (M, k)."""
    name = draw(st.sampled_from(sorted(sites)))
    n = sites[name]
    k = draw(st.integers(1, n))
    seed = draw(st.integers(0, 2**32 - 1))
    gaussian = np.random.default_rng(seed).standard_normal((n, n))
    q, _ = np.linalg.qr(gaussian)
    m = draw(st.integers(1, 4))
    masks = np.array(draw(st.lists(st.lists(st.booleans(), min_size=k, max_size=k),
                                   min_size=m, max_size=m)))  # fmt: skip
    return name, q.T[:k], masks


@settings(max_examples=60, deadline=None)
@given(rotated_ablation({n: s.n_units for n, s in NET.sites.items()}))
def test_numpy_adapter_along_any_basis_equals_removing_the_span_by_hand(case) -> None:  # type: ignore[no-untyped-def]
    name, basis, masks = case
    iv = Interventions.zero_ablate({name: basis.shape[0]}, {name: masks}).along({name: basis})
    got = NET.run(X, iv).logits
    layer = int(name.removeprefix("hidden"))
    for row, mask in enumerate(masks):
        rows = basis[mask]
        h = X
        for i, (w, b) in enumerate(zip(NET.weights, NET.biases, strict=True)):
            h = h @ w + b
            if i < len(NET.weights) - 1:
                h = np.maximum(h, 0)
                if i == layer:
                    h = h - (h @ rows.T) @ rows
        np.testing.assert_allclose(got[row], h, rtol=1e-10, atol=1e-10)


@settings(max_examples=60, deadline=None)
@given(rotated_ablation({n: s.n_units for n, s in NET.sites.items()}))
def test_the_along_adapter_records_projections_and_ablates_them(case) -> None:  # type: ignore[no-untyped-def]
    name, basis, masks = case
    rotated = directions.along(NET, {name: basis})
    recorded = rotated.run(X, record=[name]).activations[name]
    units = NET.run(X, record=[name]).activations[name]
    np.testing.assert_allclose(recorded, units @ basis.T, atol=1e-12)
    iv = Interventions.zero_ablate(rotated.sites, {name: masks})
    direct = Interventions.zero_ablate({name: basis.shape[0]}, {name: masks}).along({name: basis})
    np.testing.assert_array_equal(rotated.run(X, iv).logits, NET.run(X, direct).logits)


DATA = np.random.default_rng(3).normal(size=(60, 4))
LABELS = NET.predict(DATA)
LABELS[::5] = 0  # some wrong


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(1, 6), min_size=3, max_size=3),  # k per site (capped at its width)
    st.integers(0, 2**32 - 1),
    st.sampled_from(["all", "hidden1", "last:2"]),
    st.sampled_from(["zero", "channel-mean"]),
)
def test_the_incremental_path_along_any_basis_equals_the_general_one(
    ks: list[int], seed: int, scope: str, ablate_to: str
) -> None:
    # the chain folds a clamped direction's projector into the next layer's weights
    from directionkit.experiments import ablation_curve, unit_importance

    bases = {
        name: directions.random(site, k=min(k, site.n_units), seed=seed + i)
        for i, ((name, site), k) in enumerate(zip(NET.sites.items(), ks, strict=True))
    }
    rotated = directions.along(NET, bases)
    curves = [
        ablation_curve(rotated, (DATA, LABELS), scope, orderings=2, fractions=5, seed=seed,
                       ablate_to=ablate_to, train_data=(DATA, LABELS), method=method)
        for method in ("incremental", "general")
    ]  # fmt: skip
    np.testing.assert_array_equal(curves[0]["ablation_accuracy"], curves[1]["ablation_accuracy"])
    scores = [
        unit_importance(rotated, (DATA, LABELS), method=method)
        for method in ("incremental", "general")
    ]
    for name in ("importance_loss", "importance_accuracy"):
        np.testing.assert_allclose(scores[0][name], scores[1][name], atol=1e-12)


torch = pytest.importorskip("torch")


def _torch_net():  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 5, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(5 * 4 * 4, 3),
    ).eval()  # fmt: skip


TORCH_NET = _torch_net()
IMAGES = np.random.default_rng(1).normal(size=(3, 2, 4, 4)).astype(np.float32)


@settings(max_examples=25, deadline=None)
@given(rotated_ablation({"1": 4, "3": 5}))
def test_torch_maps_along_any_basis_equal_a_hook_removing_the_span(case) -> None:  # type: ignore[no-untyped-def]
    from directionkit.adapters.torch import TorchAdapter

    name, basis, masks = case
    adapter = TorchAdapter(TORCH_NET, sites=["1", "3"], example_input=IMAGES[:1])
    iv = Interventions.zero_ablate({name: basis.shape[0]}, {name: masks}).along({name: basis})
    got = adapter.run(IMAGES, iv).logits
    module = TORCH_NET[int(name)]
    for row, mask in enumerate(masks):
        rows = torch.from_numpy(basis[mask].astype(np.float32))

        def remove(m, i, o, r=rows):  # type: ignore[no-untyped-def]
            channels_last = o.movedim(1, -1)  # the span is removed at every position
            return (channels_last - (channels_last @ r.T) @ r).movedim(-1, 1)

        handle = module.register_forward_hook(remove)
        try:
            with torch.no_grad():
                expected = TORCH_NET(torch.from_numpy(IMAGES)).numpy()
        finally:
            handle.remove()
        np.testing.assert_allclose(got[row], expected, rtol=1e-4, atol=1e-5)
