"""The result of an analysis, and its zarr store.

:class:`Analysis` wraps an :class:`xarray.Dataset` whose variable names and dims are
the public data model of directionkit (:data:`SCHEMA`).  :meth:`Analysis.save`
writes a zarr (format 3) store atomically; :func:`open` reads it back identical,
and plain ``xarray.open_zarr`` reads it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from directionkit._version import __version__
from directionkit.errors import InvalidDataError, InvalidParameterError, StoreError

__all__ = [
    "SCHEMA",
    "ActivationWriter",
    "Analysis",
    "fingerprint",
    "open",
    "open_activations",
    "write_zarr",
]

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

    def plot(self) -> dict[str, Any]:
        """The paper's figures for this analysis, as matplotlib Figures by name.

        See :func:`directionkit.plots.plot_analysis`; a figure whose variables the
        analysis lacks is left out.  matplotlib is imported only here.

        Examples
        --------
        >>> import xarray as xr
        >>> sorted(Analysis(xr.Dataset({"selectivity": ("unit", [0.1, 0.5])})).plot())
        ['selectivity_by_depth', 'selectivity_histograms']
        """
        from directionkit.plots import plot_analysis

        return dict(plot_analysis(self))

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
        return write_zarr(self._dataset, path, overwrite=overwrite)


def write_zarr(
    dataset: xr.Dataset, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``dataset`` as a consolidated zarr (format 3) store at ``path``, atomically.

    What :meth:`Analysis.save` does, for any dataset (e.g. a training history).

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_zarr(xr.Dataset({"a": ("x", [1, 2])}), f"{tmp}/a.zarr")
    ...     xr.open_zarr(path)["a"].values.tolist()
    [1, 2]
    """
    with atomic_directory(path, overwrite=overwrite) as temporary:
        with _no_consolidation_warning():
            dataset.to_zarr(temporary, mode="w-", zarr_format=3, consolidated=True)
    return Path(path)


@contextlib.contextmanager
def _no_consolidation_warning() -> Iterator[None]:
    # zarr 3 flags consolidated metadata as outside its spec; it is what lets plain
    # xarray.open_zarr read our stores quickly and without a warning
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """``path`` as a Path, if a store may be written there; else a :class:`StoreError`.

    Examples
    --------
    >>> check_writable("/nonexistent-folder/run.zarr", overwrite=False)
    Traceback (most recent call last):
    ...
    directionkit.errors.StoreError: The folder of '/nonexistent-folder/run.zarr' does not exist.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise StoreError(f"{str(target)!r} already exists; pass overwrite=True to replace it.")
    if not target.parent.is_dir():
        raise StoreError(f"The folder of {str(target)!r} does not exist.")
    return target


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success rename it to ``path``.

    ``path`` never holds a half-written store: on any exception the temporary folder is
    removed and an existing ``path`` is left as it was; with ``overwrite`` an existing
    ``path`` is replaced only once the new one is complete.
    """
    target = check_writable(path, overwrite=overwrite)
    token = uuid.uuid4().hex[:12]
    temporary = target.parent / f".{target.name}.tmp-{token}"
    backup = target.parent / f".{target.name}.old-{token}"
    try:
        yield temporary
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


ACTIVATION_STORE = "activation_store"


