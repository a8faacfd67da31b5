"""save/open round-trips arbitrary valid analyses."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import directionkit as dk
from directionkit.store import SCHEMA

SIZES = {"unit": 3, "class": 2, "scope": 2, "ordering": 2, "fraction": 3, "rank": 3,
         "repeat": 2, "noise_scale": 2}  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def analyses(draw: st.DrawFn) -> dk.Analysis:
    names = draw(st.lists(st.sampled_from(sorted(SCHEMA)), min_size=1, max_size=6, unique=True))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    variables = {}
    for name in names:
        dims = SCHEMA[name]
        shape = tuple(SIZES[d] for d in dims)
        values = rng.integers(-1, 5, shape) if name == "ablation_order" else rng.normal(size=shape)
        variables[name] = (dims, values)
    sites = draw(
        st.lists(
            st.text(
                alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF),
                min_size=1,
                max_size=6,
            ),
            min_size=3,
            max_size=3,
        )
    )
    coords = {"site": ("unit", sites), "unit_index": ("unit", np.arange(3))}
    attrs = draw(st.dictionaries(st.text(min_size=1, max_size=6), JSON, max_size=4))
    return dk.Analysis(xr.Dataset(variables, coords=coords, attrs=attrs))


@settings(max_examples=25)
@given(analyses())
def test_save_then_open_is_identical(result) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        path = result.save(Path(tmp) / "run.zarr")
        back = dk.open(path)
        xr.testing.assert_identical(back.dataset, result.dataset)
        assert back.attrs == result.attrs
