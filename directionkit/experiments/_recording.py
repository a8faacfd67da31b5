"""Recording a model's activations into an activation store on disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from directionkit._utils.validation import check_int
from directionkit.adapter import ModelAdapter
from directionkit.errors import SiteNotFoundError
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import check_labels_fit, find_sites
from directionkit.results import ActivationWriter


def record_activations(
    adapter: ModelAdapter,
    data: Any,
    store: str | os.PathLike[str],
    sites: Sequence[str] | None = None,
    *,
    batch_size: int | None = None,
    chunk_size: int = 4096,
    overwrite: bool = False,
) -> Path:
    """Write the spatially reduced activity of ``sites`` over ``data`` to a zarr store.

    The store (see :class:`directionkit.results.ActivationWriter`) is appended batch by
    batch, so it may be larger than memory, and appears at ``store`` only once complete.
    Open it with :func:`directionkit.results.open_activations`; the metric functions read
    it chunk by chunk and give the same numbers as
    :func:`~directionkit.experiments.activation_statistics`.

    Parameters
    ----------
    adapter : ModelAdapter
    data : (X, y) tuple or iterable of (x, y) batches
    store : str or path-like
        Target folder (conventionally ``*.zarr``).
    sites : sequence of str, optional
        Default: every site, in order.
    batch_size : int, optional
    chunk_size : int
        Examples per zarr chunk.
    overwrite : bool

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, numpy as np, directionkit as dk
    >>> from directionkit.results import open_activations
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=4, hidden=(5, 3), n_classes=2, seed=0)
    >>> X, y = np.random.default_rng(0).normal(size=(20, 4)), np.tile([0, 1], 10)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = record_activations(net, (X, y), f"{tmp}/acts.zarr", chunk_size=8)
    ...     acts = open_activations(path)
    ...     acts.shape, dk.class_selectivity(acts).sizes["unit"]
    ((20, 8), 8)
    """
    func = "record_activations"
    chunk_size = check_int(chunk_size, "chunk_size", func, minimum=1)
    batches = Batches(data, batch_size, func)
    find_sites(adapter, batches)
    names = list(adapter.sites) if sites is None else list(sites)
    for name in names:
        if name not in adapter.sites:
            raise SiteNotFoundError(name, adapter.sites)
    units = {name: adapter.sites[name].n_units for name in names}
    with ActivationWriter(
        store, units, chunk_size=chunk_size, overwrite=overwrite,
        attrs={"sites": names, "model": str(getattr(adapter, "identity", type(adapter).__name__))},
    ) as writer:  # fmt: skip
        for x, y in batches:
            out = adapter.run(x, record=names)
            check_labels_fit(y, out.logits.shape[-1], func)
            writer.append(np.concatenate([out.activations[n] for n in names], axis=1), y)
    return Path(store)
