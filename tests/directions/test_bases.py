"""Bases of directions: the unit basis, Haar-random rotations, bases the user gives."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from directionkit import directions
from directionkit.adapter import Site
from directionkit.errors import InvalidDataError, InvalidParameterError

SITE = Site("features.3", n_units=5, kind="conv", depth=1)


def _orthonormal(rows: np.ndarray) -> bool:
    return bool(np.abs(rows @ rows.T - np.eye(len(rows))).max() < 1e-12)


def test_the_unit_basis_is_the_identity_labelled_by_unit() -> None:
    basis = directions.units(SITE)
    np.testing.assert_array_equal(basis.values, np.eye(5))
    assert basis.dims == ("direction", "unit")
    assert basis["site"].values.tolist() == ["features.3"] * 5
    assert basis["unit_index"].values.tolist() == [0, 1, 2, 3, 4]
    assert basis.attrs == {"basis": "units", "basis_site": "features.3"}


def test_a_random_basis_is_orthonormal_and_fixed_by_its_seed() -> None:
    a = directions.random(SITE, k=3, seed=7)
    assert a.shape == (3, 5) and _orthonormal(a.values)
    np.testing.assert_array_equal(a.values, directions.random(SITE, k=3, seed=7).values)
    assert not np.allclose(a.values, directions.random(SITE, k=3, seed=8).values)
    # the first rows of the full rotation: k only truncates
    np.testing.assert_array_equal(a.values, directions.random(SITE, seed=7).values[:3])
    assert a.attrs == {"basis": "random", "basis_site": "features.3", "basis_seed": 7}


def test_a_random_basis_is_haar_distributed() -> None:
    """The first direction of a Haar rotation is uniform on the sphere: each entry has mean
    0 and its square is Beta(1/2, (n-1)/2).  QR without Mezzadri's sign fix fails this
    (LAPACK's Householder QR makes R's diagonal negative, so Q[0, 0] = -|g0|/|g|)."""
    n = 3
    site = Site("fc", n_units=n)
    first = np.array([directions.random(site, k=1, seed=s).values[0, 0] for s in range(600)])
    assert abs(first.mean()) < 4 * first.std() / np.sqrt(len(first))
    assert stats.kstest(first**2, stats.beta(0.5, (n - 1) / 2).cdf).pvalue > 1e-3
    unfixed = np.array(
        [np.linalg.qr(np.random.default_rng(s).standard_normal((n, n)))[0][0, 0]
         for s in range(600)]
    )  # fmt: skip
    assert abs(unfixed.mean()) > 10 * unfixed.std() / np.sqrt(len(unfixed))  # the check bites


def test_a_given_basis_must_be_orthonormal_unless_asked_to_make_it_so() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(3, 5))
    with pytest.raises(InvalidDataError, match=r"not orthonormal .* orthonormalise=True"):
        directions.from_array(SITE, rows)
    basis = directions.from_array(SITE, rows, orthonormalise=True)
    assert _orthonormal(basis.values)
    # Gram-Schmidt by hand, in order: the same rows
    expected = []
    for row in rows:
        for done in expected:
            row = row - (row @ done) * done
        expected.append(row / np.linalg.norm(row))
    np.testing.assert_allclose(basis.values, np.array(expected), atol=1e-12)
    assert basis.attrs["basis"] == "array" and basis.attrs["basis_orthonormalised"] is True
    kept = directions.from_array(SITE, basis.values)
    np.testing.assert_array_equal(kept.values, basis.values)
    assert kept.attrs["basis_orthonormalised"] is False


def test_bad_bases_are_refused_by_name() -> None:
    with pytest.raises(InvalidDataError, match=r"rows of shape \(k, 5\)"):
        directions.from_array(SITE, np.eye(4))
    with pytest.raises(InvalidDataError, match="at most 5 directions"):
        directions.from_array(SITE, np.ones((6, 5)), orthonormalise=True)
    with pytest.raises(InvalidDataError, match="NaN or Inf"):
        directions.from_array(SITE, [[np.nan, 0, 0, 0, 0]])
    with pytest.raises(InvalidDataError, match=r"row\(s\) \[2\] lie in the span"):
        directions.from_array(SITE, [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 1, 0, 0, 0]],
                              orthonormalise=True)  # fmt: skip
    with pytest.raises(InvalidParameterError, match="'k' parameter of random"):
        directions.random(SITE, k=6)
    with pytest.raises(InvalidParameterError, match="'site' parameter of units"):
        directions.units("features.3")  # type: ignore[arg-type]
