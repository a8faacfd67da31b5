"""Data safety of the zarr stores: concurrent writers, kills, refusals, checksums, full disks.

Writers are real processes (multiprocessing, subprocess + SIGKILL) on real zarr stores;
the private hooks of ``directionkit.results._atomic`` only choose the moment of the race or kill.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.cli import main
from directionkit.errors import StoreError
from directionkit.results import (
    ActivationWriter,
    _atomic,
    fingerprint,
    open_activations,
    write_zarr,
)


def analysis(value: float) -> dk.Analysis:
    units = {"site": ("unit", ["fc1", "fc1", "fc2"]), "unit_index": ("unit", [0, 1, 0])}
    return dk.Analysis(
        xr.Dataset(
            {"accuracy": value, "selectivity": ("unit", np.array([0.1, 0.2, 0.3]) + value)},
            coords=units,
        )
    )


def scratch(folder: Path, locks: bool = False) -> list[str]:
    """Scratch folders (temporary, backup) beside stores in ``folder``; with ``locks``,
    lock files too (a killed writer's stays until the next writer takes it over)."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.startswith(".") and (locks or not p.name.endswith(".lock"))
    )


@pytest.fixture(params=["renameat2", "mkdir-fallback"])
def rename_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each commit test runs with renameat2(RENAME_NOREPLACE) and with its fallback."""
    if request.param == "renameat2" and getattr(_atomic, "_renameat2", None) is None:
        pytest.skip("renameat2 is not available here")
    if request.param == "mkdir-fallback":
        monkeypatch.setattr(_atomic, "_renameat2", None, raising=False)
    return str(request.param)


# -- concurrent writers -------------------------------------------------------------


def _race_writer(
    path: str, value: float, barrier: Any, fallback: bool, overwrite: bool = False
) -> str:
    """One process saving to ``path``; all start together (the barrier)."""
    if fallback:
        _atomic._renameat2 = None
    barrier.wait(timeout=60)
    try:
        analysis(value).save(path, overwrite=overwrite)
    except StoreError as err:
        return f"refused: {err}"
    return "saved"


def test_concurrent_writers_to_one_path_exactly_one_wins(tmp_path: Path, rename_mode: str) -> None:
    path = str(tmp_path / "run.zarr")
    context = multiprocessing.get_context("spawn")
    n = 3
    with context.Manager() as manager:
        barrier = manager.Barrier(n)
        with context.Pool(n) as pool:
            outcomes = pool.starmap(
                _race_writer,
                [(path, float(i), barrier, rename_mode == "mkdir-fallback") for i in range(n)],
            )
    assert outcomes.count("saved") == 1, outcomes
    refusals = ("being written by another process", "already exists", "appeared while")
    assert all(any(r in o for r in refusals) for o in outcomes if o != "saved"), outcomes
    winner = outcomes.index("saved")
    xr.testing.assert_identical(dk.open(path).dataset, analysis(float(winner)).dataset)
    assert scratch(tmp_path) == []


def test_concurrent_overwrites_never_report_a_save_that_did_not_happen(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    analysis(-1.0).save(path)
    context = multiprocessing.get_context("spawn")
    n = 3
    with context.Manager() as manager:
        barrier = manager.Barrier(n)
        with context.Pool(n) as pool:
            outcomes = pool.starmap(
                _race_writer, [(str(path), float(i), barrier, False, True) for i in range(n)]
            )
    saved = [float(i) for i, outcome in enumerate(outcomes) if outcome == "saved"]
    assert saved, outcomes
    refusals = ("being written by another process", "nothing was saved")
    assert all(any(r in o for r in refusals) for o in outcomes if o != "saved"), outcomes
    with warnings.catch_warnings():  # the next open tidies what the losers moved aside
        warnings.simplefilter("ignore", RuntimeWarning)
        final = float(dk.open(path)["accuracy"])
    assert final in saved, (final, outcomes)  # a writer that was told "saved", last to commit
    assert scratch(tmp_path) == []


@pytest.mark.parametrize("content", [None, "notes.txt"])
def test_a_folder_created_at_the_target_during_the_write_is_never_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rename_mode: str, content: str | None
) -> None:
    path = tmp_path / "run.zarr"

    def someone_else_makes_it() -> None:
        path.mkdir()
        if content:
            (path / content).write_text("mine")

    monkeypatch.setitem(_atomic._HOOKS, "commit", someone_else_makes_it)
    with pytest.raises(StoreError, match="appeared while this store was being written"):
        analysis(1.0).save(path)
    assert sorted(p.name for p in path.iterdir()) == ([content] if content else [])
    assert scratch(tmp_path) == []


def test_overwrite_checks_again_at_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store replaced by a user's folder during the write is not deleted."""
    path = tmp_path / "run.zarr"
    analysis(0.0).save(path)

    def replaced_by_a_project() -> None:
        os.rename(path, tmp_path / "elsewhere.zarr")
        path.mkdir()
        (path / "thesis.tex").write_text("years of work")

    monkeypatch.setitem(_atomic._HOOKS, "commit", replaced_by_a_project)
    with pytest.raises(StoreError, match="Refusing to replace"):
        analysis(1.0).save(path, overwrite=True)
    assert (path / "thesis.tex").read_text() == "years of work"
    assert scratch(tmp_path) == []


