"""Activation stores: raw activations recorded batch by batch (:class:`ActivationWriter`)
and read back lazily, each chunk checked the first time it is read (:func:`open_activations`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from directionkit._version import __version__
from directionkit.errors import InvalidDataError, StoreError
from directionkit.results._atomic import _write_failed, atomic_directory, recover
from directionkit.results._integrity import check_integrity, file_digest, unverified
from directionkit.results._schema import VERSION_ATTR, _json_attrs
from directionkit.results._stores import _checksummed, _damaged, _no_consolidation_warning, _seal

ACTIVATION_STORE = "activation_store"


def _is_activation_chunk(relative: str) -> bool:
    """Chunks of activations, checked as they are read rather than when opened."""
    return relative.startswith("activations/c/")


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
        self._path, self._overwrite = path, overwrite
        self._context = atomic_directory(path, overwrite=overwrite)
        self._temporary = self._context.__enter__()
        try:
            self._create(sites, chunk_size, attrs)
        except BaseException as err:  # (an OSError comes back from __exit__ as a StoreError)
            self._context.__exit__(type(err), err, err.__traceback__)
            raise

    def _create(
        self, sites: Mapping[str, int], chunk_size: int, attrs: Mapping[str, Any] | None
    ) -> None:
        import zarr

        n_units = int(sum(sites.values()))
        # every chunk written (even all zeros) and checksummed, as write_zarr does
        checked: dict[str, Any] = {
            "compressors": _checksummed(),
            "config": {"write_empty_chunks": True},
        }
        group = zarr.open_group(self._temporary, mode="w-", zarr_format=3)
        group.attrs.update(
            _json_attrs({**(attrs or {}), "kind": ACTIVATION_STORE, VERSION_ATTR: __version__})
        )
        self._acts = group.create_array(
            "activations", shape=(0, n_units), chunks=(chunk_size, n_units), dtype="float32",
            dimension_names=("example", "unit"), fill_value=0.0, **checked,
        )  # fmt: skip
        self._acts.attrs["coordinates"] = "label site unit_index"
        self._labels = group.create_array(
            "label", shape=(0,), chunks=(chunk_size,), dtype="int64",
            dimension_names=("example",), fill_value=0, **checked,
        )  # fmt: skip
        site = group.create_array(
            "site", shape=(n_units,), dtype=str, dimension_names=("unit",), **checked
        )
        site[:] = np.concatenate([np.full(n, name, dtype=object) for name, n in sites.items()])
        index = group.create_array(
            "unit_index", shape=(n_units,), dtype="int64", dimension_names=("unit",), **checked
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
        try:
            self._acts.resize((end, acts.shape[1]))
            self._acts[self.n_examples : end] = acts
            self._labels.resize((end,))
            self._labels[self.n_examples : end] = y
        except OSError as err:
            raise _write_failed(self._path, err, overwrite=self._overwrite) from err
        self.n_examples = end

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        if kind is None:
            try:
                _seal(self._temporary)
            except BaseException as err:  # nothing appears at the path; the temporary goes
                self._context.__exit__(type(err), err, err.__traceback__)
                raise
        self._context.__exit__(kind, error, trace)


def open_activations(path: str | os.PathLike[str], *, verify: bool = True) -> xr.DataArray:
    """Open an activation store lazily: nothing is read until values are asked for.

    The metric functions (:func:`directionkit.class_mean`,
    :func:`directionkit.class_selectivity`, :func:`directionkit.mutual_information`)
    accept the result directly and read it chunk by chunk; labels come from its
    ``label`` coordinate.  Opening checks the metadata, the coordinates and that every
    chunk file is there (see :func:`open`); each chunk of activations is checked
    against the SHA-256 recorded for it as it is read, and one that differs is a
    :class:`StoreError` naming it.  A store without an integrity record opens only with
    ``verify=False`` (then nothing is checked, with a warning).

    Returns
    -------
    xarray.DataArray
        Dims ``(example, unit)``; coordinates ``label``, ``site``, ``unit_index``.
    """
    source = Path(path)
    recover(source)
    if not source.is_dir():
        raise StoreError(f"No activation store at {str(source)!r}: no such folder.")
    record = None
    if verify:
        record = check_integrity(source, lazy=_is_activation_chunk)
    else:
        unverified(source)
    try:
        dataset = xr.open_zarr(source, chunks=None, consolidated=True)
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"{str(source)!r} is not a readable zarr store: {err}") from err
    if dataset.attrs.get("kind") != ACTIVATION_STORE or "activations" not in dataset:
        raise StoreError(f"{str(source)!r} is not a directionkit activation store.")
    import zarr

    coords = dataset["activations"].coords
    for name, coord in coords.items():
        try:
            coord.load()
        except Exception as err:  # a damaged chunk of a coordinate
            raise _damaged(source, str(name), f"has a damaged chunk ({err})") from err
    lazy = dataset["activations"].variable
    with _no_consolidation_warning():
        array = zarr.open_array(source / "activations", mode="r")
    checked = xr.Variable(
        lazy.dims,
        indexing.LazilyIndexedArray(
            _CheckedArray(array, "activations", source, None if record is None else record["files"])
        ),
        attrs=lazy.attrs,
    )
    result = xr.DataArray(checked, coords=coords, name="activations")
    result.encoding = dict(lazy.encoding)  # the chunking, which readers follow
    return result


class _CheckedArray(BackendArray):
    """A zarr array read lazily by xarray, whose read errors name the store and variable."""

    def __init__(
        self, array: Any, name: str, source: Path, digests: Mapping[str, str] | None
    ) -> None:
        self._array, self._name, self._source = array, name, source
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self._digests = digests  # relative chunk path -> SHA-256 (None: unverified)
        self._checked: set[int] = set()

    def __getitem__(self, key: Any) -> Any:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read
        )

    def _verify_rows(self, rows: Any) -> None:
        """Check the chunks holding ``rows`` (an index along the first axis) against the
        digests recorded for them, once each."""
        if self._digests is None or not self.shape[0]:
            return
        size = int(self._array.chunks[0])
        if isinstance(rows, slice):
            span = range(*rows.indices(self.shape[0]))
            if not span:
                return
            low, high = min(span[0], span[-1]), max(span[0], span[-1])
            if abs(span.step) == 1:  # every chunk from the first row's to the last's
                chunks = set(range(low // size, high // size + 1))
            else:  # a stride may pass over chunks: only those it lands in
                chunks = {i // size for i in span}
        else:
            chunks = {int(i) // size for i in np.atleast_1d(np.asarray(rows)).ravel()}
        tail = "/0" * (len(self.shape) - 1)
        for chunk in sorted(chunks - self._checked):
            relative = f"{self._name}/c/{chunk}{tail}"
            expected = self._digests.get(relative)
            try:
                actual = file_digest(self._source / relative)
            except OSError:
                actual = None
            if expected is None or actual != expected:
                raise _damaged(
                    self._source, self._name,
                    f"has a damaged chunk {relative!r}: its bytes differ from those "
                    "written (changed, damaged, missing, or copied from another store)",
                )  # fmt: skip
            self._checked.add(chunk)

    def _read(self, key: tuple[Any, ...]) -> Any:
        self._verify_rows(key[0])
        try:
            return self._array.oindex[key]
        except Exception as err:  # checksum mismatch, undecodable bytes
            raise _damaged(self._source, self._name, f"has a damaged chunk ({err})") from err
