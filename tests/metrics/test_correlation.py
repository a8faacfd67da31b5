"""Spearman overall and per site against scipy.stats.spearmanr."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr

from directionkit import spearman
from directionkit.errors import DirectionKitError, InvalidParameterError


def measures(seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(seed)
    site = ("unit", ["fc1"] * 30 + ["fc2"] * 20)
    a = rng.normal(size=50).round(1)  # ties
    b = a * 0.5 + rng.normal(size=50)
    return (
        xr.DataArray(a, dims="unit", coords={"site": site}),
        xr.DataArray(b, dims="unit", coords={"site": site}),
    )


def test_overall_and_per_site_equal_scipy() -> None:
    a, b = measures()
    result = spearman(a, b)
    assert list(result["scope"].values) == ["all", "fc1", "fc2"]
    for scope, part in (("all", slice(None)), ("fc1", slice(0, 30)), ("fc2", slice(30, 50))):
        ref = spearmanr(a.values[part], b.values[part])
        assert float(result["rho"].sel(scope=scope)) == pytest.approx(ref.statistic, abs=1e-12)
        assert float(result["p_value"].sel(scope=scope)) == pytest.approx(ref.pvalue, rel=1e-9)
    assert result["n"].values.tolist() == [50, 30, 20]


def test_nan_pairs_are_dropped_and_degenerate_groups_give_nan() -> None:
    a, b = measures(1)
    a[3] = np.nan
    result = spearman(a, b, by=None)
    keep = np.isfinite(a.values)
    assert float(result["rho"][0]) == pytest.approx(
        spearmanr(a.values[keep], b.values[keep]).statistic
    )
    assert int(result["n"][0]) == 49 and list(result["scope"].values) == ["all"]
    const = spearman(np.ones(5), np.arange(5.0), by=None)
    assert np.isnan(const["rho"][0]) and np.isnan(const["p_value"][0])
    assert np.isnan(spearman([1.0, 2.0], [2.0, 1.0], by=None)["rho"][0])


def test_bad_input() -> None:
    a, b = measures()
    with pytest.raises(InvalidParameterError, match=r"'by' parameter of spearman.*\['site'\]"):
        spearman(a, b, by="layer")
    with pytest.raises(InvalidParameterError, match="'by' parameter of spearman"):
        spearman(np.arange(5.0), np.arange(5.0), by="layer")
    with pytest.raises(InvalidParameterError, match="with dims"):
        spearman(a.assign_coords(run="x"), b, by="run")
    with pytest.raises(DirectionKitError, match="same units"):
        spearman(a, b[:10])
    with pytest.raises(DirectionKitError, match="1-d along 'unit'"):
        spearman(xr.DataArray(np.ones((2, 2)), dims=("unit", "x")), a)


def test_small_or_constant_groups_give_nan_without_warnings_and_numpy_input_works() -> None:
    site = ("unit", ["fc1"] * 4 + ["fc2"] * 2 + ["fc3"] * 4)
    a = xr.DataArray([1.0, 2, 3, 4, 5, 6, 7, 7, 7, 7], dims="unit", coords={"site": site})
    b = xr.DataArray([2.0, 1, 4, 3, 6, 5, 1, 2, 3, 4], dims="unit", coords={"site": site})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = spearman(a, b)
    assert list(result["scope"].values) == ["all", "fc1", "fc2", "fc3"]
    assert result["n"].values.tolist() == [10, 4, 2, 4]
    assert float(result["rho"].sel(scope="fc1")) == pytest.approx(
        spearmanr([1, 2, 3, 4], [2, 1, 4, 3]).statistic
    )
    assert np.isnan(result["rho"].sel(scope=["fc2", "fc3"])).all()
    assert np.isnan(result["p_value"].sel(scope=["fc2", "fc3"])).all()
    plain = spearman(a.values, b.values)  # no 'site' coord: the default gives "all" only
    assert list(plain["scope"].values) == ["all"]
    ref = spearmanr(a.values, b.values)
    assert float(plain["rho"][0]) == pytest.approx(ref.statistic)
    assert float(plain["p_value"][0]) == pytest.approx(ref.pvalue)


def test_infinite_values_are_ranked_like_scipy() -> None:
    a = np.array([1.0, np.inf, 3.0, -np.inf, 2.0, 5.0])
    b = np.array([2.0, 6.0, 1.0, 0.0, 4.0, 3.0])
    ref = spearmanr(a, b)
    result = spearman(a, b, by=None)
    assert float(result["rho"][0]) == pytest.approx(ref.statistic)
    assert float(result["p_value"][0]) == pytest.approx(ref.pvalue)
