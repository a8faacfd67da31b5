"""A run directory: recognising one, checking that it may be written or replaced, replacing it
by a directory exchange, and removing what a failed run wrote."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from directionkit.errors import StoreError
from directionkit.reference_models.runs import EXPORT_ERROR, REPLACED_RUN
from directionkit.reference_models.train._checkpoints import _saved_checkpoints, _write_text
from directionkit.reference_models.train._config import TrainConfig
from directionkit.results import recover, replaceable
from directionkit.results._atomic import _cleanup, _commit
from directionkit.results._ownership import MARKER, mark, marker_id

#: The files :func:`train` writes into a run directory, besides ``checkpoints/epoch_XXXX.pt``
#: and ``history.zarr`` (``model.onnx.data``: external ONNX weights of earlier versions).
_RUN_FILES = ("config.json", "run.json", "resume.pt", "model.onnx", "model.onnx.data", EXPORT_ERROR)
#: Names of the scratch files of an unfinished write (``_checkpoints._replacing``, the zarr
#: stores').
_SCRATCH = re.compile(r"^\..+\.(?:tmp|old|del)-[0-9a-f-]+$")


def _check_out_dir(run: Path, config: TrainConfig, *, overwrite: bool) -> TrainConfig | None:
    """The config of the run in ``run`` (None: ``run`` is missing or empty), if :func:`train`
    may write there; else a :class:`StoreError` naming ``run`` and what it holds.

    Called before anything is written: a folder that is not recognisably a training run is
    refused with or without ``overwrite``, so that ``overwrite`` never deletes a user's
    files; a run of another config is refused without ``overwrite``.
    """
    if os.path.lexists(run) and not run.is_dir():
        raise StoreError(f"{str(run)!r} exists and is not a directory; choose another out_dir.")
    recover(run)  # an overwrite killed half-way: finished or undone
    if (run / REPLACED_RUN).exists():
        raise StoreError(
            f"{str(run)!r} holds {REPLACED_RUN}, left by an overwrite that an older "
            "directionkit did not finish: it may hold the run that was being replaced. Move "
            "what you want to keep out of it and delete it, then rerun."
        )
    if not run.exists() or all(_SCRATCH.match(e.name) or e.name == MARKER for e in run.iterdir()):
        return None  # new or empty (but for scratch files of an interrupted write)
    previous, reason = _recognise_run(run)
    if previous is None:
        if overwrite:
            raise StoreError(
                f"Refusing to overwrite {str(run)!r}: it is not a training run of "
                f"directionkit ({reason}). Only a training run or an empty folder is "
                "overwritten; move its contents away yourself, or choose another out_dir."
            )
        raise StoreError(
            f"{str(run)!r} is not empty and holds no training run ({reason}); "
            "choose a new or empty out_dir."
        )
    if previous != config and not overwrite:
        difference = _describe_difference(previous, config)
        raise StoreError(
            f"{str(run)!r} holds a run of a different config ({difference}); "
            "pass overwrite=True to replace it, or choose another out_dir."
        )
    return previous


def _recognise_run(run: Path) -> tuple[TrainConfig | None, str]:
    """The config of the training run in the non-empty folder ``run``; or None and why
    ``run`` is not recognisably one.

    A run has a ``config.json`` that is a :class:`TrainConfig` and the ``run.json``
    :func:`train` writes right after it (alone, ``config.json`` is a run cut off between
    the two), and train's own names in it are what train writes there.
    """
    path = run / "config.json"
    if not path.is_file():
        return None, f"no config.json; it holds {_listing(run)}"
    try:
        config = TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as err:  # InvalidParameterError is a ValueError
        return None, f"its config.json is not a TrainConfig: {str(err).rstrip('.')}"
    others = [e for e in run.iterdir() if e.name != "config.json" and not _SCRATCH.match(e.name)]
    if others and not _is_run_meta(run / "run.json"):
        return None, (
            "it has a config.json but not the run.json that train writes beside it; "
            f"it holds {_listing(run)}"
        )
    for name in _RUN_FILES:
        entry = run / name
        if os.path.lexists(entry) and (entry.is_symlink() or not entry.is_file()):
            return None, f"its {name} is not a file"
    checkpoints = run / "checkpoints"
    if os.path.lexists(checkpoints) and (checkpoints.is_symlink() or not checkpoints.is_dir()):
        return None, "its checkpoints is not a folder"
    history = run / "history.zarr"
    if os.path.lexists(history) and (why := replaceable(history)) is not None:
        return None, f"its history.zarr: {why}"
    return config, ""


def _is_run_meta(path: Path) -> bool:
    """Whether ``path`` is the ``run.json`` of a run (what the data gave)."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and {"input_shape", "n_classes"} <= meta.keys()


def _listing(folder: Path, limit: int = 6) -> str:
    """What ``folder`` holds, for a message: ``'checkpoints/, notes.txt'``."""
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in folder.iterdir())
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _describe_difference(saved: TrainConfig, given: TrainConfig) -> str:
    parts = [
        f"{f.name}: saved {getattr(saved, f.name)!r}, given {getattr(given, f.name)!r}"
        for f in dataclasses.fields(TrainConfig)
        if getattr(saved, f.name) != getattr(given, f.name)
    ]
    return "; ".join(parts)


