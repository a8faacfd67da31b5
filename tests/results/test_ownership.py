"""Ownership markers and the one-writer lock (issue 23): what may be replaced, who may write."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from directionkit.errors import StoreError
from directionkit.results._ownership import MARKER, mark, marker_id, not_replaceable, writer_lock


def test_only_a_marked_or_empty_folder_is_replaceable(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    assert not_replaceable(folder) is None  # empty
    (folder / "report.html").write_text("made by directionkit")  # looks like ours
    assert "no directionkit ownership marker" in str(not_replaceable(folder))
    made = mark(folder, "report")
    assert marker_id(folder) == made and len(made) == 32
    assert not_replaceable(folder) is None
    (folder / MARKER).write_text("not json")
    assert marker_id(folder) is None  # a damaged marker is no marker
    link = tmp_path / "link"
    link.symlink_to(folder)
    assert not_replaceable(link) == "it is a symbolic link"


def _hold(path: str, ready: Any, release: Any) -> None:
    with writer_lock(path):
        ready.set()
        release.wait(timeout=60)


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(tmp_path / "run"), ready, release))
    holder.start()
    try:
        assert ready.wait(timeout=60)
        with pytest.raises(StoreError, match=rf"process id {holder.pid}\b"), writer_lock(
            tmp_path / "run"
        ):
            pass
    finally:
        release.set()
        holder.join(timeout=60)
    with writer_lock(tmp_path / "run"):  # free again
        assert (tmp_path / ".run.lock").read_text().strip() == str(os.getpid())
    assert not (tmp_path / ".run.lock").exists()  # removed on release


def test_a_stale_lock_file_of_a_dead_holder_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / ".run.lock").write_text("999999\n")  # its process is gone: no lock held
    with writer_lock(tmp_path / "run"):
        assert (tmp_path / ".run.lock").read_text().strip() == str(os.getpid())


def test_the_same_thread_nests_and_another_thread_is_refused(tmp_path: Path) -> None:
    refused: list[str] = []

    def other() -> None:
        try:
            with writer_lock(tmp_path / "run"):
                pass
        except StoreError as err:
            refused.append(str(err))

    with writer_lock(tmp_path / "run"), writer_lock(tmp_path / "run"):  # nested: fine
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert len(refused) == 1 and "being written by another process" in refused[0]
    with writer_lock(tmp_path / "run"):  # released after the outer block
        pass
