"""Bases of directions, for any size: orthonormal, and a given basis keeps its spans."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from directionkit import directions
from directionkit.adapter import Site


@given(st.integers(1, 24), st.data(), st.integers(0, 2**32 - 1))
def test_random_bases_are_orthonormal(n: int, data: st.DataObject, seed: int) -> None:
    k = data.draw(st.integers(1, n))
    rows = directions.random(Site("s", n_units=n), k=k, seed=seed).values
    np.testing.assert_allclose(rows @ rows.T, np.eye(k), atol=1e-10)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(4, 8)),
           elements=st.floats(-10, 10, allow_nan=False)),
)  # fmt: skip
def test_orthonormalising_keeps_every_leading_span(rows: np.ndarray) -> None:
    k, n = rows.shape
    if np.linalg.matrix_rank(rows, tol=1e-6 * max(1.0, np.abs(rows).max())) < k:
        return  # dependent rows are refused (tested by example in tests/directions)
    if np.linalg.cond(rows) > 1e6:
        return  # nearly dependent: the spans are ill-conditioned, not a property to test
    basis = directions.from_array(Site("s", n_units=n), rows, orthonormalise=True).values
    np.testing.assert_allclose(basis @ basis.T, np.eye(k), atol=1e-9)
    for i in range(1, k + 1):  # the first i rows span what the first i given rows span
        projector = basis[:i].T @ basis[:i]
        np.testing.assert_allclose(rows[:i] @ projector, rows[:i], atol=1e-7 * np.abs(rows).max())
