"""The seam: Site, Interventions and the adapter protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from directionkit.adapter import (
    Interventions,
    ModelAdapter,
    RunOutput,
    Site,
    SupportsWeightL1,
)
from directionkit.errors import DirectionKitError, InvalidParameterError, SiteNotFoundError

SITES = {"fc1": Site("fc1", 3, "dense", 0), "fc2": Site("fc2", 2, "dense", 1)}


def apply(a: np.ndarray, iv: Interventions, site: str, row: int) -> np.ndarray:
    """The documented semantics, written out for one dense activation (B, n_units)."""
    eps = iv.standard_normal(site, row, a.shape)
    return a * iv.scale[site][row] + iv.shift[site][row] + iv.noise_std[site][row] * eps


def test_site_validates_fields() -> None:
    with pytest.raises(InvalidParameterError, match="'kind' parameter of Site"):
        Site("a", 3, kind="pool")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"'n_units'.*Got 0"):
        Site("a", 0)
    with pytest.raises(InvalidParameterError, match="'name'"):
        Site("", 2)


def test_zero_ablate_clamps_masked_units_to_zero() -> None:
    iv = Interventions.zero_ablate(SITES, {"fc1": [[True, False, True], [False, False, False]]})
    a = np.array([[1.0, 2.0, 3.0], [-4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(apply(a, iv, "fc1", 0), [[0, 2, 0], [0, 5, 0]])
    np.testing.assert_array_equal(apply(a, iv, "fc1", 1), a)
    assert iv.sites == ("fc1",)
    assert iv.n_interventions == 2
    assert not iv.has_noise


def test_mean_ablate_clamps_to_the_given_mean() -> None:
    iv = Interventions.mean_ablate(SITES, {"fc2": [[False, True]]}, {"fc2": [10.0, 20.0]})
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(apply(a, iv, "fc2", 0), [[1, 20], [3, 20]])


def test_noise_std_scales_with_unit_std_and_chunks_draw_the_same_noise() -> None:
    iv = Interventions.noise({"fc1": [1.0, 2.0, 0.0]}, scales=[0.0, 1.0, 3.0], seed=5)
    np.testing.assert_array_equal(iv.noise_std["fc1"][2], [3.0, 6.0, 0.0])
    assert iv.has_noise
    in_batch_4 = iv.for_batch(4)
    whole = in_batch_4.standard_normal("fc1", row=2, shape=(8, 3))
    chunk = in_batch_4.rows(2, 3)
    assert chunk.row_offset == 2 and chunk.batch == 4
    np.testing.assert_array_equal(chunk.standard_normal("fc1", 0, (8, 3)), whole)
    # different rows, batches and sites get different noise
    assert not np.allclose(in_batch_4.standard_normal("fc1", 1, (8, 3)), whole)
    assert not np.allclose(iv.for_batch(5).standard_normal("fc1", 2, (8, 3)), whole)
    assert not np.allclose(in_batch_4.standard_normal("fc2", 2, (8, 3)), whole)
    similar = Interventions.noise({"layer1.0.relu#1": [1.0], "layer1.0.relu#2": [1.0]}, [1.0])
    assert not np.allclose(
        similar.standard_normal("layer1.0.relu#1", 0, (4,)),
        similar.standard_normal("layer1.0.relu#2", 0, (4,)),
    )
    # the noise really is standard normal
    big = iv.standard_normal("fc1", 0, (200_000,))
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1) < 0.01


def test_identity_leaves_activity_unchanged() -> None:
    iv = Interventions.identity(SITES, n=2)
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(apply(a, iv, "fc1", 1), a)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Interventions.zero_ablate(SITES, {"fc9": [[True]]}), "Unknown site 'fc9'"),
        (lambda: Interventions.zero_ablate(SITES, {"fc1": [[True, False]]}), r"shape \(M, 3\)"),
        (lambda: Interventions.zero_ablate(SITES, {"fc1": [[2, 0, 1]]}), "True = ablate"),
        (
            lambda: Interventions.zero_ablate(
                SITES, {"fc1": [[True, False, True]], "fc2": [[True, True], [False, True]]}
            ),
            "same M",
        ),
        (lambda: Interventions.mean_ablate(SITES, {"fc1": [[1, 0, 0]]}, {}), "mean for site"),
        (lambda: Interventions.noise({"fc1": [1.0]}, scales=[-1.0]), "'scales' parameter"),
        (lambda: Interventions.noise({"fc1": [np.nan]}, scales=[1.0]), "finite"),
        (lambda: Interventions.identity(SITES, n=0), "'n' parameter"),
        (lambda: Interventions({}, {}, {}), "at least one site"),
    ],
)
def test_bad_interventions_raise_clear_errors(build, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DirectionKitError, match=match):
        build()


def test_site_not_found_lists_valid_sites_and_is_a_key_error() -> None:
    with pytest.raises(KeyError) as info:
        Interventions.zero_ablate(SITES, {"nope": [[True]]})
    assert isinstance(info.value, SiteNotFoundError)
    assert str(info.value) == "Unknown site 'nope'. Valid sites are: 'fc1', 'fc2'."


class _NumpyMLP:
    """A minimal adapter over a one-hidden-layer numpy MLP, to check the protocols."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.w1, self.w2 = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))

    @property
    def sites(self) -> Mapping[str, Site]:
        return {"h": Site("h", 3)}

    def run(
        self, x: np.ndarray, interventions: Interventions | None = None, record: Sequence[str] = ()
    ) -> RunOutput:
        h = np.maximum(x @ self.w1, 0)
        iv = interventions or Interventions.identity(self.sites)
        rows = [apply(h, iv, "h", m) for m in range(iv.n_interventions)]
        logits = np.stack([r @ self.w2 for r in rows])
        return RunOutput(logits, {s: h for s in record})

    def unit_weight_l1(self, site: str) -> np.ndarray:
        return np.abs(self.w1).sum(axis=0)


def test_protocols_are_checked_at_run_time() -> None:
    adapter = _NumpyMLP()
    assert isinstance(adapter, ModelAdapter)
    assert isinstance(adapter, SupportsWeightL1)
    assert not isinstance(object(), ModelAdapter)
    out = adapter.run(np.ones((5, 4)), Interventions.zero_ablate(adapter.sites, {"h": np.eye(3)}))
    assert out.logits.shape == (3, 5, 2)  # (M, B, C)
