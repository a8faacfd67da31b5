"""Properties of the Spearman correlation's ranks and p-value against scipy."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import rankdata, spearmanr

from directionkit.metrics._correlation import _average_ranks, _rho_p

# small integers and infinities: many ties, and values that sort last / first
values = st.one_of(st.integers(-4, 4).map(float), st.sampled_from([np.inf, -np.inf]))
vectors = hnp.arrays(np.float64, st.integers(1, 40), elements=values)


@given(vectors)
def test_average_ranks_are_scipys_rankdata(x: np.ndarray) -> None:
    np.testing.assert_array_equal(_average_ranks(x), rankdata(x))


@given(st.integers(3, 40).flatmap(lambda n: st.tuples(
    hnp.arrays(np.float64, n, elements=st.integers(-5, 5).map(float)),
    hnp.arrays(np.float64, n, elements=st.floats(-1e3, 1e3)),
)))  # fmt: skip
def test_rho_and_p_value_are_scipys_spearmanr(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    rho, p, n = _rho_p(a, b)
    assert n == a.size
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # constant: no ranks to correlate
        assert np.isnan(rho) and np.isnan(p)
        return
    ref = spearmanr(a, b)
    np.testing.assert_allclose(rho, ref.statistic, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p, ref.pvalue, rtol=1e-9, atol=1e-12)
