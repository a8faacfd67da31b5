"""Properties of ``corrupt_labels``: a seeded shuffle of a fraction of the labels."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from directionkit.reference_models.datasets import corrupt_labels

LABELS = arrays(np.int64, st.integers(1, 200), elements=st.integers(0, 9))
FRACTIONS = st.floats(0.0, 1.0, allow_nan=False)
SEEDS = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=50, deadline=None)


@PROPERTY
@given(LABELS, SEEDS)
def test_fraction_0_is_an_identity_copy(y, seed) -> None:  # type: ignore[no-untyped-def]
    new, mask = corrupt_labels(y, 0.0, seed)
    np.testing.assert_array_equal(new, y)
    assert new is not y and not np.shares_memory(new, y)
    assert mask.dtype == bool and mask.shape == y.shape and not mask.any()


@PROPERTY
@given(LABELS, FRACTIONS, SEEDS)
def test_histogram_is_preserved(y, fraction, seed) -> None:  # type: ignore[no-untyped-def]
    new, _ = corrupt_labels(y, fraction, seed)
    assert new.dtype == np.int64 and new.shape == y.shape
    np.testing.assert_array_equal(np.bincount(new, minlength=10), np.bincount(y, minlength=10))


@PROPERTY
@given(LABELS, FRACTIONS, SEEDS)
def test_exactly_round_fraction_n_are_eligible_and_only_they_change(y, fraction, seed) -> None:  # type: ignore[no-untyped-def]
    new, mask = corrupt_labels(y, fraction, seed)
    assert int(mask.sum()) == round(fraction * len(y))
    np.testing.assert_array_equal(new[~mask], y[~mask])
    # the eligible labels are a permutation of themselves
    np.testing.assert_array_equal(np.sort(new[mask]), np.sort(y[mask]))


@PROPERTY
@given(LABELS, FRACTIONS, SEEDS)
def test_same_seed_same_result_and_input_not_mutated(y, fraction, seed) -> None:  # type: ignore[no-untyped-def]
    before = y.copy()
    first = corrupt_labels(y, fraction, seed)
    second = corrupt_labels(y, fraction, seed)
    np.testing.assert_array_equal(y, before)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


@PROPERTY
@given(st.integers(0, 2**32 - 2))
def test_different_seeds_usually_differ(seed) -> None:  # type: ignore[no-untyped-def]
    y = np.arange(1000) % 10
    _, mask_a = corrupt_labels(y, 0.5, seed)
    _, mask_b = corrupt_labels(y, 0.5, seed + 1)
    # two independent 500-of-1000 choices coincide with probability 1 / C(1000, 500)
    assert not np.array_equal(mask_a, mask_b)


@PROPERTY
@given(st.integers(20, 300), st.integers(2, 10), SEEDS)
def test_fraction_1_changes_many_labels(n, n_classes, seed) -> None:  # type: ignore[no-untyped-def]
    # balanced labels, so a shuffle keeps about 1/n_classes of them in place; one shuffle
    # of few examples may keep many by chance, so average over 40 seeds (the mean's sd is
    # below 0.02 here, and the margin 0.15)
    y = np.arange(n) % n_classes
    changed = []
    for offset in range(40):
        new, mask = corrupt_labels(y, 1.0, (seed + offset) % 2**32)
        assert mask.all()
        changed.append((new != y).mean())
    assert np.mean(changed) >= (1 - 1 / n_classes) - 0.15
