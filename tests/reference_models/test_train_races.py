"""``train`` under kills at every rename and under concurrent writers (issue 23, L1 and L2).

- **L1.**  ``train --overwrite`` is killed (``strace -e inject=...:signal=SIGKILL``) at each
  rename it makes, one run per rename.  After every kill the run folder holds either the old
  run complete or the new one (never a mixture); the next ``train`` of the new config
  finishes it, and the result is the new run, equal to one trained without a kill.
- **L2.**  Two ``train`` processes into one new ``--out``, released by a barrier at the same
  instant, many times: exactly one trains, the other is refused (by the lock, or, when the
  first had already finished, as a different run); the run left is never a mixture.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from directionkit.errors import StoreError  # noqa: E402
from directionkit.reference_models.train import TrainConfig, train  # noqa: E402
from directionkit.results import open_dataset  # noqa: E402

pytestmark = [pytest.mark.requires_torch, pytest.mark.usefixtures("one_torch_thread")]

ARGS = ["--dataset", "digits", "--hidden", "16", "--epochs", "2", "--train-limit", "300",
        "--device", "cpu", "--no-onnx", "--quiet"]  # fmt: skip
OLD_LR, NEW_LR = "0.05", "0.01"
RENAMES = "rename,renameat,renameat2"


#: one thread everywhere: training is bit-identical across processes only at one thread count
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from directionkit.cli import main; "
            "sys.exit(main())", "train", *args]  # fmt: skip


def _state(run: Path) -> tuple[str, dict[str, Any]]:
    """Which complete run ``run`` holds ("old" or "new" by its lr), checked file by file:
    a config, the run.json beside it, resume.pt and checkpoints of the same training, and
    a history that verifies and says the same."""
    config = json.loads((run / "config.json").read_text())
    which = {float(OLD_LR): "old", float(NEW_LR): "new"}[config["lr"]]
    assert json.loads((run / "run.json").read_text())["n_classes"] == 10
    state = torch.load(run / "resume.pt", weights_only=True)
    epochs = state["epoch"]
    history = run / "history.zarr"
    if history.exists():  # written last: when there, it is the finished run's
        stored = open_dataset(history)
        assert json.loads(stored.attrs["config"])["lr"] == config["lr"]
        assert list(stored["train_loss"].values) == state["history"]["train_loss"]
    return which, {"epochs": epochs}


def _weights(run: Path) -> dict[str, Any]:
    return torch.load(run / "checkpoints" / "epoch_0002.pt", weights_only=True)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.slow
def test_a_kill_at_every_rename_of_train_overwrite_leaves_one_whole_run(
    tmp_path: Path,
) -> None:
    reference = tmp_path / "reference"
    subprocess.run(_cli(*ARGS, "--lr", NEW_LR, "--out", str(reference)), check=True,
                   env=ONE_THREAD)  # fmt: skip
    config = TrainConfig.from_dict(json.loads((reference / "config.json").read_text()))
    template = tmp_path / "template"
    subprocess.run(_cli(*ARGS, "--lr", OLD_LR, "--out", str(template)), check=True,
                   env=ONE_THREAD)  # fmt: skip
    # strace counts the calls of each thread apart: the N-th rename of whichever thread
    # gets there first is killed, for N = 1, 2, ... until an overwrite runs through
    outcomes = []
    for when in range(1, 200):
        run = tmp_path / f"run{when}"
        shutil.copytree(template, run)
        killed = subprocess.run(
            ["strace", "-f", "-qq", "-o", os.devnull,
             "-e", f"inject={RENAMES}:signal=SIGKILL:when={when}",
             *_cli(*ARGS, "--lr", NEW_LR, "--out", str(run), "--overwrite")],
            capture_output=True, text=True, env=ONE_THREAD,
        )  # fmt: skip
        which, _ = _state(run)  # whole: the old run or the new one, nothing mixed
        if killed.returncode == 0:  # no thread made `when` renames: all were killed once
            assert which == "new"
            break
        outcomes.append(which)
        with warnings.catch_warnings():  # the next train tidies the leftover beside it
            warnings.simplefilter("ignore", RuntimeWarning)
            train(config, run, progress=False, onnx=False, overwrite=True)
        assert _state(run)[0] == "new"
        final, expected = _weights(run), _weights(reference)
        assert all(torch.equal(final[k], expected[k]) for k in expected), when
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{run.name}.")]
        assert leftovers == []
    assert len(outcomes) >= 5, outcomes  # files, checkpoints, history, the swap of the runs
    assert "old" in outcomes and "new" in outcomes, outcomes  # kills before and after the swap


def _racer(out: Any, lr: float, barrier: Any, rounds: int, folder: str) -> None:
    torch.set_num_threads(1)
    for i in range(rounds):
        config = TrainConfig(dataset="digits", hidden=(8,), epochs=1, train_limit=200,
                             test_limit=100, lr=lr, device="cpu")  # fmt: skip
        barrier.wait(timeout=120)
        try:
            train(config, Path(folder) / f"r{i}", progress=False, onnx=False)
            out.put((i, lr, "trained"))
        except StoreError as err:
            out.put((i, lr, f"refused: {err}"))


@pytest.mark.slow
def test_two_trains_started_together_into_one_new_out_never_mix(tmp_path: Path) -> None:
    rounds = int(os.environ.get("DIRECTIONKIT_RACE_ROUNDS", "100"))
    context = multiprocessing.get_context("spawn")
    out, barrier = context.Queue(), context.Barrier(2)
    lrs = (0.05, 0.01)
    workers = [
        context.Process(target=_racer, args=(out, lr, barrier, rounds, str(tmp_path)))
        for lr in lrs
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=600) for _ in range(2 * rounds)]
    for worker in workers:
        worker.join(timeout=60)
    by_round: dict[int, dict[float, str]] = {}
    for i, lr, outcome in results:
        by_round.setdefault(i, {})[lr] = outcome
    locked = 0
    for i, outcomes in sorted(by_round.items()):
        trained = [lr for lr, outcome in outcomes.items() if outcome == "trained"]
        assert len(trained) == 1, (i, outcomes)
        refused = next(o for o in outcomes.values() if o != "trained")
        assert (
            "being written by another process" in refused
            or "holds a run of a different config" in refused
        ), refused
        locked += "being written by another process" in refused
        run = tmp_path / f"r{i}"
        config = json.loads((run / "config.json").read_text())
        assert config["lr"] == trained[0]  # the winner's config ...
        history = open_dataset(run / "history.zarr")
        assert json.loads(history.attrs["config"])["lr"] == trained[0]  # ... and history
        state = torch.load(run / "resume.pt", weights_only=True)
        assert list(history["train_loss"].values) == state["history"]["train_loss"]
        assert sorted(p.name for p in run.parent.iterdir() if p.name.startswith(f".r{i}.")) == []
    assert locked > 0  # the race was real: at least once both were inside at the same time
