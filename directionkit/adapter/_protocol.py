"""The adapter protocol (:class:`ModelAdapter`), what ``run`` returns (:class:`RunOutput`),
and the optional capabilities, each a run-time checkable :class:`typing.Protocol`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from directionkit.adapter._interventions import Interventions
from directionkit.adapter._site import Site


class RunOutput(NamedTuple):
    """What :meth:`ModelAdapter.run` returns.

    Attributes
    ----------
    logits : ndarray of shape (M, B, C)
        Class scores per intervention row and example.
    activations : mapping of str to ndarray of shape (B, n_units)
        The recorded sites, spatially averaged for conv sites.
    """

    logits: np.ndarray
    activations: Mapping[str, np.ndarray]


@runtime_checkable
class ModelAdapter(Protocol):
    """What the core needs from a model runtime.

    Attributes
    ----------
    sites : mapping of str to Site
        Ordered (forward order) mapping of the model's ablatable sites.
    """

    @property
    def sites(self) -> Mapping[str, Site]: ...

    def run(
        self,
        x: Any,
        interventions: Interventions | None = None,
        record: Sequence[str] = (),
    ) -> RunOutput:
        """Run the model on a batch ``x`` under ``interventions``; see the module docs."""
        ...


@runtime_checkable
class SupportsWeightL1(Protocol):
    """An adapter that can report the L1 norm of each unit's incoming weights."""

    def unit_weight_l1(self, site: str) -> np.ndarray:
        """Array of shape (n_units,) for ``site``."""
        ...


@runtime_checkable
class SupportsFoldedWeightL1(Protocol):
    """An adapter that can also report the L1 norm with a following BatchNorm folded in."""

    def unit_weight_l1_folded(self, site: str) -> np.ndarray:
        """Array of shape (n_units,): ``|W[c]|_1 * |gamma[c] / sqrt(var[c] + eps)|``."""
        ...


@runtime_checkable
class SupportsElementRecording(Protocol):
    """An adapter that can return a site's activation unreduced, element by element."""

    def record_elements(self, x: Any, sites: Sequence[str]) -> Mapping[str, np.ndarray]:
        """Per site, the clean activation of shape ``(B, *site.shape)`` for the batch ``x``."""
        ...


@runtime_checkable
class SupportsPrefixCache(Protocol):
    """An adapter that runs the layers before the first intervened site once per batch."""

    @property
    def prefix_cache(self) -> bool: ...


@runtime_checkable
class SupportsDevice(Protocol):
    """An adapter that reports where it computes (``"cpu"``, ``"cuda:0"``, ...)."""

    @property
    def device(self) -> str: ...


@runtime_checkable
class SupportsLazySites(Protocol):
    """An adapter that finds its sites by running the model (e.g. a torch module's hooks).

    While ``sites_pending`` is True, reading ``sites`` is an error; the experiments then
    run the adapter once on the first example of their data, which finds the sites.
    """

    @property
    def sites_pending(self) -> bool: ...


@dataclass(frozen=True)
class LinearChain:
    """A model that is a chain of affine layers with a ReLU after each but the last.

    ``weights[i]`` has shape ``(n_in, n_out)`` and layer ``i`` computes
    ``h @ weights[i] + biases[i]``; the input is flattened to ``(B, n_features)``.
    ``site_layers`` maps each site to the layer whose ReLU output it is.  Knowing this
    lets the core compute cumulative ablation curves incrementally: clamping more
    units of a site only subtracts their columns' contribution from the next layer.
    ``bases`` (optional, per site) gives orthonormal directions ``U`` ``(k, n_units)``
    along which the site is intervened on: its "units" are then the projections
    ``h @ U.T``, and the next layer sees them through the weights ``U @ W``.
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    site_layers: Mapping[str, int]
    bases: Mapping[str, np.ndarray] = field(default_factory=dict)


@runtime_checkable
class SupportsLinearChain(Protocol):
    """An adapter that can describe its model as a :class:`LinearChain` (or not: None)."""

    def linear_chain(self) -> LinearChain | None:
        """The chain, or None when the model is not a plain ReLU MLP."""
        ...
