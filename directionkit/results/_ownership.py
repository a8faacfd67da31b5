"""What directionkit may replace, and who may write: ownership markers and writer locks.

**Ownership.**  Whatever directionkit writes carries a marker that only it writes, with a
random id made at creation: a store, the integrity record in its root ``zarr.json``
(:mod:`directionkit.results._integrity`); a folder (a training run, a report, a ``reproduce``
folder), the file :data:`MARKER`.  ``overwrite`` replaces only a path carrying one (or an
empty folder); anything else is refused, naming the path.  No heuristics: a folder that
merely looks like a report is not one.

**One writer.**  :func:`writer_lock` holds an OS lock (``flock``; ``msvcrt.locking`` on
Windows) on ``.NAME.lock`` beside the path for a whole write.  A second writer fails at
once, naming the holder's process id; the kernel releases the lock of a process that
dies, so a stale lock file is simply taken over.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

from directionkit._version import __version__
from directionkit.errors import StoreError
from directionkit.results._integrity import read_record

__all__ = ["MARKER", "mark", "marker_id", "not_replaceable", "writer_lock"]

#: The ownership marker of a folder directionkit made (a run, a report, a reproduce folder).
MARKER = ".directionkit"


def mark(folder: Path, kind: str) -> str:
    """Write the ownership marker of ``kind`` into ``folder`` (a fresh random id); the id."""
    marker_id = uuid.uuid4().hex
    text = json.dumps(
        {
            "directionkit": __version__,
            "kind": kind,
            "id": marker_id,
            "created": datetime.datetime.now(datetime.UTC).isoformat(),
        },
        indent=2,
    )
    temporary = folder / f"{MARKER}.tmp-{os.getpid()}"
    try:
        temporary.write_text(text + "\n")
        os.replace(temporary, folder / MARKER)
    except OSError as err:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise StoreError(f"Could not write {str(folder / MARKER)!r}: {err}.") from err
    return marker_id


def marker_id(folder: Path) -> str | None:
    """The id of the ownership marker of ``folder`` (a marker file or a store's integrity
    record); None when it carries none."""
    path = folder / MARKER
    if path.is_file() and not path.is_symlink():
        try:
            found = json.loads(path.read_bytes()[: 1 << 16]).get("id")
        except (OSError, ValueError, AttributeError):
            found = None
        if isinstance(found, str) and found:
            return found
    record = read_record(folder)
    return None if record is None else str(record["id"])


def not_replaceable(target: Path) -> str | None:
    """Why ``overwrite`` may not replace ``target``, or None when it may."""
    if target.is_symlink():
        return "it is a symbolic link"
    if not target.is_dir():
        return "it is a file, not something directionkit wrote"
    if not any(target.iterdir()):
        return None
    if marker_id(target) is not None:
        return None
    return (
        f"it carries no directionkit ownership marker (a {MARKER} file, or the integrity "
        "record of a store), so directionkit did not write it"
    )


# ------------------------------------------------------------------------- locks

#: Locks this process holds: path -> [thread id, depth] (a thread may nest its writes).
_HELD: dict[str, list[int]] = {}
_GUARD = threading.Lock()


def _lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 200, 0).decode(errors="replace").split()
        if text and text[0].isdigit():
            return text[0]
    return "unknown"


def _acquire(target: Path, what: str) -> int:
    lock = _lock_path(target)
    for _ in range(100):  # retried only when a releasing holder unlinked the file meanwhile
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StoreError(f"Could not create the lock file {str(lock)!r}: {err}.") from err
        if not _try_lock(fd):
            holder = _holder(fd)
            os.close(fd)
            raise StoreError(
                f"{str(target)!r} is being written by another process (process id {holder}, "
                f"which holds {str(lock)!r}); {what} waits for no one: let that one finish "
                "(or stop it), then rerun."
            )
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    raise StoreError(f"Could not take the lock {str(lock)!r}: it kept being replaced.")


@contextlib.contextmanager
def writer_lock(path: str | os.PathLike[str], what: str = "this write") -> Iterator[None]:
    """Hold the one-writer lock of ``path`` for the ``with`` block.

    The lock file is ``.NAME.lock`` in the folder of ``path`` (which must exist); it is
    removed on release.  The same thread may nest locks on one path; another thread or
    process gets a :class:`StoreError` at once, naming the holder's process id.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with writer_lock(f"{tmp}/run"):
    ...         (pathlib.Path(tmp) / ".run.lock").is_file()
    True
    """
    target = Path(os.path.abspath(path))
    key = str(target)
    me = threading.get_ident()
    with _GUARD:
        held = _HELD.get(key)
        if held is not None and held[0] == me:
            held[1] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            with _GUARD:
                _HELD[key][1] -= 1
        return
    if not target.parent.is_dir():
        raise StoreError(f"The folder of {str(target)!r} does not exist.")
    fd = _acquire(target, what)
    with _GUARD:
        _HELD[key] = [me, 1]
    try:
        yield
    finally:
        with _GUARD:
            _HELD.pop(key, None)
        with contextlib.suppress(OSError):
            os.unlink(_lock_path(target))  # while still holding it: no one else has it
        os.close(fd)
