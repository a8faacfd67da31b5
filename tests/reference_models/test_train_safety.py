"""Data safety of ``train``: what ``overwrite`` may replace, and writes that fail (a full disk).

A folder that is not recognisably a training run is never written into or deleted, with or
without ``--overwrite``.  A write that fails is a :class:`StoreError` (status 2 from the
CLI) naming the file; the run directory then holds the epochs saved so far, or none of the
run's files when no epoch was saved.  The full disk is simulated under the writers train
uses (``torch.save``, text files, zarr's local store), each failing with ENOSPC after a
partial write, as a real one does.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from directionkit.cli import main  # noqa: E402
from directionkit.errors import StoreError  # noqa: E402
from directionkit.reference_models.train import TrainConfig, train  # noqa: E402

pytestmark = [pytest.mark.requires_torch, pytest.mark.usefixtures("one_torch_thread")]

SMALL = {"dataset": "digits", "hidden": (16,), "lr": 1e-2, "batch_size": 64, "device": "cpu"}
TRAIN = ["train", "--dataset", "digits", "--hidden", "16", "--epochs", "1", "--device", "cpu",
         "--no-onnx", "--quiet"]  # fmt: skip
NO_SPACE = os.strerror(errno.ENOSPC)


def contents(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: a file's bytes, None for a folder."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


def a_project(folder: Path) -> dict[str, bytes | None]:
    """A user's folder that is no training run: weights of their own and notes."""
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "mine.pt").write_bytes(b"my weights")
    (folder / "notes.txt").write_text("three weeks of work")
    return contents(folder)


