"""Checks every :class:`~directionkit.adapter.ModelAdapter` must pass.

Subclass :class:`AdapterTests` in an adapter's test module and implement
:meth:`AdapterTests.make_adapter` and :meth:`AdapterTests.make_input`; pytest
then runs every ``test_*`` method against that adapter.  The checks use the seam
only, so they hold for any framework: the documented semantics
``a' = a * scale + shift + (1 - scale) * fill + noise_std * eps`` (with ``fill`` a
per-site element template), the same along a basis of directions (exactly the unit
result for the unit basis; :meth:`Interventions.apply` the reference otherwise), and the
``(M, B, C)`` contract.  The checks of element
templates need :class:`~directionkit.adapter.SupportsElementRecording` and are
skipped for an adapter without it.

Examples
--------
>>> from directionkit.testing import AdapterTests
>>> [n for n in dir(AdapterTests) if n.startswith("test_the_unit_basis")]
['test_the_unit_basis_gives_the_unit_interventions_exactly']
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from directionkit.adapter import (
    Interventions,
    LinearChain,
    ModelAdapter,
    RunOutput,
    Site,
    SupportsElementRecording,
    check_request,
    units_last,
)
from directionkit.errors import DirectionKitError, SiteNotFoundError

__all__ = ["AdapterTests", "NumpyMLPAdapter", "example_model"]


class AdapterTests:
    """The adapter-agnostic contract, as a pytest test class to subclass.

    Attributes
    ----------
    rtol, atol : float
        Tolerances for comparing logits computed in different ways.
    """

    rtol: float = 1e-5
    atol: float = 1e-5

    def make_adapter(self) -> ModelAdapter:
        """A fresh adapter over a small model with at least two sites, its sites known."""
        raise NotImplementedError

    def make_input(self, batch: int) -> Any:
        """A batch of ``batch`` valid inputs for the adapter's model."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------
    def _setup(self, batch: int = 6) -> tuple[ModelAdapter, Any, np.ndarray]:
        adapter = self.make_adapter()
        x = self.make_input(batch)
        clean = adapter.run(x).logits
        return adapter, x, clean

    def _random_masks(self, adapter: ModelAdapter, m: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {name: rng.random((m, s.n_units)) < 0.5 for name, s in adapter.sites.items()}

    # -- the checks -------------------------------------------------------------------
    def test_sites_are_ordered_and_well_formed(self) -> None:
        adapter, _, clean = self._setup()
        sites = adapter.sites
        assert len(sites) >= 1
        assert [s.depth for s in sites.values()] == list(range(len(sites)))
        assert all(name == s.name for name, s in sites.items())
        assert clean.ndim == 3 and clean.shape[:2] == (1, 6)

    def test_identity_interventions_equal_the_clean_run(self) -> None:
        adapter, x, clean = self._setup()
        out = adapter.run(x, Interventions.identity(adapter.sites, n=3)).logits
        assert out.shape == (3, *clean.shape[1:])
        np.testing.assert_allclose(out, np.repeat(clean, 3, axis=0), self.rtol, self.atol)

    def test_m_batched_rows_equal_one_at_a_time(self) -> None:
        adapter, x, _ = self._setup()
        iv = Interventions.zero_ablate(adapter.sites, self._random_masks(adapter, 4, seed=1))
        together = adapter.run(x, iv).logits
        for row in range(4):
            alone = adapter.run(x, iv.rows(row, row + 1)).logits
            np.testing.assert_allclose(together[row], alone[0], self.rtol, self.atol)

    def test_chunked_rows_equal_the_whole(self) -> None:
        adapter, x, _ = self._setup()
        iv = Interventions.zero_ablate(adapter.sites, self._random_masks(adapter, 5, seed=2))
        whole = adapter.run(x, iv).logits
        parts = np.concatenate([adapter.run(x, iv.rows(0, 2)).logits,
                                adapter.run(x, iv.rows(2, 5)).logits])  # fmt: skip
        np.testing.assert_allclose(whole, parts, self.rtol, self.atol)

    def test_recorded_activations_have_one_row_per_example(self) -> None:
        adapter, x, _ = self._setup()
        names = list(adapter.sites)
        out = adapter.run(x, record=names)
        for name in names:
            assert out.activations[name].shape == (6, adapter.sites[name].n_units)
            assert np.all(np.isfinite(out.activations[name]))

    def test_clamping_a_site_to_its_own_activity_changes_nothing(self) -> None:
        # with one example, mean-ablating every unit of a site to the value it already
        # has must reproduce the clean logits: checks scale, shift and unit layout together
        adapter = self.make_adapter()
        x = self.make_input(1)
        clean = adapter.run(x, record=list(adapter.sites))
        for name, site in adapter.sites.items():
            if site.kind == "conv" or (site.shape is not None and len(site.shape) > 1):
                continue  # a map's mean over positions is not its value; see the next check
            iv = Interventions.mean_ablate(
                adapter.sites, {name: np.ones((1, site.n_units), bool)},
                {name: clean.activations[name][0]},
            )  # fmt: skip
            np.testing.assert_allclose(adapter.run(x, iv).logits, clean.logits, 1e-4, 1e-4)

    def _elements(self, adapter: ModelAdapter, x: Any) -> Mapping[str, np.ndarray]:
        if not isinstance(adapter, SupportsElementRecording):
            import pytest

            pytest.skip(f"{type(adapter).__name__} has no record_elements()")
        return adapter.record_elements(x, list(adapter.sites))

    def test_recorded_elements_average_to_the_recorded_activations(self) -> None:
        adapter, x, _ = self._setup()
        elements = self._elements(adapter, x)
        reduced = adapter.run(x, record=list(adapter.sites)).activations
        for name, site in adapter.sites.items():
            full = np.asarray(elements[name], np.float64)
            assert full.shape[0] == 6 and full.shape[1:] == (site.shape or full.shape[1:])
            mean = units_last(site, full).mean(axis=1)
            np.testing.assert_allclose(mean, reduced[name], 1e-4, 1e-5)

    def test_clamping_every_element_to_its_own_value_changes_nothing(self) -> None:
        # one example, every unit of a site mean-ablated to a template holding the values
        # it already has, element by element: the clean logits come back (for conv maps
        # too, where a per-unit value cannot do this)
        adapter = self.make_adapter()
        x = self.make_input(1)
        clean = adapter.run(x).logits
        elements = self._elements(adapter, x)
        for name, site in adapter.sites.items():
            iv = Interventions.mean_ablate(
                adapter.sites, {name: np.ones((2, site.n_units), bool)},
                {name: np.asarray(elements[name][0], np.float64)},
            )  # fmt: skip
            out = adapter.run(x, iv).logits
            np.testing.assert_allclose(out, np.repeat(clean, 2, 0), 1e-4, 1e-4)

    def test_a_constant_template_equals_a_per_unit_shift(self) -> None:
        # a template holding one value per unit at every element is the per-unit shift:
        # checks the unit axis of fill, its (1 - scale) factor, and that rows keep fill
        adapter, x, _ = self._setup()
        elements = self._elements(adapter, x)
        masks = self._random_masks(adapter, 3, seed=5)
        rng = np.random.default_rng(6)
        per_unit, templates = {}, {}
        for name, site in adapter.sites.items():
            values = rng.uniform(0.5, 1.5, site.n_units)
            shape = np.shape(elements[name])[1:]
            axis = site.unit_axis_in(len(shape))
            view = [1] * len(shape)
            view[axis] = site.n_units
            per_unit[name] = values
            templates[name] = np.broadcast_to(values.reshape(view), shape).copy()
        a = adapter.run(x, Interventions.mean_ablate(adapter.sites, masks, per_unit)).logits
        iv = Interventions.mean_ablate(adapter.sites, masks, templates)
        b = adapter.run(x, iv).logits
        np.testing.assert_allclose(b, a, self.rtol, self.atol)
        rows = np.concatenate([adapter.run(x, iv.rows(r, r + 1)).logits for r in range(3)])
        np.testing.assert_allclose(rows, b, self.rtol, self.atol)

    def test_clamping_every_unit_removes_input_dependence(self) -> None:
        # every path to the output goes through the last site, so once all its units
        # are clamped every example gets the same logits, and they differ from the clean ones
        adapter, x, clean = self._setup()
        everything = {n: np.ones((1, s.n_units), bool) for n, s in adapter.sites.items()}
        ablated = adapter.run(x, Interventions.zero_ablate(adapter.sites, everything)).logits[0]
        np.testing.assert_allclose(ablated, np.repeat(ablated[:1], len(ablated), 0), 1e-4, 1e-4)
        assert not np.allclose(ablated, clean[0])

    def test_zero_noise_equals_clean_and_noise_is_seeded(self) -> None:
        adapter, x, clean = self._setup()
        std = {n: np.ones(s.n_units) for n, s in adapter.sites.items()}
        zero = adapter.run(x, Interventions.noise(std, scales=[0.0])).logits
        np.testing.assert_allclose(zero, clean, self.rtol, self.atol)
        a = adapter.run(x, Interventions.noise(std, scales=[1.0, 1.0], seed=3)).logits
        b = adapter.run(x, Interventions.noise(std, scales=[1.0, 1.0], seed=3)).logits
        c = adapter.run(x, Interventions.noise(std, scales=[1.0], seed=4)).logits
        np.testing.assert_allclose(a, b, self.rtol, self.atol)
        assert not np.allclose(a[0], a[1])  # each row draws its own noise
        assert not np.allclose(a[0], c[0])

    # -- along a basis of directions (Interventions.along) ---------------------------
    def _random_bases(self, adapter: ModelAdapter, seed: int) -> dict[str, np.ndarray]:
        """Per site, the first k rows (k random) of a random rotation of its units."""
        rng = np.random.default_rng(seed)
        bases = {}
        for name, site in adapter.sites.items():
            q, r = np.linalg.qr(rng.standard_normal((site.n_units, site.n_units)))
            bases[name] = (q * np.sign(np.diag(r))).T[: rng.integers(1, site.n_units + 1)]
        return bases

    def test_the_unit_basis_gives_the_unit_interventions_exactly(self) -> None:
        # U = I is the units themselves: the same bits as the unit interventions
        adapter, x, _ = self._setup()
        eye = {name: np.eye(site.n_units) for name, site in adapter.sites.items()}
        masks = self._random_masks(adapter, 3, seed=7)
        rng = np.random.default_rng(8)
        means = {name: rng.uniform(-1, 1, site.n_units) for name, site in adapter.sites.items()}
        std = {name: np.full(site.n_units, 0.5) for name, site in adapter.sites.items()}
        for iv in (
            Interventions.zero_ablate(adapter.sites, masks),
            Interventions.mean_ablate(adapter.sites, masks, means),
            Interventions.noise(std, scales=[0.0, 1.0, 3.0], seed=2),
        ):
            np.testing.assert_array_equal(
                adapter.run(x, iv.along(eye)).logits, adapter.run(x, iv).logits
            )

    def test_a_signed_permutation_basis_ablates_the_permuted_units(self) -> None:
        adapter, x, _ = self._setup()
        rng = np.random.default_rng(9)
        bases, unit_masks = {}, {}
        masks = self._random_masks(adapter, 3, seed=10)
        for name, site in adapter.sites.items():
            order = rng.permutation(site.n_units)
            signs = rng.choice([-1.0, 1.0], site.n_units)[:, None]
            bases[name] = np.eye(site.n_units)[order] * signs
            unit_masks[name] = np.zeros_like(masks[name])
            unit_masks[name][:, order] = masks[name]
        along = Interventions.zero_ablate(adapter.sites, masks).along(bases)
        units = Interventions.zero_ablate(adapter.sites, unit_masks)
        np.testing.assert_allclose(
            adapter.run(x, along).logits, adapter.run(x, units).logits, self.rtol, self.atol
        )

    def test_a_complete_rotated_basis_removed_is_every_unit_removed(self) -> None:
        adapter, x, clean = self._setup()
        bases = {n: self._random_bases(adapter, seed=13)[n] for n in adapter.sites}
        bases = {n: _completed(u) for n, u in bases.items()}
        none = {n: np.zeros((1, s.n_units), bool) for n, s in adapter.sites.items()}
        every = {n: np.ones((1, s.n_units), bool) for n, s in adapter.sites.items()}
        kept = adapter.run(x, Interventions.zero_ablate(adapter.sites, none).along(bases)).logits
        np.testing.assert_allclose(kept, clean, 1e-4, 1e-4)
        removed = Interventions.zero_ablate(adapter.sites, every)
        np.testing.assert_allclose(
            adapter.run(x, removed.along(bases)).logits, adapter.run(x, removed).logits,
            1e-4, 1e-4,
        )  # fmt: skip

    def test_rotated_interventions_equal_the_numpy_reference(self) -> None:
        # one example: the reference edits the recorded elements in numpy
        # (Interventions.apply), and the unit path clamps every element to them
        adapter = self.make_adapter()
        x = self.make_input(1)
        elements = self._elements(adapter, x)
        rng = np.random.default_rng(11)
        for seed, (name, basis) in enumerate(self._random_bases(adapter, seed=12).items()):
            k = basis.shape[0]
            mask = rng.random((3, k)) < 0.5
            iv = Interventions(
                scale={name: (~mask).astype(np.float64)},
                shift={name: mask * rng.uniform(-1, 1, (3, k))},
                noise_std={name: ~mask * rng.uniform(0, 0.5, (3, k))},
                seed=seed, basis={name: basis},
            )  # fmt: skip
            out = adapter.run(x, iv).logits
            values = np.asarray(elements[name], np.float64)[None]  # (1, B=1, ...)
            expected = iv.apply(values, adapter.sites[name])
            everything = {name: np.ones((1, adapter.sites[name].n_units), bool)}
            for row in range(3):
                clamp = Interventions.mean_ablate(
                    adapter.sites, everything, {name: expected[row, 0]}
                )
                reference = adapter.run(x, clamp).logits[0]
                np.testing.assert_allclose(out[row], reference, 1e-4, 1e-4)

    def test_unknown_sites_are_refused(self) -> None:
        adapter, x, _ = self._setup()
        try:
            adapter.run(x, record=["no-such-site"])
        except SiteNotFoundError as err:
            assert "no-such-site" in str(err)
        else:
            raise AssertionError("an unknown site was accepted")
        wrong = Interventions.zero_ablate({"no-such-site": 2}, {"no-such-site": [[True, False]]})
        try:
            adapter.run(x, wrong)
        except DirectionKitError:
            pass
        else:
            raise AssertionError("interventions on an unknown site were accepted")


def _completed(rows: np.ndarray) -> np.ndarray:
    """An orthonormal basis of every unit whose first rows are ``rows``."""
    n = rows.shape[1]
    q, r = np.linalg.qr(np.concatenate([rows, np.eye(n)]).T)
    return (q[:, :n] * np.where(np.diag(r)[:n] < 0, -1.0, 1.0)).T


class NumpyMLPAdapter:
    """A ReLU MLP written in numpy: a reference implementation of the seam.

    It applies interventions exactly as :mod:`directionkit.adapter` documents, one
    row at a time, with no framework, so experiments can be checked against it and
    it runs where no framework is installed.  Sites are ``"hidden0"``, ``"hidden1"``, ...

    Parameters
    ----------
    weights, biases : sequences of arrays
        Layer ``i`` computes ``h @ weights[i] + biases[i]``; ReLU after every layer but
        the last.

    Examples
    --------
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(4, 2), n_classes=2, seed=0)
    >>> list(net.sites), net.run(np.ones((5, 3))).logits.shape
    (['hidden0', 'hidden1'], (1, 5, 2))
    """

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        self._sites = {
            f"hidden{i}": Site(f"hidden{i}", w.shape[1], "dense", i, shape=(w.shape[1],))
            for i, w in enumerate(self.weights[:-1])
        }

    @classmethod
    def random(
        cls, n_in: int, hidden: Sequence[int], n_classes: int, seed: int = 0
    ) -> NumpyMLPAdapter:
        """He-initialised weights and small random biases."""
        rng = np.random.default_rng(seed)
        sizes = [n_in, *hidden, n_classes]
        weights = [rng.normal(0, np.sqrt(2 / a), (a, b)) for a, b in itertools.pairwise(sizes)]
        biases = [rng.normal(0, 0.1, b) for b in sizes[1:]]
        return cls(weights, biases)

    @property
    def sites(self) -> Mapping[str, Site]:
        """``hidden0``, ``hidden1``, ...: the ReLU outputs, in forward order."""
        return self._sites

    def run(
        self, x: Any, interventions: Interventions | None = None, record: Sequence[str] = ()
    ) -> RunOutput:
        """Logits ``(M, B, C)``; see :mod:`directionkit.adapter`."""
        check_request(self._sites, interventions, record)
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        m = 1 if interventions is None else interventions.n_interventions
        logits, recorded = [], {}
        for row in range(m):
            h = x
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                h = h @ w + b
                if i == len(self.weights) - 1:
                    break
                h = np.maximum(h, 0)
                name = f"hidden{i}"
                if row == 0 and name in record:
                    recorded[name] = h.copy()
                if interventions is not None and name in interventions.scale:
                    one = interventions.rows(row, row + 1)
                    h = one.apply(h[None], self._sites[name])[0]
            logits.append(h)
        return RunOutput(np.stack(logits), recorded)

    def record_elements(self, x: Any, sites: Sequence[str]) -> dict[str, np.ndarray]:
        """The clean activations ``(B, n_units)`` of ``sites`` (dense: elements are units)."""
        return dict(self.run(x, record=sites).activations)

    def predict(self, x: Any) -> np.ndarray:
        """The predicted class of each example (without interventions)."""
        return self.run(x).logits[0].argmax(axis=1)

    def unit_weight_l1(self, site: str) -> np.ndarray:
        """L1 norm of each unit's incoming weights (a column of the layer's matrix)."""
        if site not in self._sites:
            raise SiteNotFoundError(site, self._sites)
        return np.abs(self.weights[self._sites[site].depth]).sum(axis=0)

    def linear_chain(self) -> LinearChain:
        """The network as a :class:`~directionkit.adapter.LinearChain`."""
        return LinearChain(
            tuple(self.weights), tuple(self.biases), {n: s.depth for n, s in self._sites.items()}
        )


def example_model(n: int = 60, seed: int = 0) -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    """A small random MLP (4 inputs, hidden 6 and 5, 3 classes) and ``n`` examples it fits.

    For runnable examples in docstrings: the labels are the model's own predictions.

    Examples
    --------
    >>> net, X, y = example_model()
    >>> list(net.sites), X.shape, bool((net.predict(X) == y).all())
    (['hidden0', 'hidden1'], (60, 4), True)
    """
    net = NumpyMLPAdapter.random(n_in=4, hidden=(6, 5), n_classes=3, seed=seed)
    X = np.random.default_rng(seed).normal(size=(n, 4))
    return net, X, net.predict(X)
