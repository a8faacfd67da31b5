"""The bases ``analyze(directions=...)`` and ``--directions`` name: one per site, built
by kind, and stored with the result as a labelled variable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.choices import DIRECTION_KINDS, MEASURED_DIRECTIONS
from directionkit._utils.validation import check_choice, parameter_error
from directionkit.adapter import ModelAdapter, Site
from directionkit.directions._bases import random
from directionkit.directions._measured import class_mean_bases, pca_bases
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import unit_coords


def check_directions(directions: Any, func: str, train_data: Any) -> str:
    """The kind ``directions`` names (``"array"`` for a mapping of site to rows), checked
    before any pass over the data.

    Examples
    --------
    >>> check_directions("random", "analyze", None), check_directions({"a": [[1.0]]}, "f", None)
    ('random', 'array')
    """
    if isinstance(directions, Mapping):
        return "array"
    check_choice(directions, "directions", func, DIRECTION_KINDS)
    if directions in MEASURED_DIRECTIONS and train_data is None:
        raise parameter_error(
            "train_data", func, f"given when directions={directions!r} (the basis is measured "
            "on the training data; pass train_data=data to use the analysed data)", None,
        )  # fmt: skip
    return str(directions)


def site_bases(
    adapter: ModelAdapter,
    directions: str | Mapping[str, Any],
    train_data: Any,
    seed: int,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Per site of ``adapter`` (whose sites are known), the basis ``directions`` names.

    ``"units"`` gives none (the model's own units, unchanged); a mapping is returned as
    given (checked by :func:`along`).  Random bases draw from ``seed`` and the site's
    position, so every site gets its own rotation.

    Examples
    --------
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(4, 2), n_classes=2, seed=0)
    >>> {n: b.shape for n, b in site_bases(net, "random", None, seed=0).items()}
    {'hidden0': (4, 4), 'hidden1': (2, 2)}
    """
    if isinstance(directions, Mapping):
        return dict(directions)
    if directions == "units":
        return {}
    names = list(adapter.sites)
    if directions == "pca":  # one pass over the training data for every site
        return dict(pca_bases(adapter, Batches(train_data, batch_size, "analyze"), names))
    if directions == "class-means":
        return dict(class_mean_bases(adapter, Batches(train_data, batch_size, "analyze"), names))
    bases: dict[str, Any] = {}
    for depth, (name, site) in enumerate(adapter.sites.items()):
        state = np.random.SeedSequence([seed, depth]).generate_state(1)[0]
        bases[name] = random(site, seed=int(state))
    return bases


def basis_variable(adapter: ModelAdapter, bases: Mapping[str, Any]) -> xr.Dataset:
    """The bases as ``direction_basis (unit, component)``: row ``i`` of a site's basis at
    its ``unit`` (direction) ``i``, in the site's units (NaN beyond them), the unit basis
    for a site without one.  ``adapter`` is the model's own adapter (its units); the
    kind is recorded in the analysis' ``parameters``.

    Examples
    --------
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=3, hidden=(4, 2), n_classes=2, seed=0)
    >>> basis_variable(net, {"hidden0": np.eye(4)[:3]})["direction_basis"].shape
    (5, 4)
    """
    width = max(site.n_units for site in adapter.sites.values())
    blocks, sites = [], {}
    for name, site in adapter.sites.items():
        values = np.asarray(bases[name] if name in bases else np.eye(site.n_units), np.float32)
        block = np.full((values.shape[0], width), np.nan, np.float32)
        block[:, : values.shape[1]] = values
        blocks.append(block)
        sites[name] = Site(name, values.shape[0])
    return xr.Dataset(
        {"direction_basis": (("unit", "component"), np.concatenate(blocks))},
        coords={**unit_coords(sites), "component": np.arange(width)},
    )
