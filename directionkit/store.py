"""The result of an analysis, and its zarr store.

:class:`Analysis` wraps an :class:`xarray.Dataset` whose variable names and dims are
the public data model of directionkit (:data:`SCHEMA`).  :meth:`Analysis.save`
writes a zarr (format 3) store atomically; :func:`open` reads it back identical,
and plain ``xarray.open_zarr`` reads it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing

from directionkit._integrity import (
    INTEGRITY_ATTR,
    check_integrity,
    file_digest,
    seal,
    unverified,
)
from directionkit._ownership import mark, not_replaceable, writer_lock
from directionkit._version import __version__
from directionkit.errors import InvalidDataError, InvalidParameterError, StoreError

__all__ = [
    "POPULATION_DIMS",
    "SCHEMA",
    "ActivationWriter",
    "Analysis",
    "fingerprint",
    "open",
    "open_activations",
    "open_dataset",
    "population_dims",
    "recover",
    "replaceable",
    "resolve_store",
    "write_zarr",
]

#: Variable name -> dims: the public contract of an analysis.
SCHEMA: dict[str, tuple[str, ...]] = {
    "accuracy": (),
    "loss": (),
    "chance_accuracy": (),
    "near_chance": (),
    "ablation_accuracy": ("scope", "ordering", "fraction"),
    "ablation_order": ("scope", "ordering", "rank"),
    "ablation_auc": ("scope",),
    "ablation_auc_corrected": ("scope",),
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
#: Dims a population of analyses adds in front of a variable's :data:`SCHEMA` dims: models
#: of a sweep or an experiment (``model``), checkpoints over training (``epoch``).
POPULATION_DIMS = ("model", "epoch")
VERSION_ATTR = "directionkit_version"
#: Root attribute of a store :func:`write_zarr` wrote: its random id and the SHA-256 of
#: every metadata and chunk file (:mod:`directionkit._integrity`), which :func:`open` checks.
DIGEST_ATTR = INTEGRITY_ATTR


def fingerprint(*arrays: Any) -> str:
    """A content hash of arrays (dtype, shape and bytes), for model and data identity.

    Anything ``numpy.asarray`` accepts; torch tensors are detached and copied to the
    CPU first (without importing torch), so ones that require grad hash too.

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
        if hasattr(array, "detach") and hasattr(array, "cpu"):  # a torch tensor, maybe on
            array = array.detach().cpu()  # a GPU or requiring grad: hash its values
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


def _schema_dims(dims: tuple[str, ...], expected: tuple[str, ...]) -> bool:
    """Whether ``dims`` are ``expected`` after distinct :data:`POPULATION_DIMS`."""
    if len(dims) < len(expected):
        return False
    lead = dims[: len(dims) - len(expected)]
    return (
        dims[len(lead) :] == expected
        and all(d in POPULATION_DIMS for d in lead)
        and len(set(lead)) == len(lead)
    )


