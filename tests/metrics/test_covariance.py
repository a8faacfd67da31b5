"""UnitCovariance against numpy's covariance and scikit-learn's PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.metrics import UnitCovariance


def _activity(seed: int = 0, n: int = 300, units: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(units, units)) * np.linspace(3.0, 0.2, units)[:, None]
    return rng.normal(size=(n, units)) @ mixing + rng.normal(size=units)


@pytest.mark.parametrize("ddof", [0, 1])
def test_covariance_equals_numpys_for_any_batching(ddof: int) -> None:
    acts = _activity()
    acc = UnitCovariance(acts.shape[1])
    for chunk in np.array_split(acts, [1, 2, 50, 51, 199]):
        acc.update(chunk)
    np.testing.assert_allclose(acc.covariance(ddof), np.cov(acts.T, ddof=ddof), atol=1e-10)
    np.testing.assert_allclose(acc.mean, acts.mean(axis=0), atol=1e-12)
    assert acc.count == len(acts)


def test_merge_equals_one_pass() -> None:
    acts = _activity(1)
    a, b, whole = UnitCovariance(6), UnitCovariance(6), UnitCovariance(6)
    a.update(acts[:120])
    b.update(acts[120:])
    whole.update(acts)
    merged = a.merge(b)
    np.testing.assert_allclose(merged.cross, whole.cross, atol=1e-9)
    assert a.count == 120  # merge leaves its operands as they were


def test_principal_components_are_scikit_learns_up_to_sign() -> None:
    acts = _activity(2)
    acc = UnitCovariance(acts.shape[1])
    acc.update(acts)
    ours = acc.principal_components(4)
    theirs = PCA(n_components=4).fit(acts)
    for mine, reference in zip(ours, theirs.components_, strict=True):
        assert abs(float(mine @ reference)) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(ours @ ours.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(
        acc.explained_variance(4) * len(acts) / (len(acts) - 1),
        theirs.explained_variance_,
        rtol=1e-9,
    )


def test_the_sign_of_each_component_is_fixed_by_its_largest_entry() -> None:
    acts = _activity(3)
    acc = UnitCovariance(6)
    acc.update(acts)
    flipped = UnitCovariance(6)
    flipped.update(-acts)  # the same covariance: the same basis, signs included
    np.testing.assert_array_equal(acc.principal_components(6), flipped.principal_components(6))
    rows = acc.principal_components(6)
    assert np.all(rows[np.arange(6), np.argmax(np.abs(rows), axis=1)] > 0)


def test_bad_input_is_refused_by_name() -> None:
    acc = UnitCovariance(3)
    with pytest.raises(InvalidDataError, match=r"shape \(B, 3\)"):
        acc.update(np.zeros((4, 2)))
    with pytest.raises(InvalidDataError, match="NaN or Inf"):
        acc.update([[np.nan, 0.0, 0.0]])
    with pytest.raises(InvalidDataError, match="has 0 samples"):
        acc.covariance()
    acc.update(np.eye(3))
    with pytest.raises(InvalidDataError, match="k=4 exceeds the 3 units"):
        acc.principal_components(4)
    with pytest.raises(InvalidParameterError, match="'k' parameter"):
        acc.principal_components(0)
    with pytest.raises(InvalidParameterError, match="Cannot merge"):
        acc.merge(UnitCovariance(4))
