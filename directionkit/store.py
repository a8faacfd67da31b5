"""The result of an analysis, and its zarr store.

:class:`Analysis` wraps an :class:`xarray.Dataset` whose variable names and dims are
the public data model of directionkit (:data:`SCHEMA`).  :meth:`Analysis.save`
writes a zarr (format 3) store atomically; :func:`open` reads it back identical,
and plain ``xarray.open_zarr`` reads it too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from directionkit._version import __version__
from directionkit.errors import InvalidDataError, InvalidParameterError, StoreError

__all__ = ["SCHEMA", "Analysis", "fingerprint", "open"]

#: Variable name -> dims: the public contract of an analysis (DESIGN §4).
SCHEMA: dict[str, tuple[str, ...]] = {
    "accuracy": (),
    "loss": (),
    "ablation_accuracy": ("scope", "ordering", "fraction"),
    "ablation_order": ("scope", "ordering", "rank"),
    "ablation_auc": ("scope",),
    "noise_accuracy": ("repeat", "noise_scale"),
    "class_mean": ("unit", "class"),
    "selectivity": ("unit",),
    "mutual_info": ("unit",),
    "importance_loss": ("unit",),
    "importance_accuracy": ("unit",),
    "weight_l1": ("unit",),
    "unit_mean": ("unit",),
    "unit_std": ("unit",),
}
VERSION_ATTR = "directionkit_version"


def fingerprint(*arrays: Any) -> str:
    """A content hash of arrays (dtype, shape and bytes), for model and data identity.

    Examples
    --------
    >>> import numpy as np
    >>> fingerprint(np.arange(3)) == fingerprint(np.arange(3))
    True
    >>> fingerprint(np.arange(3)) == fingerprint(np.arange(3.0))
    False
    >>> fingerprint(np.zeros(2))[:7]
    'sha256:'
    """
    digest = hashlib.sha256()
    for array in arrays:
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return "sha256:" + digest.hexdigest()


def _json_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attrs as they come back from zarr's JSON: tuples become lists, numpy scalars Python."""

    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(type(value).__name__)

    try:
        return dict(json.loads(json.dumps(attrs, default=default, allow_nan=True)))
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(
            f"The attrs of an Analysis must be JSON-serialisable (str, numbers, lists, dicts, "
            f"None). Got a value of type {err}."
        ) from err


def _strings_as_objects(dataset: xr.Dataset) -> xr.Dataset:
    """Text as object arrays: zarr 3 stores them with its specified variable-length type."""
    text = [
        name
        for name, var in dataset.variables.items()
        if var.dtype.kind in "US" or var.dtype.kind == "T"
    ]
    if not text:
        return dataset
    return dataset.assign_coords(
        {n: dataset[n].astype(object) for n in text if n in dataset.coords}
    ).assign({n: dataset[n].astype(object) for n in text if n in dataset.data_vars})


class Analysis:
    """The labelled result of an analysis: an xarray Dataset following :data:`SCHEMA`.

    Parameters
    ----------
    dataset : xarray.Dataset
        Variables named as in :data:`SCHEMA` must have the dims given there; other
        variables are allowed.  Unit coordinates are ``site`` and ``unit_index`` along
        ``unit``.  Attrs must be JSON-serialisable; ``directionkit_version`` is added.

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

    def __init__(self, dataset: xr.Dataset) -> None:
        if not isinstance(dataset, xr.Dataset):
            raise InvalidDataError(
                f"Analysis needs an xarray.Dataset. Got {type(dataset).__name__} instead."
            )
        for name, var in dataset.data_vars.items():
            expected = SCHEMA.get(str(name))
            if expected is not None and tuple(var.dims) != expected:
                raise InvalidDataError(
                    f"Variable {name!r} of an Analysis must have dims {expected}. "
                    f"Got {tuple(var.dims)} instead."
                )
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

    def __getitem__(self, name: str) -> xr.DataArray:
        return self._dataset[name]

    def __contains__(self, name: object) -> bool:
        return name in self._dataset.variables

    def __repr__(self) -> str:
        lines = [f"<directionkit.Analysis> (directionkit {self.attrs.get(VERSION_ATTR)})"]
        sizes = ", ".join(f"{d}: {n}" for d, n in self._dataset.sizes.items())
        lines.append(f"  dims: {sizes or '-'}")
        for name, var in self._dataset.data_vars.items():
            lines.append(f"  {name:<20} ({', '.join(map(str, var.dims))})")
        for key in ("model", "data"):
            if key in self.attrs:
                lines.append(f"  {key}: {self.attrs[key]}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the analysis as a zarr store at ``path``, atomically.

        The store is written under a temporary name in the same folder and renamed
        into place, so ``path`` never holds a half-written store: on any failure the
        temporary store is removed and an existing ``path`` is left as it was.

        Parameters
        ----------
        path : str or path-like
            Target directory (conventionally ending in ``.zarr``).
        overwrite : bool
            Replace an existing store at ``path``.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise StoreError(f"{str(target)!r} already exists; pass overwrite=True to replace it.")
        if not target.parent.is_dir():
            raise StoreError(f"The folder of {str(target)!r} does not exist.")
        token = uuid.uuid4().hex[:12]
        temporary = target.parent / f".{target.name}.tmp-{token}"
        backup = target.parent / f".{target.name}.old-{token}"
        try:
            with warnings.catch_warnings():
                # zarr 3 flags consolidated metadata as outside its spec; it is what lets
                # plain xarray.open_zarr read the store quickly and without a warning
                warnings.filterwarnings(
                    "ignore", message="Consolidated metadata is currently not part"
                )
                self._dataset.to_zarr(temporary, mode="w-", zarr_format=3, consolidated=True)
            if target.exists():
                os.rename(target, backup)
                try:
                    os.rename(temporary, target)
                except BaseException:
                    os.rename(backup, target)
                    raise
                shutil.rmtree(backup)
            else:
                os.rename(temporary, target)
        finally:
            if temporary.exists():
                shutil.rmtree(temporary, ignore_errors=True)
        return target


def open(path: str | os.PathLike[str]) -> Analysis:
    """Read an analysis written by :meth:`Analysis.save`, fully into memory.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    Analysis
        Identical to the saved one (values, coordinates, attrs).

    Examples
    --------
    >>> import tempfile, xarray as xr, directionkit as dk
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = dk.Analysis(xr.Dataset({"accuracy": 0.9})).save(f"{tmp}/a.zarr")
    ...     float(dk.open(f"{tmp}/a.zarr")["accuracy"])
    0.9
    """
    source = Path(path)
    if not source.is_dir():
        raise StoreError(f"No directionkit store at {str(source)!r}: no such folder.")
    try:
        try:
            dataset = xr.open_zarr(source, consolidated=True).load()
        except ValueError:  # written elsewhere without consolidated metadata
            dataset = xr.open_zarr(source, consolidated=False).load()
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"{str(source)!r} is not a readable zarr store: {err}") from err
    if VERSION_ATTR not in dataset.attrs:
        raise StoreError(
            f"{str(source)!r} is a zarr store but not a directionkit analysis (no "
            f"{VERSION_ATTR!r} attribute)."
        )
    return Analysis(dataset)
