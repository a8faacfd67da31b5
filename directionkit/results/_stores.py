"""zarr stores written with an integrity record (:func:`write_zarr`) and read back with
every byte checked (:func:`open_dataset`, :func:`read_analysis`)."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from directionkit._version import __version__
from directionkit.errors import StoreError
from directionkit.results._atomic import atomic_directory, recover
from directionkit.results._integrity import check_integrity, seal, unverified
from directionkit.results._schema import (
    DIGEST_ATTR,
    VERSION_ATTR,
    _strings_as_objects,
    check_schema,
)


def write_zarr(
    dataset: xr.Dataset, path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """Write ``dataset`` as a consolidated zarr (format 3) store at ``path``, atomically.

    What :meth:`Analysis.save` does, for any dataset (e.g. a training history): every
    chunk is written, each with a CRC-32C checksum (zarr's ``crc32c`` codec), and the
    root records a random id and the SHA-256 of every metadata and chunk file
    (:data:`DIGEST_ATTR`), so that :func:`open` can tell any change to a byte that
    decides a value; the id is the ownership marker a later ``overwrite=True`` looks
    for.  ``directionkit_version`` is added to the attrs when missing.  See
    :func:`atomic_directory` for what happens on a failure, a concurrent writer or a
    kill.

    Raises
    ------
    StoreError
        ``path`` exists (or appears during the write) and ``overwrite`` is false; it is
        not a directionkit store and ``overwrite`` is true; or the write failed (a full
        disk, say), in which case nothing was written and an existing store is unchanged.

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_zarr(xr.Dataset({"a": ("x", [1, 2])}), f"{tmp}/a.zarr")
    ...     xr.open_zarr(path)["a"].values.tolist()
    [1, 2]
    """
    attrs = {k: v for k, v in dataset.attrs.items() if k != DIGEST_ATTR}  # _seal adds it
    attrs.setdefault(VERSION_ATTR, __version__)
    dataset = dataset.copy()
    dataset.attrs = attrs
    with atomic_directory(path, overwrite=overwrite) as temporary:
        _write_sealed(dataset, temporary)
    return Path(path)


def _write_sealed(
    dataset: xr.Dataset,
    folder: Path,
    *,
    encoding: dict[str, dict[str, Any]] | None = None,
    before_seal: Callable[[Path], object] | None = None,
    skip: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``dataset`` into the new ``folder`` (a temporary of :func:`atomic_directory`):
    every chunk written and checksummed, then sealed (:func:`_seal`).  ``encoding``
    defaults to :func:`_checksummed_encoding`; ``before_seal(folder)`` adds what else
    the store holds; ``skip`` and ``extra`` go to the integrity record."""
    with _no_consolidation_warning():
        dataset.to_zarr(
            folder, mode="w-", zarr_format=3, consolidated=False,
            encoding=_checksummed_encoding(dataset) if encoding is None else encoding,
            write_empty_chunks=True,
        )  # fmt: skip
    if before_seal is not None:
        before_seal(folder)
    _seal(folder, skip, extra)


def _seal(store: Path, skip: Any = None, extra: Mapping[str, Any] | None = None) -> None:
    """Consolidate the freshly written ``store``, then record its digests and random id
    (:func:`directionkit.results._integrity.seal`): the last write to it."""
    import zarr

    with _no_consolidation_warning():
        zarr.consolidate_metadata(store, zarr_format=3)
    seal(store, skip, extra)


def _checksummed_encoding(dataset: xr.Dataset) -> dict[str, dict[str, Any]]:
    """``to_zarr`` encoding giving every variable zarr's default compressor and a CRC-32C
    checksum of every chunk (write with ``write_empty_chunks=True`` too, so that a missing
    chunk file is damage, never a chunk of fill values left out)."""
    return {str(name): {"compressors": _checksummed()} for name in dataset.variables}


def _loaded(source: Path, dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` (opened from ``source``) read into memory; a chunk zarr cannot decode is
    a :class:`StoreError` naming the variable, whatever the codec."""
    for name, variable in dataset.variables.items():
        try:
            variable.load()
        except Exception as err:  # damaged: a checksum mismatch, undecodable bytes
            raise _damaged(source, str(name), f"has a damaged chunk ({err})") from err
    return dataset


def _checksummed() -> tuple[Any, ...]:
    """zarr's default compressor followed by a CRC-32C checksum of every chunk."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return (ZstdCodec(level=0), Crc32cCodec())


@contextlib.contextmanager
def _no_consolidation_warning() -> Iterator[None]:
    # zarr 3 flags consolidated metadata as outside its spec; it is what lets plain
    # xarray.open_zarr read our stores quickly and without a warning
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        yield


def open_dataset(
    path: str | os.PathLike[str], *, verify: bool = True, skip: Any = None
) -> xr.Dataset:
    """A zarr store read into memory, every byte checked first (see :func:`open`): any
    store :func:`write_zarr` wrote, an analysis or a training history.

    ``skip`` (for sweep stores): files outside the store's record, checked elsewhere.

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_zarr(xr.Dataset({"loss": ("epoch", [0.5, 0.25])}), f"{tmp}/h.zarr")
    ...     open_dataset(f"{tmp}/h.zarr")["loss"].values.tolist()
    [0.5, 0.25]
    """
    source = Path(path)
    if not source.is_dir():
        raise StoreError(f"No directionkit store at {str(source)!r}: no such folder.")
    if verify:
        check_integrity(source, skip)
    else:
        unverified(source)
    try:
        try:
            dataset = xr.open_zarr(source, consolidated=True, chunks=None)
        except ValueError:  # written elsewhere without consolidated metadata
            dataset = xr.open_zarr(source, consolidated=False, chunks=None)
    except (OSError, ValueError, KeyError) as err:
        raise StoreError(f"{str(source)!r} is not a readable zarr store: {err}") from err
    _loaded(source, dataset)
    dataset.attrs.pop(DIGEST_ATTR, None)
    return dataset


def read_analysis(path: str | os.PathLike[str], *, verify: bool = True) -> xr.Dataset:
    """The dataset of a directionkit store at ``path``, every byte checked first: what
    :func:`directionkit.open` wraps in an :class:`~directionkit.Analysis` (see there for
    ``path`` and ``verify``).  An overwrite of ``path`` killed half-way is first undone.

    Raises
    ------
    StoreError
        No folder at ``path``, not a zarr store, not a directionkit store, or damaged.

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = write_zarr(xr.Dataset({"accuracy": 0.9}), f"{tmp}/a.zarr")
    ...     float(read_analysis(f"{tmp}/a.zarr")["accuracy"])
    0.9
    """
    source = resolve_store(path) or Path(path)
    recover(source)
    if source.is_file():
        hint = (
            ": to audit an ONNX model, run directionkit analyze MODEL.onnx --data ... (or "
            "dk.analyze), then open the store it writes"
            if source.suffix.lower() == ".onnx"
            else ""
        )
        raise StoreError(
            f"{str(source)!r} is a file, not a directionkit store (the folder that analyze, "
            f"sweep or reproduce write){hint}."
        )
    if not source.is_dir():
        raise StoreError(f"No directionkit store at {str(source)!r}: no such folder.")
    dataset = open_dataset(source, verify=verify)
    if VERSION_ATTR not in dataset.attrs:
        raise StoreError(
            f"{str(source)!r} is a zarr store but not a directionkit analysis (no "
            f"{VERSION_ATTR!r} attribute)."
        )
    check_schema(dataset)
    return _strings_as_objects(dataset)  # as an Analysis holds them


def resolve_store(path: str | os.PathLike[str]) -> Path | None:
    """The store ``path`` stands for: itself when it is a zarr folder, else the
    experiment's store in an experiment's folder (``DIR/NAME/NAME.zarr``), or a training
    run's history (``RUN/history.zarr``); None if none of these.

    Examples
    --------
    >>> resolve_store("/nonexistent") is None
    True
    """
    folder = Path(path)
    if not folder.is_dir():
        return None
    if (folder / "zarr.json").is_file() or (folder / ".zgroup").is_file():
        return folder
    for inner in (folder / f"{folder.name}.zarr", folder / "history.zarr"):
        if inner.is_dir():
            return inner
    return None


def _damaged(source: Path, name: str, what: str) -> StoreError:
    return StoreError(
        f"The store {str(source)!r} is damaged: variable {name!r} {what}. Restore it from "
        "a copy or compute it again."
    )
