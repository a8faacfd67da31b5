"""save/open round-trips arbitrary valid analyses."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import directionkit as dk
from directionkit.errors import StoreError
from directionkit.results import SCHEMA

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
    dims = sorted({d for name in names for d in SCHEMA[name]} | {"unit"})
    sizes = {d: draw(st.integers(1, 4), label=d) for d in dims}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    variables = {}
    for name in names:
        var_dims = SCHEMA[name]
        shape = tuple(sizes[d] for d in var_dims)
        values = rng.integers(-1, 5, shape) if name == "ablation_order" else rng.normal(size=shape)
        variables[name] = (var_dims, values)
    sites = draw(
        st.lists(
            st.text(
                alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF),
                min_size=1,
                max_size=6,
            ),
            min_size=sizes["unit"],
            max_size=sizes["unit"],
        )
    )
    coords = {"site": ("unit", sites), "unit_index": ("unit", np.arange(sizes["unit"]))}
    attrs = draw(st.dictionaries(st.text(min_size=1, max_size=6), JSON, max_size=4))
    return dk.Analysis(xr.Dataset(variables, coords=coords, attrs=attrs))


@settings(max_examples=25, deadline=None)
@given(analyses())
def test_save_then_open_is_identical(result) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        path = result.save(Path(tmp) / "run.zarr")
        back = dk.open(path)
        xr.testing.assert_identical(back.dataset, result.dataset)
        assert back.attrs == result.attrs


@settings(max_examples=15, deadline=None)
@given(analyses(), st.data())
def test_any_flipped_bit_in_any_chunk_is_caught_and_named(result, data) -> None:  # type: ignore[no-untyped-def]
    """CRC-32C catches every single-bit error: no damaged chunk reads back silently."""
    with tempfile.TemporaryDirectory() as tmp:
        path = result.save(Path(tmp) / "run.zarr")
        chunks = sorted(p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")
        chunk = data.draw(st.sampled_from(chunks), label="chunk")
        raw = bytearray(chunk.read_bytes())
        bit = data.draw(st.integers(0, 8 * len(raw) - 1), label="bit")
        raw[bit // 8] ^= 1 << (bit % 8)
        chunk.write_bytes(bytes(raw))
        variable = chunk.relative_to(path).parts[0]
        with pytest.raises(StoreError, match=f"variable '{variable}' has a damaged chunk"):
            dk.open(path)
