"""Properties of the mutual information."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from directionkit import mutual_information
from tests.properties.strategies import labelled_activity

BINNING = st.sampled_from(["equal-width", "equal-frequency"])


@given(labelled_activity(non_negative=False), st.integers(2, 12), BINNING)
def test_mi_lies_between_0_and_log2_of_the_number_of_classes(case, n_bins, binning) -> None:  # type: ignore[no-untyped-def]
    acts, y, c = case
    mi = mutual_information(acts, y, n_classes=c, n_bins=n_bins, binning=binning).values
    assert np.all(mi >= 0) and np.all(mi <= np.log2(c) + 1e-12)


@given(labelled_activity(max_units=1), st.floats(-10, 10), st.integers(2, 12), BINNING)
def test_mi_of_a_constant_unit_is_0(case, level, n_bins, binning) -> None:  # type: ignore[no-untyped-def]
    _, y, c = case
    acts = np.full((len(y), 1), level)
    assert mutual_information(acts, y, n_classes=c, n_bins=n_bins, binning=binning).values[0] == 0


@given(
    labelled_activity(non_negative=False),
    st.integers(2, 12),
    st.sampled_from(["cube", "exp", "affine"]),
)
def test_equal_frequency_mi_is_invariant_to_strictly_increasing_transforms(
    case, n_bins, kind
) -> None:  # type: ignore[no-untyped-def]
    acts, y, c = case
    acts = np.round(acts)  # integer-valued: transforms keep ties exactly tied
    transform = {
        "cube": lambda a: a**3 + a,
        "exp": lambda a: np.exp(a / 50.0),
        "affine": lambda a: 3.0 * a + 7.0,
    }[kind]
    base = mutual_information(acts, y, n_classes=c, n_bins=n_bins, binning="equal-frequency")
    moved = mutual_information(
        transform(acts), y, n_classes=c, n_bins=n_bins, binning="equal-frequency"
    )
    np.testing.assert_allclose(moved.values, base.values, atol=1e-12)