def population_dims(dataset: xr.Dataset) -> tuple[str, ...]:
    """The :data:`POPULATION_DIMS` that ``dataset`` has, in that order.

    Examples
    --------
    >>> import xarray as xr
    >>> population_dims(xr.Dataset({"ablation_auc": (("epoch", "scope"), [[0.5]])}))
    ('epoch',)
    """
    return tuple(d for d in POPULATION_DIMS if d in dataset.dims)


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
        Variables named as in :data:`SCHEMA` must have the dims given there, after any
        :data:`POPULATION_DIMS` (a sweep's or an experiment's ``model``, checkpoints'
        ``epoch``): ``ablation_auc`` is ``(scope,)`` for one model and ``(model, scope)``
        for a population (:attr:`population`).  The store of one experiment of the
        paper (attrs ``experiment``) has that experiment's own layout instead (e.g.
        ``ablation_auc`` ``(model,)`` for the one scope it ablates; see
        :mod:`directionkit.experiments.paper`).  Other variables are allowed.  Unit
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

    def __init__(self, dataset: xr.Dataset) -> None:
        if not isinstance(dataset, xr.Dataset):
            raise InvalidDataError(
                f"Analysis needs an xarray.Dataset. Got {type(dataset).__name__} instead."
            )
        # an experiment's store follows its experiment's own layout (one scope, its
        # conditions: see directionkit.experiments.paper), judged by its own rule
        checked = {} if dataset.attrs.get("experiment") else dataset.data_vars
        for name, var in checked.items():
            expected = SCHEMA.get(str(name))
            if expected is not None and not _schema_dims(tuple(map(str, var.dims)), expected):
                raise InvalidDataError(
                    f"Variable {name!r} of an Analysis must have dims {expected}, after any "
                    f"of the population dims {POPULATION_DIMS}. Got {tuple(var.dims)} instead."
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
        from directionkit._summary import summary_text

        lines = [f"<directionkit.Analysis> (directionkit {self.attrs.get(VERSION_ATTR)})"]
        lines += [f"  {line}" for line in summary_text(self._dataset).splitlines()]
        sizes = ", ".join(f"{d}: {n}" for d, n in self._dataset.sizes.items())
        lines.append(f"  dims: {sizes or '-'}")
        for name, var in self._dataset.data_vars.items():
            lines.append(f"  {name:<20} ({', '.join(map(str, var.dims))})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """The headline numbers as an HTML table, for notebooks."""
        from directionkit._summary import summary_html

        return summary_html(self._dataset)

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
    (:func:`directionkit._integrity.seal`): the last write to it."""
    import zarr

    with _no_consolidation_warning():
        zarr.consolidate_metadata(store, zarr_format=3)
    seal(store, skip, extra)


def _write_failed(path: str | os.PathLike[str], err: OSError, *, overwrite: bool) -> StoreError:
    """The error for a write that failed (a full disk, say): nothing saved, nothing lost."""
    return StoreError(
        f"Could not write {str(path)!r}: {err}. Nothing was saved"
        + ("; the existing store there is unchanged." if overwrite else ".")
    )


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


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """``path`` as a Path, if a store may be written there; else a :class:`StoreError`.

    With ``overwrite``, an existing ``path`` must be something directionkit may replace
    (see :func:`replaceable`).  Leftovers of interrupted writes to ``path`` are dealt
    with first (see :func:`recover`).

    Examples
    --------
    >>> check_writable("/nonexistent-folder/run.zarr", overwrite=False)
    Traceback (most recent call last):
    ...
    directionkit.errors.StoreError: The folder of '/nonexistent-folder/run.zarr' does not exist.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise StoreError(f"The folder of {str(target)!r} does not exist.")
    recover(target)
    if os.path.lexists(target):
        if overwrite:
            _check_replaceable(target)
        elif (reason := replaceable(target)) is not None:
            raise StoreError(f"{str(target)!r} already exists ({reason}); choose another path.")
        else:
            raise StoreError(f"{str(target)!r} already exists; pass overwrite=True to replace it.")
    return target


def replaceable(path: str | os.PathLike[str]) -> str | None:
    """Why ``overwrite=True`` may not replace ``path``, or None when it may.

    Only what directionkit itself wrote is replaced: an empty folder, or a path carrying
    directionkit's ownership marker (a store's integrity record, with the random id made
    when it was written; the ``.directionkit`` file of a run, report or reproduce
    folder).  Anything else (a file, a link, a folder that merely looks like one of
    ours) is refused.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = (pathlib.Path(tmp) / "notes.txt").write_text("mine")
    ...     replaceable(tmp)  # doctest: +ELLIPSIS
    'it carries no directionkit ownership marker (...), so directionkit did not write it'
    """
    target = Path(path)
    for _ in range(3):  # judged again if another writer swapped it while we looked
        try:
            before = os.lstat(target)
            reason = not_replaceable(target)
            after = os.lstat(target)
        except FileNotFoundError:  # gone (moved aside by another writer): nothing to replace
            return None
        if (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino):
            break
    return reason


def _check_replaceable(target: Path) -> None:
    reason = replaceable(target)
    if reason is not None:
        raise StoreError(
            f"Refusing to replace {str(target)!r}: {reason}. Only what directionkit wrote "
            "(it carries directionkit's ownership marker) or an empty folder is replaced; "
            "remove it yourself or choose another path."
        )


# -- atomic, concurrent-safe and recoverable writes ---------------------------------
#
# A store is written under a scratch name beside its target, ``.NAME.tmp-HOST-PID-TOKEN``,
# and renamed into place with a rename that refuses an existing target (renameat2 with
# RENAME_NOREPLACE where the kernel and file system offer it; else the target name is
# claimed with mkdir, which is atomic, and our own empty folder is replaced).  A plain
# rename would silently replace an empty folder created at the target meanwhile.
# Overwriting renames the old store to ``.NAME.old-HOST-PID-TOKEN`` first and deletes it
# (as ``.NAME.del-...``) only once the new one is in place.  The writer's host and
# process id in each scratch name let the next writer or reader tell leftovers of a
# killed process from the work of a live one (see recover()).

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_SCRATCH = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>tmp|old|del)-"
    r"(?:(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-)?(?P<token>[0-9a-f]{12})$"
)
#: Scratch folders this process is writing right now (threads share a process id).
_ACTIVE: set[Path] = set()
#: Test hooks, by stage ("commit": the temporary store is complete; "exchanged": an
#: overwrite has swapped the new store in and the old one out; "swapped": an
#: overwrite has moved the old store aside, the new one is not yet in place).
_HOOKS: dict[str, Callable[[], None]] = {}
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _load_renameat2() -> Any:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.renameat2
    except (OSError, AttributeError, TypeError):  # not Linux/glibc >= 2.28
        return None


_renameat2 = _load_renameat2()


def _rename_noreplace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; FileExistsError if anything is at ``target``."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                      _RENAME_NOREPLACE) == 0:  # fmt: skip
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):  # else: unsupported here
            raise OSError(code, os.strerror(code), str(source), None, str(target))
    os.mkdir(target)  # claims the name atomically: fails if anything is there
    try:
        os.rename(source, target)  # replaces only our own, empty, folder
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(target)
        raise


def _scratch(target: Path, kind: str) -> Path:
    token = uuid.uuid4().hex[:12]
    return target.parent / f".{target.name}.{kind}-{_HOST}-{os.getpid()}-{token}"


def _writer_alive(match: re.Match[str], path: Path) -> bool | None:
    """Whether the writer of a scratch folder still runs: True, False, or None (unknown)."""
    if match["pid"] is None or match["host"] != _HOST or os.name != "posix":
        return None  # (on Windows os.kill would terminate the process, not probe it)
    pid = int(match["pid"])
    if pid == os.getpid():
        return path in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):  # a killed child not yet reaped
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _remove(path: Path, *, settle: bool = False) -> bool:
    """Remove a folder; whether it is gone.

    With ``settle`` (the temporary of a failed write, into which zarr's writer threads
    may still be adding chunks) it must stay gone for a moment; retried for ~3 s.
    """
    for attempt in range(6):
        shutil.rmtree(path, ignore_errors=True)
        if settle:
            time.sleep(0.05 * 2**attempt)
        if not os.path.lexists(path):
            return True
        if not settle:
            time.sleep(0.05 * 2**attempt)
    return False


def recover(path: str | os.PathLike[str]) -> list[str]:
    """Finish or undo interrupted writes to ``path``; what was done, as sentences.

    Called by every save and by :func:`open`, so this is rarely needed by hand.  For
    each scratch folder beside ``path`` whose writer is no longer running: a temporary
    store is removed; an old store moved aside by an overwrite is put back when
    ``path`` is missing (the overwrite was killed between its two renames), and removed
    when ``path`` holds a directionkit store (the overwrite had finished).  What cannot
    be judged (a writer on another machine, a scratch name from an older directionkit,
    which did not record the writer) is left alone and reported in a warning.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     recover(f"{tmp}/run.zarr")
    []
    """
    target = Path(path)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    done: list[str] = []
    unknown: list[str] = []
    backups: list[Path] = []
    for name in names:
        match = _SCRATCH.match(name)
        if match is None or match["name"] != target.name:
            continue
        scratch = target.parent / name
        alive = _writer_alive(match, scratch)
        if alive:
            continue
        if alive is None:
            unknown.append(str(scratch))
        elif match["kind"] == "old":
            backups.append(scratch)
        elif _remove(scratch):
            done.append(f"removed {str(scratch)!r}, left by an interrupted write")
    for backup in sorted(backups, key=_mtime, reverse=True):
        if not os.path.lexists(backup):  # another process recovered it meanwhile
            continue
        if not os.path.lexists(target):
            with contextlib.suppress(OSError):
                _rename_noreplace(backup, target)
                done.append(
                    f"restored {str(target)!r} from {str(backup)!r}: an overwrite of it was "
                    "interrupted before the new store was in place"
                )
                continue
        if replaceable(target) is None:
            deleting = _scratch(target, "del")
            with contextlib.suppress(OSError):
                os.rename(backup, deleting)
                if _remove(deleting):
                    done.append(f"removed {str(backup)!r}, the old store of a finished overwrite")
                    continue
        if os.path.lexists(backup):
            unknown.append(str(backup))
    if done:
        warnings.warn("directionkit: " + "; ".join(done) + ".", RuntimeWarning, stacklevel=3)
    if unknown:
        warnings.warn(
            f"directionkit: leftovers of earlier writes to {str(target)!r} were kept, since "
            f"their writer may still be running or the target is not a directionkit store: "
            f"{', '.join(map(repr, unknown))}. Remove them yourself once no write is under way.",
            RuntimeWarning,
            stacklevel=3,
        )
    return done


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@contextlib.contextmanager
def atomic_directory(
    path: str | os.PathLike[str], *, overwrite: bool, kind: str | None = None
) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success move it to ``path``.

    - ``path`` never holds a half-written store: on any exception the temporary folder
      is removed and an existing ``path`` is left as it was.
    - Without ``overwrite``, ``path`` is checked again at the end: if something
      appeared there meanwhile (another process saving to the same path, a folder
      made by hand), it is left untouched and a :class:`StoreError` says nothing was
      saved.  Of concurrent writers, exactly one succeeds.
    - With ``overwrite``, ``path`` (when it exists, at the start and again at the end)
      must be replaceable (:func:`replaceable`); the new folder and the old one swap
      names in one atomic rename (``renameat2`` with ``RENAME_EXCHANGE``), so ``path``
      never stops existing, then the old one is deleted.  Where the kernel cannot
      exchange, the old one is moved aside first; a process killed between the two
      moves leaves it under a scratch name, and the next save or :func:`open` puts it
      back.
    - One writer at a time: the write holds :func:`directionkit._ownership.writer_lock`
      on ``path`` throughout; a second writer fails at once, naming the first.
    - ``kind`` (a folder that is not a zarr store: a report) writes directionkit's
      ownership marker into the folder; a zarr store carries its own (:func:`write_zarr`).
    - Leftovers of killed writers are cleaned by the next save (:func:`recover`).

    Raises
    ------
    StoreError
        See above, and :func:`check_writable`; an ``OSError`` while writing (a full
        disk, say) becomes a StoreError saying that nothing was saved.
    """
    target = check_writable(path, overwrite=overwrite)
    with writer_lock(target, "a save"):
        target = check_writable(path, overwrite=overwrite)  # as it is now that we hold it
        temporary = _scratch(target, "tmp")
        _ACTIVE.add(temporary)
        try:
            try:
                if kind is not None:
                    os.mkdir(temporary)
                    mark(temporary, kind)
                yield temporary
            except StoreError:
                raise
            except OSError as err:
                raise _write_failed(target, err, overwrite=overwrite) from err
            _commit(temporary, target, overwrite=overwrite)
        finally:
            _cleanup(temporary)


def _cleanup(temporary: Path) -> None:
    """Remove the temporary folder of a write (the new one of a failed write, or the old
    one an overwrite exchanged out)."""
    _ACTIVE.discard(temporary)
    if os.path.lexists(temporary) and not _remove(temporary, settle=True):
        warnings.warn(
            f"directionkit: could not remove the temporary {str(temporary)!r} of a failed "
            "write (files kept appearing in it); the next save to the same path removes it.",
            RuntimeWarning,
            stacklevel=4,
        )


def _swap_in(temporary: Path, target: Path, backup: Path) -> None:
    """The second half of an overwrite: the old store is at ``backup``; move the new in."""
    if "swapped" in _HOOKS:
        _HOOKS["swapped"]()
    try:
        _rename_noreplace(temporary, target)
    except OSError as err:
        try:
            _rename_noreplace(backup, target)
        except OSError:
            raise StoreError(
                f"Could not move the new store to {str(target)!r} ({err}): something else was "
                f"put there meanwhile (another process saving to it?). Nothing was saved; the "
                f"previous store was moved aside to {str(backup)!r} (the next save or open "
                "deletes it if a directionkit store is then in place, else keeps it)."
            ) from err
        raise StoreError(
            f"Could not move the new store to {str(target)!r} ({err}); nothing was saved "
            "and the previous store is in place."
        ) from err
    deleting = _scratch(target, "del")
    os.rename(backup, deleting)
    _remove(deleting)


def _rename_exchange(source: Path, target: Path) -> bool:
    """Swap the names of two existing paths atomically; False where the kernel or file
    system cannot (then nothing was done)."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                  _RENAME_EXCHANGE) == 0:  # fmt: skip
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.ENOENT):
        return False  # unsupported here, or the target went: the plain path decides
    raise OSError(code, os.strerror(code), str(source), None, str(target))


def _commit(temporary: Path, target: Path, *, overwrite: bool) -> None:
    """Put the complete folder ``temporary`` at ``target``; with ``overwrite`` the old
    one (which must be replaceable) ends at ``temporary``, for the caller to delete."""
    if "commit" in _HOOKS:
        _HOOKS["commit"]()
    if not os.path.isdir(temporary):
        raise StoreError(f"Nothing was written for {str(target)!r}.")
    if overwrite and os.path.lexists(target):
        _check_replaceable(target)
        if _rename_exchange(temporary, target):
            if "exchanged" in _HOOKS:
                _HOOKS["exchanged"]()
            return
    backup = _scratch(target, "old")
    _ACTIVE.add(backup)  # (another thread's recover() must not take it for a leftover)
    try:
        if overwrite and os.path.lexists(target):
            _check_replaceable(target)
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile: nothing to replace
                os.rename(target, backup)
        if overwrite and os.path.lexists(backup):
            _swap_in(temporary, target, backup)
            return
    finally:
        _ACTIVE.discard(backup)
    try:
        _rename_noreplace(temporary, target)
    except FileExistsError as err:
        raise StoreError(
            f"{str(target)!r} appeared while this store was being written (another process "
            "saving to the same path?); it was left as it is and nothing was saved; pass "
            "overwrite=True to replace it."
        ) from err
    except OSError as err:
        if err.errno != errno.ENOTEMPTY:
            raise
        raise StoreError(
            f"{str(target)!r} appeared while this store was being written; it was left as it "
            "is and nothing was saved."
        ) from err


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
    return Analysis(dataset)


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
