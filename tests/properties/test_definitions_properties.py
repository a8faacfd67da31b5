"""Properties of top-k accuracy and of the streamed per-element statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from directionkit.adapter import RunOutput, Site
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import top_k_hits
from directionkit.experiments._statistics import element_statistics

scores = st.integers(2, 8).flatmap(
    lambda c: hnp.arrays(
        np.float64, st.tuples(st.integers(1, 12), st.just(c)),
        elements=st.integers(-3, 3).map(float),  # small integers: many ties
    )
)  # fmt: skip


@given(scores, st.data())
def test_top_k_hits_agree_with_a_stable_sort_and_grow_with_k(logits, data) -> None:  # type: ignore[no-untyped-def]
    n, c = logits.shape
    labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    order = np.argsort(-logits, axis=1, kind="stable")  # ties: smaller class index first
    previous = np.zeros(n, bool)
    for k in range(1, c + 1):
        hits = top_k_hits(logits, labels, k)
        np.testing.assert_array_equal(hits, (order[:, :k] == labels[:, None]).any(axis=1))
        assert np.all(hits >= previous)
        previous = hits
    np.testing.assert_array_equal(top_k_hits(logits, labels, 1), logits.argmax(1) == labels)
    assert previous.all()  # k = C: every label is in


class MapsAsInput:
    """A hand-built model whose only site is its input, a conv map ``(B, C, H, W)``."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        self._sites = {"maps": Site("maps", shape[0], "conv", 0, shape=shape)}

    @property
    def sites(self) -> Mapping[str, Site]:
        return self._sites

    def run(self, x: Any, interventions: Any = None, record: Sequence[str] = ()) -> RunOutput:
        x = np.asarray(x)
        return RunOutput(np.zeros((1, len(x), 2)), {n: x.mean(axis=(2, 3)) for n in record})

    def record_elements(self, x: Any, sites: Sequence[str]) -> dict[str, np.ndarray]:
        return {n: np.asarray(x) for n in sites}


maps = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 9), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
)


@given(maps, st.integers(1, 5))
def test_streamed_element_statistics_equal_numpy_over_any_batching(x, batch) -> None:  # type: ignore[no-untyped-def]
    model = MapsAsInput(x.shape[1:])
    data = Batches((x, np.zeros(len(x), int)), batch_size=batch)
    mean, std = element_statistics(model, data, ["maps"])
    scale = 1 + np.abs(x).max()
    np.testing.assert_allclose(mean["maps"], x.mean(axis=0), atol=1e-9 * scale)
    np.testing.assert_allclose(std["maps"], x.std(axis=(0, 2, 3)), atol=1e-6 * scale)