# -- what overwrite may replace ------------------------------------------------------


def test_overwrite_replaces_only_directionkit_stores_or_empty_folders(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.csv").write_text("1,2,3")
    with pytest.raises(StoreError, match=r"Refusing to replace .*project.*no directionkit owner"):
        analysis(1.0).save(project, overwrite=True)
    assert (project / "data.csv").read_text() == "1,2,3"

    foreign = tmp_path / "foreign.zarr"
    xr.Dataset({"x": ("a", [1.0])}).to_zarr(foreign, zarr_format=3, consolidated=False)
    with pytest.raises(StoreError, match="carries no directionkit ownership marker"):
        analysis(1.0).save(foreign, overwrite=True)

    a_file = tmp_path / "run.txt"
    a_file.write_text("keep")
    with pytest.raises(StoreError, match="already exists"):
        analysis(1.0).save(a_file)
    with pytest.raises(StoreError, match="it is a file"):
        analysis(1.0).save(a_file, overwrite=True)
    assert a_file.read_text() == "keep"

    link = tmp_path / "link.zarr"
    analysis(0.0).save(tmp_path / "real.zarr")
    link.symlink_to(tmp_path / "real.zarr")
    with pytest.raises(StoreError, match="symbolic link"):
        analysis(1.0).save(link, overwrite=True)

    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    analysis(2.0).save(empty, overwrite=True)
    analysis(3.0).save(empty, overwrite=True)  # a directionkit store: replaced
    assert float(dk.open(empty)["accuracy"]) == 3.0
    history = write_zarr(xr.Dataset({"loss": ("epoch", [1.0, 0.5])}), tmp_path / "h.zarr")
    write_zarr(xr.Dataset({"loss": ("epoch", [0.4])}), history, overwrite=True)
    # L3: a folder that merely looks like a report (no marker) is never replaced
    report = tmp_path / "user2"
    report.mkdir()
    (report / "report.html").write_text("<p>Written by directionkit 0.1.</p>")
    (report / "measurements.csv").write_text("a,b\n1,2\n")
    (report / "settings.json").write_text("{}")
    (report / "photo.png").write_bytes(b"\x89PNG")
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    with pytest.raises(StoreError, match=r"Refusing to replace .*user2.*ownership marker"):
        analysis(4.0).save(report, overwrite=True)
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    # a store directionkit wrote, whose record was removed, is no longer ours to replace
    unmarked = analysis(5.0).save(tmp_path / "unmarked.zarr")
    meta = json.loads((unmarked / "zarr.json").read_text())
    del meta["attributes"]["directionkit_integrity"]
    (unmarked / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="Refusing to replace"):
        analysis(6.0).save(unmarked, overwrite=True)
    assert scratch(tmp_path) == []


def test_cli_out_pointing_at_a_file_is_a_clean_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "results.txt"
    out.write_text("keep")
    for flags in ([], ["--overwrite"]):
        argv = ["analyze", "model.onnx", "--data", "digits", "--out", str(out), *flags]
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("directionkit: error:")
        assert main(["report", "x.zarr", "--out", str(out), *flags]) == 2
        assert "directionkit: error:" in capsys.readouterr().err
        assert main(["demo", "--out", str(out), "--hidden", "4", *flags]) == 2  # saves at the end
        assert "directionkit: error:" in capsys.readouterr().err
    assert out.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"]


# -- kills and leftovers --------------------------------------------------------------

_KILLED_WRITER = """
import os, signal, sys
import numpy as np, xarray as xr
import directionkit as dk
from directionkit.results import _atomic
_atomic._HOOKS[sys.argv[2]] = lambda: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[3] == "fallback":
    _atomic._renameat2 = None  # no RENAME_EXCHANGE: an overwrite takes two renames
dk.Analysis(xr.Dataset({"accuracy": 0.5})).save(sys.argv[1], overwrite=True)
print("not killed")
"""


def kill_a_writer_at(stage: str, path: Path, mode: str = "renameat2") -> None:
    """Run a writer process that SIGKILLs itself at ``stage`` of its save to ``path``."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), str(path), stage, mode],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr


@pytest.mark.parametrize("recover_by", ["open", "save"])
def test_a_kill_between_the_renames_of_an_overwrite_is_undone(
    tmp_path: Path, recover_by: str
) -> None:
    path = tmp_path / "run.zarr"
    analysis(0.25).save(path)
    kill_a_writer_at("swapped", path, "fallback")
    assert not path.exists()  # the state the kill left: the old store moved aside
    assert [n.split("-")[0] for n in scratch(tmp_path)] == [".run.zarr.old", ".run.zarr.tmp"]
    with pytest.warns(RuntimeWarning, match="restored .*run.zarr.* an overwrite of it was"):
        if recover_by == "open":
            back = dk.open(path)
        else:
            with pytest.raises(StoreError, match="already exists"):
                analysis(1.0).save(path)  # restored first, so not overwritten
            back = dk.open(path)
    xr.testing.assert_identical(back.dataset, analysis(0.25).dataset)
    assert scratch(tmp_path) == []


def test_a_kill_right_after_the_exchange_of_an_overwrite_keeps_the_new_store(
    tmp_path: Path,
) -> None:
    """With RENAME_EXCHANGE the path never stops existing; killed right after the swap,
    the new store is in place and the old one (at the scratch name) is removed later."""
    if _atomic._renameat2 is None:
        pytest.skip("renameat2 is not available here")
    path = tmp_path / "run.zarr"
    analysis(0.25).save(path)
    kill_a_writer_at("exchanged", path)
    assert [n.split("-")[0] for n in scratch(tmp_path)] == [".run.zarr.tmp"]
    with pytest.warns(RuntimeWarning, match="removed .*interrupted write"):
        assert float(dk.open(path)["accuracy"]) == 0.5  # the new one
    assert scratch(tmp_path) == []


def test_the_path_of_an_overwritten_store_never_disappears_for_plain_readers(
    tmp_path: Path,
) -> None:
    if _atomic._renameat2 is None:
        pytest.skip("renameat2 is not available here")
    path = tmp_path / "run.zarr"
    analysis(0.0).save(path)
    missing, stop = [], threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (path / "zarr.json").is_file():
                missing.append(time.perf_counter())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(30):
            analysis(float(i)).save(path, overwrite=True)
    finally:
        stop.set()
        watcher.join()
    assert missing == []
    assert float(dk.open(path)["accuracy"]) == 29.0


def test_a_stale_lock_of_a_killed_writer_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    kill_a_writer_at("commit", path)
    assert ".run.zarr.lock" in scratch(tmp_path, locks=True)  # the kill left it
    with pytest.warns(RuntimeWarning, match="interrupted write"):
        analysis(1.0).save(path)  # the dead holder's lock is free: taken, then removed
    assert scratch(tmp_path, locks=True) == []
    assert float(dk.open(path)["accuracy"]) == 1.0


def test_a_kill_before_commit_leaves_a_temporary_that_the_next_write_removes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.zarr"
    analysis(0.25).save(path)
    kill_a_writer_at("commit", path)
    assert [n.split("-")[0] for n in scratch(tmp_path)] == [".run.zarr.tmp"]
    with pytest.warns(RuntimeWarning, match="removed .*run.zarr.tmp-.*interrupted write"):
        back = dk.open(path)  # as would the next save
    xr.testing.assert_identical(back.dataset, analysis(0.25).dataset)  # untouched
    assert scratch(tmp_path) == []
    analysis(1.0).save(path, overwrite=True)
    assert float(dk.open(path)["accuracy"]) == 1.0


def test_a_live_writer_is_left_alone_and_unknown_leftovers_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".run.zarr.tmp-{_atomic._HOST}-{sleeper.pid}-{'a' * 12}"
        live.mkdir()
        old_style = tmp_path / f".run.zarr.tmp-{'b' * 12}"  # no writer recorded
        old_style.mkdir()
        with pytest.warns(RuntimeWarning, match="kept.*run.zarr.tmp-bbbbbbbbbbbb"):
            analysis(1.0).save(path)
        assert live.is_dir() and old_style.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    with pytest.warns(RuntimeWarning) as record:
        analysis(2.0).save(path, overwrite=True)  # the sleeper is gone: its folder goes
    assert any("removed" in str(w.message) for w in record)
    assert not live.exists() and old_style.is_dir()


# -- a full disk --------------------------------------------------------------------------


@pytest.fixture
def disk_full_after(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make zarr's local store fail with ENOSPC after ``n`` chunk or metadata writes."""
    from zarr.storage import LocalStore

    original = LocalStore.set

    def arm(n: int) -> None:
        count = {"writes": 0}

        async def full(self: Any, key: str, value: Any) -> None:
            count["writes"] += 1
            if count["writes"] > n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)
            await original(self, key, value)

        monkeypatch.setattr(LocalStore, "set", full)

    return arm


