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


def test_the_t_tail_and_the_incomplete_beta_agree_with_scipy() -> None:
    from scipy.special import betainc, stdtr

    from directionkit.metrics._correlation import regularized_beta, t_two_sided

    for df in (1, 2, 3, 5, 10, 30, 100, 1000, 10_000, 100_000):
        for t in (0.0, 1e-3, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 50.0, 200.0):
            want = float(2 * stdtr(df, -t))
            assert t_two_sided(t, df) == pytest.approx(want, rel=1e-8, abs=1e-300), (df, t)
            assert t_two_sided(-t, df) == t_two_sided(t, df)
    for a, b in ((0.5, 0.5), (2.0, 3.0), (50.0, 0.5), (0.5, 50.0), (1e4, 0.5)):
        for x in (0.0, 1e-6, 0.01, 0.3, 0.5, 0.7, 0.99, 1.0):
            assert regularized_beta(a, b, x) == pytest.approx(
                float(betainc(a, b, x)), rel=1e-9, abs=1e-15
            ), (a, b, x)


def test_show_of_an_analysis_imports_no_scipy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    import directionkit as dk
    from directionkit.testing import NumpyMLPAdapter

    net = NumpyMLPAdapter.random(n_in=6, hidden=(16, 12), n_classes=4, seed=0)
    x = np.random.default_rng(0).normal(size=(200, 6))
    y = net.predict(x)
    y[:4] = [0, 1, 2, 3]  # every class present
    result = dk.analyze(net, (x, y), metrics=["statistics", "importance"], progress=False)
    path = result.save(tmp_path / "a.zarr")
    code = (
        "import sys\nfrom directionkit.cli import main\n"
        f"assert main(['show', {str(path)!r}]) == 0\n"
        "print(sorted(m for m, module in sys.modules.items()\n"
        "             if module is not None and m.split('.')[0] in ('scipy', 'dask')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Spearman(selectivity, importance_loss) [all]" in done.stdout  # p-values shown
    assert done.stdout.strip().splitlines()[-1] == "[]"
