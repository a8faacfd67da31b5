"""Streaming accumulators: equal to the one-shot functions, mergeable, validated."""

from __future__ import annotations

import numpy as np
import pytest

from directionkit import class_mean, class_selectivity, mutual_information
from directionkit.errors import DirectionKitError
from directionkit.metrics import (
    ClassConditionalSums,
    JointHistogram,
    UnitMoments,
    UnitRange,
    bin_edges,
)


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return np.maximum(rng.normal(size=(250, 6)), 0) * 3 + 1e3, rng.integers(0, 4, 250)


def test_streamed_sums_moments_and_histograms_equal_one_shot(data) -> None:  # type: ignore[no-untyped-def]
    acts, y = data
    sums, moments, span = ClassConditionalSums(6, 4), UnitMoments(6), UnitRange(6)
    for start in range(0, 250, 37):
        sums.update(acts[start : start + 37], y[start : start + 37])
        moments.update(acts[start : start + 37])
        span.update(acts[start : start + 37])
    np.testing.assert_allclose(sums.class_mean(), class_mean(acts, y).values, rtol=1e-12)
    np.testing.assert_allclose(sums.selectivity(), class_selectivity(acts, y).values, rtol=1e-9)
    # large offset: a naive sum-of-squares variance would lose digits here
    np.testing.assert_allclose(moments.mean, acts.mean(0), rtol=1e-12)
    np.testing.assert_allclose(moments.variance(), acts.var(0), rtol=1e-9)
    np.testing.assert_allclose(moments.std(ddof=1), acts.std(0, ddof=1), rtol=1e-9)
    np.testing.assert_allclose(span.equal_width_edges(8), bin_edges(acts, 8), rtol=1e-12)
    hist = JointHistogram(span.equal_width_edges(8), 4)
    for start in range(0, 250, 11):
        hist.update(acts[start : start + 11], y[start : start + 11])
    np.testing.assert_allclose(
        hist.mutual_information(), mutual_information(acts, y, n_bins=8).values, atol=1e-12
    )


def test_merge_equals_one_accumulator(data) -> None:  # type: ignore[no-untyped-def]
    acts, y = data
    parts = [(acts[:100], y[:100]), (acts[100:], y[100:])]
    whole = UnitMoments(6)
    whole.update(acts)
    a, b = UnitMoments(6), UnitMoments(6)
    a.update(parts[0][0])
    b.update(parts[1][0])
    merged = a.merge(b)
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.variance(), whole.variance(), rtol=1e-10)
    assert merged.count == 250 and a.count == 100  # inputs untouched
    s1, s2 = ClassConditionalSums(6, 4), ClassConditionalSums(6, 4)
    s1.update(*parts[0])
    s2.update(*parts[1])
    np.testing.assert_allclose(s1.merge(s2).class_mean(), class_mean(acts, y).values, rtol=1e-12)
    edges = bin_edges(acts, 5)
    h1, h2, h = JointHistogram(edges, 4), JointHistogram(edges, 4), JointHistogram(edges, 4)
    h1.update(*parts[0])
    h2.update(*parts[1])
    h.update(acts, y)
    np.testing.assert_array_equal(h1.merge(h2).counts, h.counts)
    r1, r2 = UnitRange(6), UnitRange(6)
    r1.update(parts[0][0])
    r2.update(parts[1][0])
    np.testing.assert_array_equal(r1.merge(r2).max, acts.max(0))


def test_bad_updates_and_merges_are_refused() -> None:
    sums = ClassConditionalSums(3, 2)
    with pytest.raises(DirectionKitError, match=r"shape \(B, 3\)"):
        sums.update(np.ones((4, 2)), [0, 1, 0, 1])
    with pytest.raises(DirectionKitError, match="NaN or Inf"):
        sums.update(np.full((1, 3), np.nan), [0])
    with pytest.raises(
        DirectionKitError,
        match=r"'labels' of ClassConditionalSums.update must lie in \[0, 2\) \(n_classes=2\)",
    ):
        sums.update(np.ones((1, 3)), [2])
    with pytest.raises(DirectionKitError, match="one entry per example: 2 examples but 1 labels"):
        sums.update(np.ones((2, 3)), [1])
    with pytest.raises(DirectionKitError, match=r"classes \[0, 1\] have none"):
        sums.class_mean()
    with pytest.raises(DirectionKitError, match="Cannot merge"):
        UnitMoments(3).merge(UnitMoments(4))
    with pytest.raises(DirectionKitError, match="different edges"):
        JointHistogram([[0.0]], 2).merge(JointHistogram([[1.0]], 2))
    with pytest.raises(DirectionKitError, match="non-decreasing"):
        JointHistogram([[1.0, 0.0]], 2)
    with pytest.raises(DirectionKitError, match="no range yet"):
        UnitRange(2).equal_width_edges(4)
    with pytest.raises(DirectionKitError, match="ddof=1 needs more"):
        UnitMoments(1).variance(ddof=1)