def test_a_full_disk_is_a_store_error_and_loses_nothing(tmp_path: Path, disk_full_after) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "run.zarr"
    disk_full_after(3)
    with pytest.raises(StoreError, match=r"No space left on device.*Nothing was saved"):
        analysis(1.0).save(path)
    assert list(tmp_path.iterdir()) == []
    disk_full_after(10_000)
    analysis(0.0).save(path)
    disk_full_after(3)
    with pytest.raises(StoreError, match="existing store there is unchanged"):
        analysis(1.0).save(path, overwrite=True)
    xr.testing.assert_identical(dk.open(path).dataset, analysis(0.0).dataset)
    assert scratch(tmp_path) == []
    with pytest.raises(StoreError, match=r"report.*No space left.*Nothing was saved"):
        with _atomic.atomic_directory(tmp_path / "report", overwrite=False) as temporary:
            temporary.mkdir()  # e.g. write_report's figures
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    disk_full_after(6)
    with pytest.raises(StoreError, match="No space left"):
        with ActivationWriter(tmp_path / "acts.zarr", {"fc": 2}, chunk_size=1) as writer:
            writer.append(np.ones((8, 2)), np.zeros(8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.zarr"]


def test_writer_threads_that_outlive_a_failed_write_are_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zarr's writer threads may go on adding chunks after the write has failed."""
    stop = threading.Event()
    writers: list[threading.Thread] = []

    def fail_with_a_straggler(seconds: float) -> Any:
        def to_zarr(self: xr.Dataset, temporary: Path, **kwargs: Any) -> None:
            def straggle() -> None:
                end = time.monotonic() + seconds
                for i in itertools.count():
                    if stop.is_set() or time.monotonic() > end:
                        return
                    chunk = Path(temporary) / "selectivity" / "c" / str(i % 50)
                    with contextlib.suppress(OSError):
                        chunk.parent.mkdir(parents=True, exist_ok=True)
                        chunk.write_bytes(b"late")
                    time.sleep(0.002)

            writers.append(threading.Thread(target=straggle))
            writers[-1].start()
            time.sleep(0.05)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return to_zarr

    path = tmp_path / "run.zarr"
    monkeypatch.setattr(xr.Dataset, "to_zarr", fail_with_a_straggler(0.3))
    with pytest.raises(StoreError, match="No space left"):
        analysis(1.0).save(path)
    writers[-1].join()
    assert list(tmp_path.iterdir()) == []  # the retries outlasted the straggler
    monkeypatch.setattr(xr.Dataset, "to_zarr", fail_with_a_straggler(60.0))
    try:
        with (
            pytest.raises(StoreError, match="No space left"),
            pytest.warns(RuntimeWarning, match="could not remove the temporary"),
        ):
            analysis(1.0).save(path)
    finally:
        stop.set()
        writers[-1].join()
    assert [n.split("-")[0] for n in scratch(tmp_path)] == [".run.zarr.tmp"]
    monkeypatch.undo()
    with pytest.warns(RuntimeWarning, match="removed .*interrupted write"):
        analysis(2.0).save(path)  # the next write cleans it
    assert scratch(tmp_path) == []


def test_cli_full_disk_is_a_clean_error_with_status_2(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys, disk_full_after
) -> None:
    out = tmp_path / "run.zarr"
    disk_full_after(2)
    assert main(["demo", "--out", str(out), "--hidden", "4"]) == 2
    assert "directionkit: error: Could not write" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# -- checksums -------------------------------------------------------------------------


def flip_a_bit(chunk: Path) -> None:
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("variable", "chunk"), [("selectivity", "c/0"), ("accuracy", "c"), ("site", "c/0")]
)
@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_a_missing_or_damaged_chunk_is_a_store_error_naming_the_variable(
    tmp_path: Path, variable: str, chunk: str, damage: str
) -> None:
    path = analysis(0.5).save(tmp_path / "run.zarr")
    target = path / variable / chunk
    assert target.is_file()
    if damage == "delete":
        target.unlink()
        expected = f"variable '{variable}' is missing its file '{variable}/{chunk}'"
    else:
        flip_a_bit(target)
        expected = f"variable '{variable}' has a damaged chunk"
    with pytest.raises(StoreError, match=expected):
        dk.open(path)


def _edit_root_attr(meta: dict[str, Any]) -> None:
    meta["attributes"]["directionkit_version"] += "1"  # "0.1.0" -> "0.1.01"


def _rename_dim(meta: dict[str, Any]) -> None:
    meta["consolidated_metadata"]["metadata"]["selectivity"]["dimension_names"] = ["unjt"]


def _add_variable_attr(meta: dict[str, Any]) -> None:
    meta["consolidated_metadata"]["metadata"]["selectivity"]["attributes"]["units"] = "bits"


@pytest.mark.parametrize("edit", [_edit_root_attr, _rename_dim, _add_variable_attr])
def test_damaged_metadata_that_is_still_valid_json_is_a_store_error(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    path = analysis(0.5).save(tmp_path / "run.zarr")
    root = path / "zarr.json"
    meta = json.loads(root.read_text())
    edit(meta)
    root.write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=r"is damaged: the metadata of .* was changed after"):
        dk.open(path)


def test_the_metadata_checksum_survives_round_trips_and_is_not_an_attribute(
    tmp_path: Path,
) -> None:
    first = analysis(0.5)
    again = dk.open(first.save(tmp_path / "a.zarr"))
    assert "directionkit_metadata_sha256" not in again.attrs
    twice = dk.open(again.save(tmp_path / "b.zarr"))
    xr.testing.assert_identical(twice.dataset, first.dataset)


def test_cli_show_of_a_damaged_store_names_the_variable(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = analysis(0.5).save(tmp_path / "run.zarr")
    flip_a_bit(path / "selectivity" / "c" / "0")
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("directionkit: error: The store") and "'selectivity'" in err


@pytest.mark.filterwarnings("ignore:Consolidated metadata is currently not part")
def test_stores_without_an_integrity_record_open_only_unverified_and_say_so(
    tmp_path: Path,
) -> None:
    """Stores written before the record (or elsewhere) open only with verify=False."""
    old = tmp_path / "old.zarr"
    dataset = analysis(0.5).dataset.copy()
    dataset.attrs["directionkit_version"] = "0.0.9"
    dataset.to_zarr(old, zarr_format=3, consolidated=True)
    with pytest.raises(StoreError, match=r"has no integrity record .* Pass verify=False"):
        dk.open(old)
    with pytest.warns(dk.DirectionKitWarning, match="read without verifying it"):
        opened = dk.open(old, verify=False)
    assert float(opened["accuracy"]) == 0.5
    chunk = old / "selectivity" / "c" / "0"  # zstd, no checksum: truncation still shows
    chunk.write_bytes(chunk.read_bytes()[:-3])
    with (
        pytest.warns(dk.DirectionKitWarning),
        pytest.raises(StoreError, match="variable 'selectivity' has a damaged chunk"),
    ):
        dk.open(old, verify=False)


def test_activation_stores_are_checksummed_too(tmp_path: Path) -> None:
    path = tmp_path / "acts.zarr"
    rng = np.random.default_rng(0)
    acts = np.maximum(rng.normal(size=(10, 3)), 0).astype(np.float32)
    with ActivationWriter(path, {"fc": 3}, chunk_size=4) as writer:
        writer.append(acts, np.arange(10) % 2)
    opened = open_activations(path)
    np.testing.assert_array_equal(opened.values, acts)
    np.testing.assert_allclose(
        dk.class_selectivity(opened).values, dk.class_selectivity(acts, np.arange(10) % 2).values
    )
    flip_a_bit(path / "activations" / "c" / "1" / "0")
    damaged = open_activations(path)  # lazy: the damage shows when the chunk is read
    with pytest.raises(StoreError, match="variable 'activations' has a damaged chunk"):
        dk.class_selectivity(damaged)
    (path / "activations" / "c" / "1" / "0").unlink()
    with pytest.raises(StoreError, match="variable 'activations' is missing its file 'activ"):
        open_activations(path)
    (path / "label" / "c" / "0").unlink()
    with pytest.raises(StoreError, match=r"variable '(activations|label)' is missing"):
        open_activations(path)


# -- bookkeeping never loses results ------------------------------------------------------------


def test_analyze_fingerprints_an_input_that_requires_grad() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    X = torch.randn(12, 4, requires_grad=True)
    y = torch.arange(12) % 3
    result = dk.analyze(model, (X, y), metrics=["statistics"], progress=False)
    assert result.attrs["data"] == fingerprint(X.detach().numpy(), y.numpy())
    assert X.requires_grad and X.grad is None


def test_a_failing_fingerprint_is_recorded_as_unknown_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from directionkit.api import _analyze
    from directionkit.testing import NumpyMLPAdapter

    def broken(*arrays: Any) -> str:
        raise RuntimeError("cannot be read twice")

    net = NumpyMLPAdapter.random(n_in=4, hidden=(5,), n_classes=3, seed=0)
    X, y = np.random.default_rng(0).normal(size=(9, 4)), np.arange(9) % 3
    monkeypatch.setattr(_analyze, "fingerprint", broken)
    with pytest.warns(RuntimeWarning, match="could not fingerprint the data .*cannot be read"):
        result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    assert result.attrs["data"] == "unknown (numpy.ndarray)"
    assert result["selectivity"].sizes["unit"] == 5