class ActivationWriter:
    """Write an activation store batch by batch, atomically (a context manager).

    The store is a zarr group with the array ``activations`` (dims ``example, unit``,
    float32, chunked along ``example``) and the coordinates ``label`` (``example``),
    ``site`` and ``unit_index`` (``unit``).  It appears at ``path`` only when the
    ``with`` block ends without an error.

    Parameters
    ----------
    path : str or path-like
    sites : mapping of str to int
        Site name -> number of units, in the order the units are laid out.
    chunk_size : int
        Examples per chunk.
    attrs : mapping, optional
        JSON-serialisable attributes (model and data identity, ...).
    overwrite : bool

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with ActivationWriter(f"{tmp}/acts.zarr", {"fc1": 2}, chunk_size=2) as writer:
    ...         writer.append(np.ones((3, 2)), [0, 1, 1])
    ...     open_activations(f"{tmp}/acts.zarr").shape
    (3, 2)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sites: Mapping[str, int],
        *,
        chunk_size: int = 4096,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self._context = atomic_directory(path, overwrite=overwrite)
        self._temporary = self._context.__enter__()
        try:
            self._create(sites, chunk_size, attrs)
        except BaseException as err:
            self._context.__exit__(type(err), err, err.__traceback__)
            raise

    def _create(
        self, sites: Mapping[str, int], chunk_size: int, attrs: Mapping[str, Any] | None
    ) -> None:
        import zarr

        n_units = int(sum(sites.values()))
        group = zarr.open_group(self._temporary, mode="w-", zarr_format=3)
        group.attrs.update(
            _json_attrs({**(attrs or {}), "kind": ACTIVATION_STORE, VERSION_ATTR: __version__})
        )
        self._acts = group.create_array(
            "activations", shape=(0, n_units), chunks=(chunk_size, n_units), dtype="float32",
            dimension_names=("example", "unit"), fill_value=0.0,
        )  # fmt: skip
        self._acts.attrs["coordinates"] = "label site unit_index"
        self._labels = group.create_array(
            "label", shape=(0,), chunks=(chunk_size,), dtype="int64",
            dimension_names=("example",), fill_value=0,
        )  # fmt: skip
        site = group.create_array("site", shape=(n_units,), dtype=str, dimension_names=("unit",))
        site[:] = np.concatenate([np.full(n, name, dtype=object) for name, n in sites.items()])
        index = group.create_array(
            "unit_index", shape=(n_units,), dtype="int64", dimension_names=("unit",)
        )
        index[:] = np.concatenate([np.arange(n) for n in sites.values()])
        self.n_examples = 0

    def append(self, activations: Any, labels: Any) -> None:
        """Append a batch: activations ``(B, n_units)`` and integer labels ``(B,)``."""
        acts = np.asarray(activations, dtype=np.float32)
        y = np.asarray(labels, dtype=np.int64)
        if acts.ndim != 2 or acts.shape[1] != self._acts.shape[1] or y.shape != (acts.shape[0],):
            raise InvalidDataError(
                f"ActivationWriter.append needs activations (B, {self._acts.shape[1]}) and B "
                f"labels. Got {acts.shape} and {y.shape}."
            )
        end = self.n_examples + acts.shape[0]
        self._acts.resize((end, acts.shape[1]))
        self._acts[self.n_examples : end] = acts
        self._labels.resize((end,))
        self._labels[self.n_examples : end] = y
        self.n_examples = end

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None:
            import zarr

            with _no_consolidation_warning():
                zarr.consolidate_metadata(self._temporary)
        self._context.__exit__(kind, error, trace)


def open_activations(path: str | os.PathLike[str]) -> xr.DataArray:
    """Open an activation store lazily: nothing is read until values are asked for.

    The metric functions (:func:`directionkit.class_mean`,
    :func:`directionkit.class_selectivity`, :func:`directionkit.mutual_information`)
    accept the result directly and read it chunk by chunk; labels come from its
    ``label`` coordinate.

    Returns
    -------
    xarray.DataArray
        Dims ``(example, unit)``; coordinates ``label``, ``site``, ``unit_index``.
    """
    source = Path(path)
    if not source.is_dir():
        raise StoreError(f"No activation store at {str(source)!r}: no such folder.")
    try:
        dataset = xr.open_zarr(source, chunks=None, consolidated=True)
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"{str(source)!r} is not a readable zarr store: {err}") from err
    if dataset.attrs.get("kind") != ACTIVATION_STORE or "activations" not in dataset:
        raise StoreError(f"{str(source)!r} is not a directionkit activation store.")
    return dataset["activations"]