# -- what --overwrite may replace -------------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_training_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    before = a_project(project)
    assert main([*TRAIN, "--out", str(project), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"directionkit: error: Refusing to overwrite {str(project)!r}" in err
    assert "not a training run" in err and "it holds checkpoints/, notes.txt" in err
    assert "choose another --out" in err and "out_dir" not in err  # the command's words
    assert contents(project) == before

    assert main([*TRAIN, "--out", str(project)]) == 2  # without it: refused, no bad advice
    err = capsys.readouterr().err
    assert f"{str(project)!r} is not empty and holds no training run" in err
    assert "--overwrite" not in err
    assert contents(project) == before


def _foreign_config(folder: Path) -> None:  # someone else's config.json
    (folder / "config.json").write_text(json.dumps({"name": "my project", "lr": 0.1}))
    (folder / "notes.txt").write_text("mine")


def _config_without_run(folder: Path) -> None:  # a TrainConfig-like config.json, files of ours
    (folder / "config.json").write_text(json.dumps({**SMALL, "hidden": [16], "epochs": 1}))
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "epoch_0001.pt").write_bytes(b"my weights")
    (folder / "model.onnx").write_bytes(b"my model")


def _foreign_history(folder: Path) -> None:  # a run's files, but a history.zarr of the user's
    config = TrainConfig(**SMALL, epochs=1)
    (folder / "config.json").write_text(config.to_json())
    (folder / "run.json").write_text(json.dumps({"input_shape": [1, 8, 8], "n_classes": 10}))
    (folder / "history.zarr").mkdir()
    (folder / "history.zarr" / "data.csv").write_text("epoch,loss\n1,0.5\n")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_foreign_config, "its config.json is not a TrainConfig: Unknown TrainConfig field"),
        (_config_without_run, "it has a config.json but not the run.json"),
        (_foreign_history, "its history.zarr: it carries no directionkit ownership marker"),
    ],
    ids=["foreign-config", "config-without-run-json", "foreign-history"],
)
@pytest.mark.parametrize("overwrite", [False, True], ids=["keep", "overwrite"])
def test_a_folder_that_only_looks_like_a_run_is_never_written(
    tmp_path: Path, make: Callable[[Path], None], reason: str, overwrite: bool
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    make(folder)
    before = contents(folder)
    for config in (TrainConfig(**SMALL, epochs=1), TrainConfig(**SMALL, epochs=1, seed=4)):
        with pytest.raises(StoreError, match=r"(not a|holds no) training run") as info:
            train(config, folder, progress=False, onnx=False, overwrite=overwrite)
        assert reason in str(info.value)
        assert contents(folder) == before


def test_overwrite_replaces_an_earlier_run_and_only_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--checkpoint-epochs", "1", "--out", str(run)]) == 0
    (run / "notes.txt").write_text("about this run")  # the user's, beside the run's files
    (run / "checkpoints" / "mine.pt").write_bytes(b"my weights")
    assert main([*TRAIN, "--epochs", "2", "--seed", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds a run of a different config (seed: saved 0, given 1;" in err
    assert "pass --overwrite to replace it" in err

    # the run is replaced as a whole: files of the user's in it would go, so it is refused
    before = contents(run)
    assert main([*TRAIN, "--epochs", "2", "--seed", "1", "--out", str(run), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "also holds files train did not write (checkpoints/mine.pt, notes.txt)" in err
    assert contents(run) == before
    (run / "notes.txt").unlink()
    (run / "checkpoints" / "mine.pt").unlink()
    assert main([*TRAIN, "--epochs", "2", "--seed", "1", "--out", str(run), "--overwrite"]) == 0
    assert "2 epochs (trained)" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0002.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing left beside it
    assert main([*TRAIN, "--epochs", "2", "--seed", "1", "--out", str(run)]) == 0
    assert "(already complete)" in capsys.readouterr().out  # resuming still finds the run


def test_an_empty_folder_is_trained_into_with_or_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, flags in (("a", ["--overwrite"]), ("b", [])):
        (tmp_path / name).mkdir()
        assert main([*TRAIN, "--out", str(tmp_path / name), *flags]) == 0
        assert "1 epochs (trained)" in capsys.readouterr().out
        assert (tmp_path / name / "checkpoints" / "epoch_0001.pt").is_file()


def test_a_run_cut_off_after_its_config_resumes(tmp_path: Path) -> None:
    """Killed between config.json and run.json: the folder holds config.json alone."""
    config = TrainConfig(**SMALL, epochs=1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config.to_json())
    (run / ".run.json.tmp-12345").write_text("{")  # the write the kill interrupted
    result = train(config, run, progress=False, onnx=False)
    assert result.final_epoch == 1 and (run / "run.json").is_file()


# -- a full disk --------------------------------------------------------------------------


class _FullFile:
    """A file on a disk with ``room`` bytes left: a longer write fails after a part."""

    def __init__(self, handle: Any, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: Any) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, NO_SPACE)
        self.room -= len(data)
        return int(self.handle.write(data))

    def flush(self) -> None:
        self.handle.flush()


@pytest.fixture
def disk_full_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make every write fail with ENOSPC after ``n`` of them, counting each ``torch.save``,
    text file and zarr chunk or metadata write as one; the failing one writes a part first.
    """
    from zarr.storage import LocalStore

    real_save, real_write_text, real_set = torch.save, Path.write_text, LocalStore.set

    def arm(n: int) -> None:
        count = {"writes": 0}

        def full() -> bool:
            count["writes"] += 1
            return count["writes"] > n

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
            if not full():
                return real_save(obj, f, *args, **kwargs)
            with contextlib.ExitStack() as stack:
                handle = f if hasattr(f, "write") else stack.enter_context(open(f, "wb"))
                real_save(obj, _FullFile(handle, 100), *args, **kwargs)  # torch's RuntimeError
            return None

        def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
            if full():
                real_write_text(self, data[:10])
                raise OSError(errno.ENOSPC, NO_SPACE, str(self))
            return real_write_text(self, data, *args, **kwargs)

        async def store_set(self: Any, key: str, value: Any) -> None:
            if full():
                raise OSError(errno.ENOSPC, NO_SPACE, key)
            await real_set(self, key, value)

        monkeypatch.setattr(torch, "save", save)
        monkeypatch.setattr(Path, "write_text", write_text)
        monkeypatch.setattr(LocalStore, "set", store_set)

    return arm


# writes of a fresh 3-epoch run: config.json, run.json, the ownership marker, resume.pt
# after epochs 1 and 2, epoch_0003.pt and resume.pt after epoch 3, then history.zarr
CONFIG_JSON, FIRST_EPOCH, THIRD_EPOCH, HISTORY = 0, 3, 5, 7


def scratch(folder: Path) -> list[str]:
    """Hidden files left in ``folder`` but the run's ownership marker."""
    return [str(p.relative_to(folder)) for p in folder.rglob(".*") if p.name != ".directionkit"]


def test_cli_full_disk_before_an_epoch_is_saved_is_status_2_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], disk_full_after: Callable[[int], None]
) -> None:
    run = tmp_path / "runs" / "a"
    disk_full_after(FIRST_EPOCH)
    assert main([*TRAIN, "--epochs", "3", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"directionkit: error: Could not write {str(run / 'resume.pt')!r}: " in err
    assert NO_SPACE in err and "No epoch had been saved" in err
    assert f"{str(run)!r}, which it had created, was removed again" in err
    assert f"from {str(tmp_path / 'runs')!r} on" in err
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_in_an_empty_folder_leaves_it_empty(
    tmp_path: Path, disk_full_after: Callable[[int], None]
) -> None:
    disk_full_after(CONFIG_JSON)
    with pytest.raises(StoreError, match=r"config\.json'.*No space left.*holds none of its"):
        train(TrainConfig(**SMALL, epochs=3), tmp_path, progress=False, onnx=False)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_mid_run_keeps_the_saved_epochs_and_a_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk_full_after: Callable[[int], None]
) -> None:
    config = TrainConfig(**SMALL, epochs=3, dropout=0.1)
    straight = train(config, tmp_path / "straight", progress=False, onnx=False)
    run = tmp_path / "run"
    disk_full_after(THIRD_EPOCH)
    with pytest.raises(StoreError) as info:
        train(config, run, progress=False, onnx=False)
    message = str(info.value)
    assert f"Could not write {str(run / 'checkpoints' / 'epoch_0003.pt')!r}: " in message
    assert NO_SPACE in message
    assert f"{str(run)!r} holds what was saved so far: training up to epoch 2" in message
    assert "rerun the same command: it resumes from epoch 2" in message
    assert torch.load(run / "resume.pt", weights_only=True)["epoch"] == 2
    assert scratch(run) == [] and not (run / "history.zarr").exists()

    monkeypatch.undo()  # space again
    resumed = train(config, run, progress=False, onnx=False)
    assert resumed.resumed_from == 2 and resumed.final_epoch == 3
    final, expected = (
        torch.load(r.final_checkpoint, weights_only=True) for r in (resumed, straight)
    )
    assert all(torch.equal(final[name], expected[name]) for name in expected)


def test_a_full_disk_at_the_history_keeps_the_finished_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk_full_after: Callable[[int], None]
) -> None:
    config = TrainConfig(**SMALL, epochs=3)
    run = tmp_path / "run"
    disk_full_after(HISTORY + 1)
    with pytest.raises(StoreError) as info:
        train(config, run, progress=False, onnx=False)
    message = str(info.value)
    assert f"Could not write {str(run / 'history.zarr')!r}" in message and NO_SPACE in message
    assert "it finds the finished training and writes only what is missing" in message
    assert scratch(run) == [] and not (run / "history.zarr").exists()
    monkeypatch.undo()
    again = train(config, run, progress=False, onnx=False)
    assert again.resumed_from == again.final_epoch == 3
    assert again.history.sizes["epoch"] == 3 and (run / "history.zarr").is_dir()


def test_a_full_disk_at_the_onnx_export_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def export(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(torch.onnx, "export", export)
    run = tmp_path / "run"
    with pytest.raises(StoreError) as info:
        train(TrainConfig(**SMALL, epochs=1), run, progress=False)
    message = str(info.value)
    assert f"Could not write {str(run / 'model.onnx')!r}: [Errno {errno.ENOSPC}]" in message
    assert "Training finished and is saved" in message and "it finds the finished run" in message
    assert "pip install" not in message  # the exporter is not what is missing
    assert (run / "checkpoints" / "epoch_0001.pt").is_file() and (run / "history.zarr").is_dir()
    assert not (run / "model.onnx").exists() and scratch(run) == []


# -- --overwrite keeps the replaced run until the new one has an epoch ------------------------


def an_earlier_run(run: Path) -> dict[str, bytes | None]:
    """A finished 2-epoch run in ``run`` (seed 0)."""
    train(TrainConfig(**SMALL, epochs=2, checkpoint_epochs=(1,)), run, progress=False, onnx=False)
    return contents(run)


REPLACEMENT = TrainConfig(**SMALL, epochs=2, seed=1)


def beside(run: Path) -> list[str]:
    """What is in the folder of ``run`` besides it (scratch folders, locks)."""
    return sorted(p.name for p in run.parent.iterdir() if p != run)


def test_a_full_disk_before_the_first_epoch_leaves_the_replaced_run_untouched(
    tmp_path: Path, disk_full_after: Callable[[int], None]
) -> None:
    run = tmp_path / "run"
    before = an_earlier_run(run)
    disk_full_after(FIRST_EPOCH)
    with pytest.raises(StoreError) as info:
        train(REPLACEMENT, run, progress=False, onnx=False, overwrite=True)
    message = str(info.value)
    assert "resume.pt'" in message and NO_SPACE in message
    assert "No epoch had been saved" in message
    assert "that it was to replace is untouched" in message
    assert contents(run) == before  # byte for byte
    assert beside(run) == []  # the new run's folder and the lock are gone


def test_an_interrupt_before_the_first_epoch_leaves_the_replaced_run_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from directionkit.reference_models.train import _loop

    run = tmp_path / "run"
    before = an_earlier_run(run)
    seen = []

    def interrupted(*args: Any, **kwargs: Any) -> None:
        seen.append(json.loads((run / "config.json").read_text())["seed"])
        raise KeyboardInterrupt

    monkeypatch.setattr(_loop, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(REPLACEMENT, run, progress=False, onnx=False, overwrite=True)
    assert seen == [0]  # during the first epoch, the old run was still in place
    assert contents(run) == before
    assert beside(run) == []


def kill_during(run: Path, module: str, function: str) -> None:
    """In a child process, overwrite the run in ``run`` with :data:`REPLACEMENT` and SIGKILL
    it when train calls ``function`` (as ``module`` of reference_models.train looks it up)."""
    script = textwrap.dedent(f"""
        import json, os, signal, torch
        from directionkit.reference_models import train
        from directionkit.reference_models.train import {module} as module
        torch.set_num_threads(1)
        setattr(module, {function!r}, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))
        config = train.TrainConfig.from_dict(json.loads({REPLACEMENT.to_json()!r}))
        train.train(config, {str(run)!r}, progress=False, onnx=False, overwrite=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


def test_a_kill_before_the_first_epoch_leaves_the_old_run_complete(tmp_path: Path) -> None:
    run = tmp_path / "run"
    before = an_earlier_run(run)
    kill_during(run, "_loop", "_train_epoch")
    assert contents(run) == before  # the new run was being written beside it
    assert [n.split("-")[0] for n in beside(run)] == [".run.lock", ".run.tmp"]
    with pytest.warns(RuntimeWarning, match="interrupted write"):
        again = train(TrainConfig(**SMALL, epochs=2, checkpoint_epochs=(1,)), run,
                      progress=False, onnx=False)  # fmt: skip
    assert again.resumed_from == again.final_epoch == 2  # found complete, not retrained
    assert contents(run) == before
    assert beside(run) == []


def test_a_kill_after_the_swap_keeps_the_new_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    an_earlier_run(run)
    kill_during(run, "_run_folder", "_cleanup")  # epoch 1 saved and swapped in, old run not deleted
    assert torch.load(run / "resume.pt", weights_only=True)["epoch"] == 1
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    with pytest.warns(RuntimeWarning, match="interrupted write"):
        resumed = train(REPLACEMENT, run, progress=False, onnx=False)
    assert resumed.resumed_from == 1 and resumed.final_epoch == 2
    assert beside(run) == []


def test_a_replaced_run_folder_of_an_older_version_is_never_touched(tmp_path: Path) -> None:
    run = tmp_path / "run"
    an_earlier_run(run)
    (run / ".replaced-run").mkdir()
    (run / ".replaced-run" / "mine.txt").write_text("not train's")
    before = contents(run)
    for overwrite in (False, True):
        with pytest.raises(StoreError, match=r"holds \.replaced-run, left by an overwrite"):
            train(REPLACEMENT, run, progress=False, onnx=False, overwrite=overwrite)
    assert contents(run) == before


def test_a_run_without_the_ownership_marker_is_not_replaced(tmp_path: Path) -> None:
    """A run of an older version (or whose marker was removed) resumes, but is not replaced."""
    run = tmp_path / "run"
    an_earlier_run(run)
    (run / ".directionkit").unlink()
    before = contents(run)
    with pytest.raises(StoreError, match="carries no directionkit ownership marker"):
        train(REPLACEMENT, run, progress=False, onnx=False, overwrite=True)
    assert contents(run) == before
