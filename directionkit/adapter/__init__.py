"""The seam between the framework-neutral core and a model runtime.

Everything framework-specific sits behind :class:`ModelAdapter`.  The core
builds :class:`Interventions` and reads logits and activations; an adapter
(PyTorch, ONNX, ...) runs the model.

Semantics of an intervention
----------------------------
For every site named in an :class:`Interventions` and every intervention row
``m`` in ``0..M-1``, the adapter replaces the site's activation ``a`` by::

    a' = a * scale[m] + shift[m] + (1 - scale[m]) * fill + noise_std[m] * eps

``scale``, ``shift`` and ``noise_std`` have shape ``(M, n_units)``; a unit is
the last axis of a dense activation ``(B, ..., n_units)`` and axis 1 (the
channel) of a conv activation ``(B, n_units, H, W)``, and the per-unit value is
broadcast over the other axes.  ``fill`` is optional, per site: an *element
template* of the shape of one example's activation at the site
(:attr:`Site.shape`, e.g. ``(C, H, W)``), broadcast over M and B (0 when a site
has none).  It lets a clamped unit take a different value at every element of
its map: mean-ablation of a conv map to its per-element training mean (paper
A.1) is ``scale = ~ablated``, ``shift = 0``, ``fill = mean[c, h, w]``, while the
per-unit ``shift`` gives every element of a map the same value.  ``eps`` is
standard normal noise, independent for every element of the activation (so
every spatial position of a conv map gets its own draw), drawn from
:meth:`Interventions.standard_normal` so that every adapter draws the same
numbers for the same seed.  Sites that an ``Interventions`` does not name are
left unchanged.

Special cases (built by the constructors):

* zero-ablation of a boolean mask ``ablated``: ``scale = ~ablated``, ``shift = 0``;
* mean-ablation to one value per unit: ``scale = ~ablated``, ``shift = ablated * mean``;
* mean-ablation to an element template: ``scale = ~ablated``, ``shift = 0``,
  ``fill = mean`` (see :meth:`Interventions.mean_ablate`);
* noise at scale ``s``: ``scale = 1``, ``shift = 0``, ``noise_std = s * sd_unit``.

Along a basis of directions
---------------------------
A single direction may be a linear combination of units.  :meth:`Interventions.along`
gives a site ``k`` orthonormal directions ``U`` (rows, ``(k, n_units)``); its terms
are then ``(M, k)`` and act on the projections ``p = a @ U.T`` of the activity vector
``a`` at every position (per spatial position of a map, per token)::

    a' = a + (p' - p) @ U,   p' = p * scale[m] + shift[m] + (1 - scale[m]) * fill
                                  + noise_std[m] * eps

with ``fill`` and ``eps`` holding ``k`` on the unit axis.  What lies outside the
directions' span is kept.  A basis equal to the identity is the units themselves:
it is dropped, and the unit intervention runs, to the last bit.
:meth:`Interventions.apply` is the reference implementation in numpy.

The logits contract
-------------------
``adapter.run(x, interventions)`` returns logits of shape ``(M, B, C)``: row
``m`` holds the model's class scores for the ``B`` examples of ``x`` under
intervention ``m``.  Without interventions ``M == 1``.  Recorded activations
are the *unedited-by-later-sites* values seen at the site under intervention
row 0 (or the clean run when there is none), reduced to ``(B, n_units)``;
conv maps are averaged over space.

Optional capabilities
---------------------
An adapter may also offer (checked at run time with ``isinstance``):

* :class:`SupportsElementRecording` -- ``record_elements(x, sites)``: the clean,
  unreduced activations ``(B, *site.shape)``, from which the core computes
  per-element training means and the sd over a map's elements.  Without it the
  core can measure dense sites (whose elements are the units) but not conv maps
  element by element;
* :class:`SupportsWeightL1` / :class:`SupportsFoldedWeightL1` -- each unit's raw
  incoming-filter L1 norm, and the one with a following BatchNorm folded in;
* :class:`SupportsPrefixCache`, :class:`SupportsDevice`, :class:`SupportsLinearChain`.

Sites may carry a :attr:`Site.layer`: sites with the same layer form one layer of
the network (the ReLUs of one residual block), which ``scope="last:K"`` counts.

Examples
--------
>>> import numpy as np
>>> from directionkit.adapter import Interventions, Site
>>> sites = {"fc1": Site("fc1", n_units=3, kind="dense", depth=0)}
>>> iv = Interventions.zero_ablate(sites, {"fc1": [[False, True, False]]})
>>> iv.n_interventions
1
>>> iv.scale["fc1"]
array([[1., 0., 1.]])
"""

from directionkit._utils.choices import ALL_KINDS, BINARY_KINDS
from directionkit.adapter._interventions import (
    BASIS_TOLERANCE,
    Interventions,
    check_basis,
    check_request,
)
from directionkit.adapter._outputs import (
    LOGARITHM_TAKEN,
    OUTPUT_KIND_NOTES,
    OUTPUT_KINDS,
    binary_columns,
    binary_kind,
    check_output_kind,
    looks_like_probabilities,
    probabilities_by_value,
)
from directionkit.adapter._protocol import (
    LinearChain,
    ModelAdapter,
    RunOutput,
    SupportsDevice,
    SupportsElementRecording,
    SupportsFoldedWeightL1,
    SupportsLazySites,
    SupportsLinearChain,
    SupportsPrefixCache,
    SupportsWeightL1,
)
from directionkit.adapter._site import (
    CPU_MEMORY_BUDGET,
    GPU_MEMORY_BUDGET,
    Site,
    SiteKind,
    check_unit_axes,
    check_unit_axes_named,
    direction_site,
    element_shape_ok,
    given_unit_axis,
    guessed_unit_axis,
    units_last,
)

__all__ = [
    "ALL_KINDS",
    "BASIS_TOLERANCE",
    "BINARY_KINDS",
    "CPU_MEMORY_BUDGET",
    "GPU_MEMORY_BUDGET",
    "LOGARITHM_TAKEN",
    "OUTPUT_KINDS",
    "OUTPUT_KIND_NOTES",
    "Interventions",
    "LinearChain",
    "ModelAdapter",
    "RunOutput",
    "Site",
    "SiteKind",
    "SupportsDevice",
    "SupportsElementRecording",
    "SupportsFoldedWeightL1",
    "SupportsLazySites",
    "SupportsLinearChain",
    "SupportsPrefixCache",
    "SupportsWeightL1",
    "binary_columns",
    "binary_kind",
    "check_basis",
    "check_output_kind",
    "check_request",
    "check_unit_axes",
    "check_unit_axes_named",
    "element_shape_ok",
    "given_unit_axis",
    "guessed_unit_axis",
    "looks_like_probabilities",
    "probabilities_by_value",
    "direction_site",
    "units_last",
]
