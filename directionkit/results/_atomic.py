"""Writing a folder atomically: a new folder is written under a scratch name beside
the target and renamed (or exchanged) into place, one writer at a time; a write killed
half-way is undone by :func:`recover`."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from directionkit.errors import StoreError
from directionkit.results._ownership import mark, not_replaceable, writer_lock


def _write_failed(path: str | os.PathLike[str], err: OSError, *, overwrite: bool) -> StoreError:
    """The error for a write that failed (a full disk, say): nothing saved, nothing lost."""
    return StoreError(
        f"Could not write {str(path)!r}: {err}. Nothing was saved"
        + ("; the existing store there is unchanged." if overwrite else ".")
    )



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
    - One writer at a time: the write holds :func:`directionkit.results.writer_lock`
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