def _check_replacing(run: Path) -> None:
    """A :class:`StoreError` unless the run in ``run`` may be replaced as a whole: it
    carries directionkit's ownership marker and holds nothing but what :func:`train`
    writes (so that replacing it deletes nothing else)."""
    if marker_id(run) is None:
        raise StoreError(
            f"Refusing to replace {str(run)!r}: it carries no directionkit ownership marker "
            f"({MARKER}), so it was not written by this version of train (or the marker was "
            "removed). Move it away yourself, or choose another out_dir."
        )
    saved = set(_saved_checkpoints(run).values())
    others = []
    for entry in run.iterdir():
        if entry.name in (*_RUN_FILES, MARKER, "history.zarr") or _SCRATCH.match(entry.name):
            continue
        if entry.name == "checkpoints" and entry.is_dir() and not entry.is_symlink():
            others += [
                f"checkpoints/{p.name}"
                for p in entry.iterdir()
                if p not in saved and not _SCRATCH.match(p.name)
            ]
            continue
        others.append(entry.name)
    if others:
        shown = ", ".join(sorted(others)[:6]) + (" and more" if len(others) > 6 else "")
        raise StoreError(
            f"Refusing to replace the run in {str(run)!r}: it also holds files train did "
            f"not write ({shown}), which replacing the run would delete. Move them out of "
            "it, then rerun."
        )


def _take_place(home: Path, run: Path) -> Path:
    """Put the new run (in the scratch folder ``home``) at ``run`` in one atomic swap,
    then delete the old one; ``run``."""
    try:
        _commit(home, run, overwrite=True)
    except OSError as err:
        raise StoreError(f"Could not move the new run to {str(run)!r}: {err}.") from err
    _cleanup(home)  # the old run, now under the scratch name
    return run


def _remove_outputs(run: Path) -> None:
    """Delete what this run wrote into ``run`` (and nothing else): train's files, its
    ``epoch_XXXX.pt`` checkpoints (``checkpoints/`` goes when that empties it), its
    ``history.zarr`` and marker, and scratch files of a killed write."""

    def remove(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    for name in _RUN_FILES:
        remove(run / name)
        for scratch in run.glob(f".{name}.tmp-*"):  # of a write that was killed
            if _SCRATCH.match(scratch.name):
                scratch.unlink(missing_ok=True)
    checkpoints = run / "checkpoints"
    if checkpoints.is_dir() and not checkpoints.is_symlink():
        saved = set(_saved_checkpoints(run).values())
        for path in checkpoints.iterdir():
            if _SCRATCH.match(path.name) or path in saved:
                path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            checkpoints.rmdir()  # kept when it holds anything else
    history = run / "history.zarr"
    if history.is_dir() and replaceable(history) is None:
        remove(history)
    if (run / MARKER).is_file() and not any(e.name != MARKER for e in run.iterdir()):
        (run / MARKER).unlink()


def _first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist (None: it exists)."""
    missing = None
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break
        missing = folder
    return missing


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"Could not create the folder {str(path)!r}: {err}.") from err


def _after_failed_write(
    run: Path, home: Path, saved: int, created: Path | None, *, complete: bool
) -> str:
    """What the run directory holds after a failed write, and what to do: the sentences a
    :class:`StoreError` of :func:`train` ends with.

    While the new run is still written beside the one it replaces (``home`` is not ``run``),
    nothing of it is kept and the old run is untouched.  With an epoch saved, the run stays
    (a rerun resumes from ``saved``, or only writes what is missing when training was
    ``complete``); without one, nothing in it is worth keeping, and the files this run wrote
    are removed again, with the folders it created (``created``: the outermost one).
    """
    if home != run:
        return (
            f"No epoch had been saved, so nothing of this run was kept; the run in "
            f"{str(run)!r} that it was to replace is untouched. Free some space (or fix "
            "what stopped the write) and rerun the same command."
        )
    if saved:
        rerun = (
            "it finds the finished training and writes only what is missing"
            if complete
            else f"it resumes from epoch {saved}"
        )
        return (
            f"{str(run)!r} holds what was saved so far: training up to epoch {saved} "
            "(resume.pt, checkpoints). Free some space (or fix what stopped the write) and "
            f"rerun the same command: {rerun}."
        )
    try:
        _remove_outputs(run)
    except (OSError, StoreError) as err:
        return (
            f"No epoch had been saved, and removing this run's partial files from "
            f"{str(run)!r} failed too ({err}); delete them, then rerun the same command."
        )
    where = f"{str(run)!r} holds none of its files"
    if created is not None:
        with contextlib.suppress(OSError):
            run.rmdir()  # only while empty: nothing but ours is ever removed
            # (the folders made for it go once train has let go of its lock in them)
            where = f"{str(run)!r}, which it had created, was removed again" + (
                f" (with the folders it had created for it, from {str(created)!r} on)"
                if created != run
                else ""
            )
    return (
        f"No epoch had been saved, so nothing of this run was kept: {where}. Free "
        "some space (or fix what stopped the write) and rerun the same command."
    )


def _write_run_files(home: Path, config: TrainConfig, meta: Mapping[str, Any]) -> None:
    """Make ``home`` a run directory: ``checkpoints/``, ``config.json``, ``run.json``
    (``meta``: what the data gave) and, unless it has one, the ownership marker."""
    _make_folder(home / "checkpoints")
    _write_text(home / "config.json", config.to_json() + "\n")
    _write_text(home / "run.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if marker_id(home) is None:  # ours: a later overwrite may replace it
        mark(home, "training run")
