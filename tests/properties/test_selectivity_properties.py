"""Properties of the selectivity index (Morcos et al., eq. 1)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from directionkit import class_selectivity
from tests.properties.strategies import labelled_activity


@given(labelled_activity())
def test_selectivity_of_non_negative_activity_lies_in_0_1(case) -> None:  # type: ignore[no-untyped-def]
    acts, y, c = case
    sel = class_selectivity(acts, y, n_classes=c).values
    assert np.all((sel >= 0) & (sel <= 1 + 1e-12)) and np.all(np.isfinite(sel))


@given(labelled_activity(), st.floats(1e-3, 1e3), st.randoms(use_true_random=False))
def test_selectivity_is_invariant_to_rescaling_and_to_permuting_examples(case, factor, rnd) -> None:  # type: ignore[no-untyped-def]
    acts, y, c = case
    base = class_selectivity(acts, y, n_classes=c).values
    np.testing.assert_allclose(
        class_selectivity(acts * factor, y, n_classes=c).values, base, atol=1e-9
    )
    order = list(range(len(y)))
    rnd.shuffle(order)
    np.testing.assert_allclose(
        class_selectivity(acts[order], y[order], n_classes=c).values, base, atol=1e-12
    )


@given(labelled_activity(max_units=1), st.floats(0.1, 50.0))
def test_a_unit_active_for_one_class_only_has_selectivity_1(case, level) -> None:  # type: ignore[no-untyped-def]
    _, y, c = case
    acts = np.where(y == y[0], level, 0.0)[:, None]
    np.testing.assert_allclose(class_selectivity(acts, y, n_classes=c).values, [1.0])


@given(labelled_activity(max_units=1), st.floats(0.0, 50.0))
def test_a_unit_with_equal_class_means_has_selectivity_0(case, level) -> None:  # type: ignore[no-untyped-def]
    _, y, c = case
    acts = np.full((len(y), 1), level)
    np.testing.assert_allclose(class_selectivity(acts, y, n_classes=c).values, [0.0], atol=1e-12)


@given(labelled_activity(non_negative=False), st.floats(-50.0, 50.0))
def test_shifted_negative_units_stay_in_0_1_and_ignore_constant_offsets(case, offset) -> None:  # type: ignore[no-untyped-def]
    acts, y, c = case
    acts = acts - 200.0  # every unit negative: the shift rule applies to all
    sel = class_selectivity(acts, y, n_classes=c).values
    assert np.all((sel >= 0) & (sel <= 1 + 1e-12))
    # the shift subtracts numbers near 200, so a unit whose class means differ by a tiny
    # spread keeps only ~1e-16 * 250 / spread of relative precision: the tolerance
    # follows that conditioning (hypothesis found a spread of 1e-8)
    means = np.stack([acts[y == k].mean(axis=0) for k in range(c) if np.any(y == k)])
    spread = means.max(axis=0) - means.min(axis=0)
    lost = 1e3 * np.finfo(float).eps * 250 / np.maximum(spread, 1e-300)
    tol = 1e-8 + np.where(spread > 0, lost, 0)
    shifted = class_selectivity(acts + offset, y, n_classes=c).values
    assert np.all(np.abs(shifted - sel) <= tol)
