"""The result of an analysis (:class:`Analysis`) and :func:`open`, which reads one back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

from directionkit._version import __version__
from directionkit.errors import InvalidDataError
from directionkit.results import read_analysis, write_zarr
from directionkit.results._schema import (
    VERSION_ATTR,
    _json_attrs,
    _strings_as_objects,
    check_schema,
    population_dims,
)


class Analysis:
    """The labelled result of an analysis: an xarray Dataset following :data:`SCHEMA`.

    Parameters
    ----------
    dataset : xarray.Dataset
        Variables named as in :data:`SCHEMA` must have the dims given there, after any
        :data:`POPULATION_DIMS` (a sweep's or an experiment's ``model``, checkpoints'
        ``epoch``): ``ablation_auc`` is ``(scope,)`` for one model and ``(model, scope)``
        for a population (:attr:`population`).  The store of one experiment of the
        paper (attrs ``experiment``) has that experiment's own layout instead (e.g.
        ``ablation_auc`` ``(model,)`` for the one scope it ablates; see
        :mod:`directionkit.paper`).  Other variables are allowed.  Unit
        coordinates are ``site`` and ``unit_index`` along ``unit``.  Attrs must be
        JSON-serialisable; ``directionkit_version`` is added.

    Examples
    --------
    >>> import tempfile, xarray as xr, directionkit as dk
    >>> ds = xr.Dataset({"selectivity": ("unit", [0.1, 0.9])},
    ...                 coords={"site": ("unit", ["fc1", "fc1"]), "unit_index": ("unit", [0, 1])})
    >>> result = dk.Analysis(ds)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = result.save(f"{tmp}/run.zarr")
    ...     xr.testing.assert_identical(dk.open(path).dataset, result.dataset)
    >>> result["selectivity"].values.tolist()
    [0.1, 0.9]
    """

    #: What the report floor recognises an analysis by (it cannot import this class).
    _directionkit_analysis = True

    def __init__(self, dataset: xr.Dataset) -> None:
        if not isinstance(dataset, xr.Dataset):
            raise InvalidDataError(
                f"Analysis needs an xarray.Dataset. Got {type(dataset).__name__} instead."
            )
        check_schema(dataset)
        attrs = _json_attrs(dict(dataset.attrs))
        attrs.setdefault(VERSION_ATTR, __version__)
        dataset = _strings_as_objects(dataset.copy())
        dataset.attrs = attrs
        self._dataset = dataset

    @property
    def dataset(self) -> xr.Dataset:
        """The labelled results (see :data:`SCHEMA`)."""
        return self._dataset

    @property
    def attrs(self) -> dict[str, Any]:
        """Parameters, model and data identity, and the library version."""
        return self._dataset.attrs

    @property
    def population(self) -> tuple[str, ...]:
        """The population dims (``model``, ``epoch``) of this result; ``()`` for one model.

        Examples
        --------
        >>> import xarray as xr
        >>> ds = xr.Dataset({"accuracy": ("model", [0.9, 0.8])}, coords={"model": ["a", "b"]})
        >>> Analysis(ds).population, Analysis(xr.Dataset({"accuracy": 0.9})).population
        (('model',), ())
        """
        return population_dims(self._dataset)

    def __getitem__(self, name: str) -> xr.DataArray:
        return self._dataset[name]

    def __contains__(self, name: object) -> bool:
        return name in self._dataset.variables

    def __repr__(self) -> str:
        from directionkit.report._summary import summary_text

        lines = [f"<directionkit.Analysis> (directionkit {self.attrs.get(VERSION_ATTR)})"]
        lines += [f"  {line}" for line in summary_text(self._dataset).splitlines()]
        sizes = ", ".join(f"{d}: {n}" for d, n in self._dataset.sizes.items())
        lines.append(f"  dims: {sizes or '-'}")
        for name, var in self._dataset.data_vars.items():
            lines.append(f"  {name:<20} ({', '.join(map(str, var.dims))})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The headline numbers as an HTML table, for notebooks."""
        from directionkit.report._summary import summary_html

        return summary_html(self._dataset)

    def plot(self) -> dict[str, Any]:
        """The paper's figures for this analysis, as matplotlib Figures by name.

        See :func:`directionkit.report.plots.plot_analysis`; a figure whose variables the
        analysis lacks is left out.  matplotlib is imported only here.

        Examples
        --------
        >>> import xarray as xr
        >>> sorted(Analysis(xr.Dataset({"selectivity": ("unit", [0.1, 0.5])})).plot())
        ['selectivity_by_depth', 'selectivity_histograms']
        """
        from directionkit.report.plots import plot_analysis

        return dict(plot_analysis(self))

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the analysis as a zarr store at ``path``, atomically.

        The store is written under a temporary name in the same folder and renamed
        into place, so ``path`` never holds a half-written store: on any failure the
        temporary store is removed and an existing ``path`` is left as it was.  Of
        several processes saving to one new path, exactly one succeeds; every chunk
        carries a checksum that :func:`open` verifies.  See :func:`write_zarr` and
        :func:`atomic_directory`.

        Parameters
        ----------
        path : str or path-like
            Target directory (conventionally ending in ``.zarr``).
        overwrite : bool
            Replace an existing store at ``path``: only a store directionkit wrote,
            or an empty folder (see :func:`replaceable`).

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        StoreError
            ``path`` exists (or appeared during the write) without ``overwrite``; it is
            not replaceable; or the write failed (nothing was saved).
        """
        return write_zarr(self._dataset, path, overwrite=overwrite)


def open(path: str | os.PathLike[str], *, verify: bool = True) -> Analysis:
    """Read an analysis written by :meth:`Analysis.save`, fully into memory.

    Every byte that decides a value is checked before one is read: each metadata file
    (codecs and encodings such as ``scale_factor`` included) and each chunk, by content
    and position, must match the SHA-256 recorded when the store was written (the root
    attribute :data:`DIGEST_ATTR`, dropped from the result).  A missing, extra, changed
    or swapped file is a :class:`StoreError` naming it and its variable; so is a store
    without the record (one from an older directionkit or elsewhere), unless
    ``verify=False``.  An overwrite of ``path`` that was killed half-way is first undone
    (:func:`recover`).

    Parameters
    ----------
    path : str or path-like
        A store; or the folder of one experiment of ``reproduce`` (``DIR/NAME``, whose
        store is ``DIR/NAME/NAME.zarr``); or a training run (its ``history.zarr``).
    verify : bool, default True
        False reads a store without checking it (with a warning saying so): for stores
        without an integrity record.

    Returns
    -------
    Analysis
        Identical to the saved one (values, coordinates, attrs).  A population (a sweep's
        root, an experiment's models or checkpoints) has the population dims in front
        (:attr:`Analysis.population`).

    Raises
    ------
    StoreError
        No folder at ``path``, not a zarr store, not a directionkit analysis, or damaged.

    Examples
    --------
    >>> import tempfile, xarray as xr, directionkit as dk
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = dk.Analysis(xr.Dataset({"accuracy": 0.9})).save(f"{tmp}/a.zarr")
    ...     float(dk.open(f"{tmp}/a.zarr")["accuracy"])
    0.9
    """
    return Analysis(read_analysis(path, verify=verify))
