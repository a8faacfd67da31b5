"""The normalised ablation AUC against a hand-computed trapezoid."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from directionkit import ablation_auc
from directionkit.errors import DirectionKitError, InvalidDataError, InvalidParameterError


def curve(values, fractions, dims=("fraction",)) -> xr.DataArray:  # type: ignore[no-untyped-def]
    return xr.DataArray(values, dims=dims, coords={"fraction": fractions})


def test_auc_equals_a_hand_computed_trapezoid() -> None:
    # normalised: 1, .5, .125 -> 0.5 * (1 + .5) / 2 + 0.5 * (.5 + .125) / 2
    assert float(ablation_auc(curve([0.8, 0.4, 0.1], [0, 0.5, 1]))) == pytest.approx(0.53125)
    # uneven spacing and unsorted input
    got = ablation_auc(curve([0.25, 1.0, 0.5], [1.0, 0.0, 0.2]))
    expected = 0.2 * (1 + 0.5) / 2 + 0.8 * (0.5 + 0.25) / 2
    assert float(got) == pytest.approx(expected)
    flat = ablation_auc(curve([0.7, 0.7], [0.0, 1.0]))
    assert float(flat) == pytest.approx(1.0)


def test_auc_keeps_other_dims_and_mean_of_aucs_is_auc_of_mean() -> None:
    values = np.array([[[0.9, 0.6, 0.2], [0.9, 0.3, 0.1]], [[0.5, 0.5, 0.5], [0.5, 0.4, 0.3]]])
    c = curve(values, [0, 0.5, 1], dims=("scope", "ordering", "fraction"))
    auc = ablation_auc(c)
    assert auc.dims == ("scope", "ordering") and auc.name == "ablation_auc"
    np.testing.assert_allclose(auc.mean("ordering"), ablation_auc(c.mean("ordering")))
    with_base = ablation_auc(c, baseline=1.0)
    assert float(with_base[1, 0]) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (xr.DataArray([0.5, 0.1], dims="rank"), "'fraction' dim"),
        (np.array([0.5, 0.1]), "xarray.DataArray"),
        (curve([0.5, 0.1], [0.0, 0.8]), "include both 0 and 1"),
        (curve([0.5, 0.4, 0.1], [0.0, 1.2, 1.0]), r"lie in \[0, 1\]"),
        (curve([0.0, 0.1], [0.0, 1.0]), "non-zero"),
        (curve([0.5, np.nan], [0.0, 1.0]), "NaN"),
        (curve([0.5, 0.4, 0.1], [0.0, 1.0, 1.0]), r"repeated: \[1\.0\]"),
        (curve([0.5, 0.1], [0.0, 0.5]), r"missing: \[1\.0\]"),
        (curve(np.zeros(0), np.zeros(0)), r"missing: \[0\.0, 1\.0\]"),
        (xr.DataArray([0.5, 0.1], dims="fraction"), "no 'fraction' coordinate"),
    ],
)
def test_bad_curves_are_refused(bad, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DirectionKitError, match=match):
        ablation_auc(bad)


def test_an_explicit_baseline_broadcasts_and_is_checked() -> None:
    c = curve([[0.8, 0.4], [0.6, 0.6]], [0.0, 1.0], dims=("scope", "fraction"))
    base = xr.DataArray([0.8, 1.2], dims="scope")
    np.testing.assert_allclose(ablation_auc(c, baseline=base), [0.75, 0.5])
    with pytest.raises(InvalidDataError, match="non-zero"):
        ablation_auc(c, baseline=0.0)
    with pytest.raises(InvalidParameterError, match="'baseline' parameter of ablation_auc"):
        ablation_auc(c, baseline="high")
    with pytest.raises(InvalidParameterError, match="'fraction' dim"):
        ablation_auc(c, baseline=c)
