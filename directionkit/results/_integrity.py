"""What binds a directionkit zarr store to the bytes it was written with.

A store's root ``zarr.json`` carries :data:`INTEGRITY_ATTR`: a random id made when the
store was written (its ownership marker, see :mod:`directionkit.results._ownership`) and the
SHA-256 of every file that decides a value, keyed by its path in the store.

- Every ``zarr.json`` (the metadata as stored: dtypes, shapes, codecs, fill values,
  attributes, encodings such as ``scale_factor``, and the root's consolidated copy of
  them), hashed as bytes; the root's without the record itself.
- Every chunk file, hashed as bytes and keyed by its position (``ablation_auc/c/0``), so
  a chunk copied from another store, or moved within this one, no longer matches.

Hidden files (names starting with ``.``) are not part of a store and are not hashed.
Checking is all or nothing: a missing record, a missing, extra or changed file, or a
symbolic link is a :class:`~directionkit.errors.StoreError` naming the file and the
variable, before a value is read.  Plain readers (``xarray.open_zarr``) are not
affected: the record is an attribute.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from directionkit.errors import DirectionKitWarning, StoreError

__all__ = [
    "INTEGRITY_ATTR",
    "check_integrity",
    "check_files",
    "digests",
    "read_record",
    "seal",
    "unverified",
]

#: Root attribute of every store directionkit writes: ``{"id", "algorithm", "files"}``.
INTEGRITY_ATTR = "directionkit_integrity"
_META = "zarr.json"
#: What :func:`digests` leaves out of a store: ``skip(relative_path) -> bool``.
Skip = Callable[[str], bool]


def _root_metadata(meta: Mapping[str, Any]) -> bytes:
    """The root ``zarr.json`` as hashed: its JSON without :data:`INTEGRITY_ATTR`."""
    meta = dict(meta)
    attributes = {k: v for k, v in (meta.get("attributes") or {}).items() if k != INTEGRITY_ATTR}
    meta["attributes"] = attributes
    return json.dumps(meta, sort_keys=True, allow_nan=True).encode()


def _damage(store: Path, what: str) -> StoreError:
    return StoreError(
        f"The store {str(store)!r} is damaged: {what}. Restore it from a copy or compute it "
        "again."
    )


def _read_root(store: Path) -> dict[str, Any]:
    try:
        meta = json.loads((store / _META).read_bytes())
    except (OSError, ValueError) as err:
        raise _damage(store, f"its {_META} cannot be read ({err})") from err
    if not isinstance(meta, dict):
        raise _damage(store, f"its {_META} is not a JSON object")
    return meta


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(store: Path, skip: Skip | None) -> dict[str, Path]:
    """Every non-hidden file of ``store`` by its relative POSIX path (links are damage)."""
    found: dict[str, Path] = {}
    for root, dirs, names in os.walk(store):
        for name in [*dirs, *names]:
            if not name.startswith(".") and os.path.islink(os.path.join(root, name)):
                relative = Path(root, name).relative_to(store).as_posix()
                raise _damage(store, f"{relative!r} is a symbolic link, which it never holds")
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(root, name)
            relative = path.relative_to(store).as_posix()
            if skip is None or not skip(relative):
                found[relative] = path
    return found


def digests(store: Path, skip: Skip | None = None) -> dict[str, str]:
    """The SHA-256 of every file of ``store`` that :func:`seal` records."""
    result = {}
    for relative, path in _files(store, skip).items():
        if relative == _META:
            result[relative] = hashlib.sha256(_root_metadata(_read_root(store))).hexdigest()
        else:
            result[relative] = file_digest(path)
    return result


def seal(store: Path, skip: Skip | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """Record the digests of the freshly written ``store`` in its root; its new random id.

    Call last, once nothing else will be written (consolidate first): anything written
    after this makes the store read as damaged.  ``extra`` adds keys to the record
    (covered by nothing but the record itself).
    """
    store_id = uuid.uuid4().hex
    record = {"id": store_id, "algorithm": "sha256", **(extra or {})}
    record["files"] = digests(store, skip)
    meta = _read_root(store)
    meta.setdefault("attributes", {})[INTEGRITY_ATTR] = record
    (store / _META).write_text(json.dumps(meta, indent=2, allow_nan=True))
    return store_id


def read_record(store: Path) -> dict[str, Any] | None:
    """The integrity record of ``store``; None when it has none (or no readable root)."""
    try:
        meta = json.loads((store / _META).read_bytes())
        record = meta["attributes"][INTEGRITY_ATTR]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("id"), str):
        return None
    if not isinstance(record.get("files"), dict):
        return None
    return record


def _variable(relative: str) -> str:
    """The variable a store file belongs to, for a message."""
    parts = relative.split("/")
    if "c" in parts:
        return "/".join(parts[: parts.index("c")])
    return "/".join(parts[:-1]) or "(root)"


def check_files(store: Path, expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    """A :class:`StoreError` naming the first file where ``actual`` differs from
    ``expected`` (both: relative path -> SHA-256)."""
    for relative in sorted(set(expected) | set(actual)):
        want, got = expected.get(relative), actual.get(relative)
        if want == got:
            continue
        variable = _variable(relative)
        is_meta = relative.endswith(_META)
        where = "the store's root" if variable == "(root)" else f"variable {variable!r}"
        if got is None:
            what = f"{where} is missing its file {relative!r}" + (
                "" if relative.endswith(_META) else " (a chunk file)"
            )
        elif want is None:
            what = f"{where} has a file {relative!r} that was not written with it"
        elif is_meta:
            what = (
                f"the metadata of {where} ({relative!r}: names, dtypes, shapes, codecs, "
                "encodings or attributes) was changed after it was written"
            )
        else:
            what = (
                f"{where} has a damaged chunk {relative!r}: its bytes differ from those "
                "written (changed, damaged, or copied from another store)"
            )
        raise _damage(store, what)


def check_integrity(
    store: Path, skip: Skip | None = None, lazy: Skip | None = None
) -> dict[str, Any]:
    """Check ``store`` against its record; the record.

    ``skip``: files outside the record (as given to :func:`seal`).  ``lazy``: files of the
    record checked later, as they are read (their presence is checked now).

    Raises
    ------
    StoreError
        No record (a store from elsewhere, or from before directionkit wrote one: open
        it with ``verify=False``), or a file that differs from the record.
    """
    record = read_record(store)
    if record is None:
        raise StoreError(
            f"{str(store)!r} has no integrity record ({INTEGRITY_ATTR!r} in its root "
            "zarr.json), so its values cannot be verified: it was written by an older "
            "directionkit or by another program, or the record was removed. Pass "
            "verify=False to open it unverified, at your own risk."
        )
    expected: dict[str, str] = record["files"]
    per_model = record.get("per_model")
    if skip is None and isinstance(per_model, dict):
        skip = per_model_files(per_model)
    files = _files(store, skip)
    actual: dict[str, str] = {}
    for relative, path in files.items():
        if lazy is not None and lazy(relative) and relative in expected:
            actual[relative] = expected[relative]  # checked as read
        elif relative == _META:
            actual[relative] = hashlib.sha256(_root_metadata(_read_root(store))).hexdigest()
        else:
            actual[relative] = file_digest(path)
    check_files(store, expected, actual)
    if isinstance(per_model, dict):
        check_rows(store, str(per_model.get("group")))
    return record


def per_model_files(per_model: Mapping[str, Any]) -> Skip:
    """The files of a population store (a sweep's) that its root's record leaves out:
    its models' groups, and the chunks its tasks write, one row per model."""
    group = str(per_model.get("group"))
    variables = frozenset(map(str, per_model.get("variables") or ()))

    def skip(relative: str) -> bool:
        parts = relative.split("/")
        if parts[0] == group:
            return len(parts) > 2
        return parts[0] in variables and len(parts) > 2 and parts[1] == "c"

    return skip


def row_files(store: Path, index: int, variables: Any) -> dict[str, str]:
    """Relative path -> SHA-256 of the chunks of row ``index`` of ``variables``."""
    found = {}
    for name in sorted(variables):
        chunk = store / name / "c" / str(index)
        if chunk.is_file():
            found[chunk.relative_to(store).as_posix()] = chunk
        elif chunk.is_dir():
            for file in sorted(p for p in chunk.rglob("*") if p.is_file()):
                found[file.relative_to(store).as_posix()] = file
    return {relative: file_digest(file) for relative, file in found.items()}


def check_rows(store: Path, group: str) -> None:
    """Check the row of the root that each model's group (``group/NAME``) recorded when
    its task wrote it (a :class:`StoreError` naming the first file that differs)."""
    folder = store / group
    for member in sorted(folder.iterdir()) if folder.is_dir() else ():
        if member.name.startswith(".") or not member.is_dir():
            continue
        record = read_record(member)
        if record is None or "sweep_row" not in record:
            continue  # a model's group without its record: reading it says so
        expected = record["sweep_row"]
        variables = {relative.split("/")[0] for relative in expected}
        check_files(store, expected, row_files(store, int(record["sweep_index"]), variables))


def unverified(store: Path) -> None:
    """Warn that ``store`` is read without checking it (``verify=False``)."""
    warnings.warn(
        f"directionkit: {str(store)!r} is read without verifying it (verify=False): its "
        "values may not be those it was written with.",
        DirectionKitWarning,
        stacklevel=3,
    )
