"""Streaming accumulators equal the one-shot computations for any batching."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from directionkit import class_mean, class_selectivity, mutual_information
from directionkit.metrics import ClassConditionalSums, JointHistogram, UnitMoments, bin_edges
from tests.properties.strategies import labelled_activity


@st.composite
def split(draw: st.DrawFn, case_strategy: st.SearchStrategy) -> tuple:  # type: ignore[type-arg]
    acts, y, c = draw(case_strategy)
    cuts = sorted(draw(st.lists(st.integers(0, len(y)), max_size=6)))
    return acts, y, c, [0, *cuts, len(y)]


@given(
    split(labelled_activity(non_negative=False)),
    st.integers(2, 10),
    st.sampled_from(["equal-width", "equal-frequency"]),
)
def test_streamed_equals_one_shot_for_random_batch_splits(case, n_bins, binning) -> None:  # type: ignore[no-untyped-def]
    acts, y, c, bounds = case
    sums, moments = ClassConditionalSums(acts.shape[1], c), UnitMoments(acts.shape[1])
    hist = JointHistogram(bin_edges(acts, n_bins, binning), c)
    for lo, hi in itertools.pairwise(bounds):
        sums.update(acts[lo:hi], y[lo:hi])
        moments.update(acts[lo:hi])
        hist.update(acts[lo:hi], y[lo:hi])
    np.testing.assert_allclose(
        sums.class_mean(), class_mean(acts, y, n_classes=c).values, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(
        sums.selectivity(), class_selectivity(acts, y, n_classes=c).values, rtol=1e-7, atol=1e-9
    )
    np.testing.assert_allclose(moments.mean, acts.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(moments.variance(), acts.var(0), rtol=1e-7, atol=1e-7)
    expected = mutual_information(acts, y, n_classes=c, n_bins=n_bins, binning=binning).values
    np.testing.assert_allclose(hist.mutual_information(), expected, atol=1e-12)


@given(split(labelled_activity()))
def test_merging_partial_accumulators_equals_one_accumulator(case) -> None:  # type: ignore[no-untyped-def]
    acts, y, _, bounds = case
    parts = []
    for lo, hi in itertools.pairwise(bounds):
        m = UnitMoments(acts.shape[1])
        m.update(acts[lo:hi])
        parts.append(m)
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert merged.count == len(y)
    np.testing.assert_allclose(merged.mean, acts.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(merged.variance(), acts.var(0), rtol=1e-7, atol=1e-7)


@given(split(labelled_activity(non_negative=False)))
def test_streamed_covariance_equals_numpys_for_random_batch_splits(case) -> None:  # type: ignore[no-untyped-def]
    from directionkit.metrics import UnitCovariance

    acts, _, _, bounds = case
    acc = UnitCovariance(acts.shape[1])
    for lo, hi in itertools.pairwise(bounds):
        acc.update(acts[lo:hi])
    expected = np.cov(np.asarray(acts, dtype=np.float64).T, ddof=0).reshape(acc.cross.shape)
    scale = max(1.0, float(np.abs(acts).max()) ** 2)
    np.testing.assert_allclose(acc.covariance(), expected, atol=1e-9 * scale)
