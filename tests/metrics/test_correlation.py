"""Spearman overall and per site against scipy.stats.spearmanr."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr

from directionkit import spearman
from directionkit.errors import DirectionKitError


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
    with pytest.raises(DirectionKitError, match="'by' parameter of spearman"):
        spearman(a, b, by="layer")
    with pytest.raises(DirectionKitError, match="same units"):
        spearman(a, b[:10])
    with pytest.raises(DirectionKitError, match="1-d along 'unit'"):
        spearman(xr.DataArray(np.ones((2, 2)), dims=("unit", "x")), a)
