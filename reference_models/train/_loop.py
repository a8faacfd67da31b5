"""Training: :func:`train`, the epoch loop and its evaluation (see the package doc)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from directionkit._utils.validation import parameter_error
from directionkit.errors import StoreError
from directionkit.reference_models.train._checkpoints import (
    _checkpoint_path,
    _save,
    _save_resume_state,
    _saved_checkpoints,
    _saved_state,
)
from directionkit.reference_models.train._config import TrainConfig
from directionkit.reference_models.train._data import _Data, _prepare_data
from directionkit.reference_models.train._export import _export_final
from directionkit.reference_models.train._history import HISTORY_VARIABLES, _write_history
from directionkit.reference_models.train._models import build_model
from directionkit.reference_models.train._result import TrainResult
from directionkit.reference_models.train._run_folder import (
    _after_failed_write,
    _check_out_dir,
    _check_replacing,
    _first_missing,
    _make_folder,
    _remove_outputs,
    _take_place,
    _write_run_files,
)
from directionkit.results._atomic import _ACTIVE, _cleanup, _scratch
from directionkit.results._ownership import writer_lock

_EVAL_BATCH = 1024
# purposes a seed is derived for, so no two random streams share a seed
_SEED_INIT, _SEED_EPOCH = 0, 1


def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    resume: bool = True,
    overwrite: bool = False,
    onnx: bool = True,
    on_epoch_end: Callable[[int, Mapping[str, float]], None] | None = None,
) -> TrainResult:
    """Train the model ``config`` describes and write a run directory (see the module doc).

    Parameters
    ----------
    config : TrainConfig
    out_dir : str or path-like
        The run directory; created (with its parents) if missing.
    progress : bool, default True
        Show a tqdm bar advancing once per epoch, with the latest accuracies.
    resume : bool, default True
        If ``out_dir`` holds a run of the same config, continue from its latest epoch (or just
        return it when it is complete).  False starts that run again from scratch.
    overwrite : bool, default False
        Replace a run of a *different* config in ``out_dir``.  The new run saves its first
        epoch beside the old one, then the two swap places in one atomic rename and the
        old one is deleted; if training stops before that, the old run is untouched.
        Only a run carrying directionkit's ownership marker and holding nothing but what
        ``train`` writes is replaced (anything else in it is named in the error).  Without
        ``overwrite`` such a directory is refused before anything is written.  A non-empty
        ``out_dir`` that is not recognisably a run of ``train`` is refused either way,
        naming what it holds: a run has a ``config.json`` that is a :class:`TrainConfig`
        and, beside it, the ``run.json`` ``train`` writes with it.
    onnx : bool, default True
        Export the final model to ``out_dir/model.onnx`` (a free batch axis; input
        ``input``, output ``logits``).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, metrics)`` once an epoch's checkpoints are saved;
        ``metrics`` maps :data:`HISTORY_VARIABLES` to that epoch's values.  An exception it
        raises stops training there, leaving a resumable run.

    Returns
    -------
    TrainResult

    Raises
    ------
    InvalidParameterError
        ``config`` is not a :class:`TrainConfig`, or its device is unavailable.
    StoreError
        ``out_dir`` holds something else (see ``overwrite``), or another ``train`` is
        writing it (the error names its process id); nothing is written then.  Or a
        file could not be written (a full disk, say): the message names it, and ``out_dir``
        holds the epochs saved so far (rerun to resume), or, when no epoch was saved, none of
        this run's files (a folder ``train`` created is removed again).
    DirectionKitError
        The ONNX export failed after training was saved; the reason is also written to
        ``out_dir/model.onnx.error``, and a rerun of the same config only exports (a
        :class:`StoreError` when ``model.onnx`` could not be written).
    DatasetNotFoundError, InvalidDataError
        The data set cannot be loaded; nothing is written then.

    Examples
    --------
    >>> import tempfile
    >>> config = TrainConfig(dataset="digits", hidden=(32,), epochs=3, lr=1e-2, seed=0)
    >>> with tempfile.TemporaryDirectory() as run:
    ...     result = train(config, run, progress=False, onnx=False)
    >>> result.history.sizes["epoch"], sorted(result.checkpoints)
    (3, [3])
    >>> float(result.history["test_accuracy"][-1]) > 0.85
    True
    """
    if not isinstance(config, TrainConfig):
        raise parameter_error("config", "train", "a TrainConfig", config)
    run = Path(out_dir)
    device = _resolve_device(config.device)
    created = _first_missing(run)  # removed again if the run fails before saving an epoch
    _make_folder(run.parent)
    try:
        with writer_lock(run, "train"):
            return _train_locked(
                config, run, created, device, progress=progress, resume=resume,
                overwrite=overwrite, onnx=onnx, on_epoch_end=on_epoch_end,
            )  # fmt: skip
    except BaseException:
        if created is not None and created != run:  # the parents this call made, if empty
            for folder in run.parents:
                try:
                    folder.rmdir()
                except OSError:
                    break
                if folder == created:
                    break
        raise


def _train_locked(
    config: TrainConfig,
    run: Path,
    created: Path | None,
    device: torch.device,
    *,
    progress: bool,
    resume: bool,
    overwrite: bool,
    onnx: bool,
    on_epoch_end: Callable[[int, Mapping[str, float]], None] | None,
) -> TrainResult:
    """:func:`train` once it holds the run's lock (see there)."""
    previous = _check_out_dir(run, config, overwrite=overwrite)
    fresh = previous != config or not resume
    replacing = fresh and previous is not None
    if replacing:
        _check_replacing(run)
    data = _prepare_data(config, device)  # may raise: nothing written yet
    if fresh and not replacing:
        _remove_outputs(run)  # scratch files of a killed write, in a new or empty folder
    # a replaced run stays in place until the new one has an epoch: it is written beside
    home = _scratch(run, "tmp") if replacing else run
    state_path = home / "resume.pt"
    state = None
    if not fresh and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
    saved = 0 if state is None else int(state["epoch"])  # what a rerun would resume from
    complete = False  # every epoch trained and saved: a rerun only writes what is missing
    _ACTIVE.add(home)
    try:
        _write_run_files(home, config, data.meta)
        model, optimizer, history = _initial_model(config, data, device, state)
        resumed_from = start = saved  # 0 for a fresh run
        if start == 0 and 0 in config.checkpoint_epochs:
            _save(_saved_state(model, data), _checkpoint_path(home, 0))

        done = _finished(config, history)
        bar = _progress(progress, config, start)
        try:
            for epoch in range(start + 1, config.epochs + 1):
                if done:
                    break
                metrics, done = _run_epoch(model, optimizer, data, config, epoch, device, history,
                                           home)  # fmt: skip
                saved = epoch
                if home != run:  # the new run has an epoch: it takes the old one's place
                    home = _take_place(home, run)
                _show_progress(bar, metrics)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, dict(metrics))
        finally:
            if bar is not None:
                bar.close()

        if home != run:  # (no epoch was trained: the config asked for none)
            home = _take_place(home, run)
        complete = True
        final_epoch = len(history["train_loss"])
        final = _checkpoint_path(run, final_epoch)
        if not final.exists():  # e.g. killed between the two saves of the last epoch
            _save(_saved_state(model, data), final)
        dataset = _write_history(run, history, config, data.meta)
    except StoreError as err:  # a write failed: say what the run directory holds now
        now = _after_failed_write(run, home, saved, created, complete=complete)
        raise StoreError(f"{err} {now}") from err
    finally:
        _ACTIVE.discard(home)
        if home != run:  # stopped before the new run saved an epoch: the old one stays
            _cleanup(home)
    onnx_path = None
    if onnx:
        retrained = fresh or resumed_from < final_epoch
        onnx_path = _export_final(model, data, run / "model.onnx", retrained=retrained)
    checkpoints = {
        e: p
        for e, p in _saved_checkpoints(run).items()
        if e in config.checkpoint_epochs or e == final_epoch
    }
    return TrainResult(run, config, dataset, checkpoints, final_epoch, onnx_path, resumed_from)


def _initial_model(
    config: TrainConfig, data: _Data, device: torch.device, state: Mapping[str, Any] | None
) -> tuple[nn.Module, torch.optim.Optimizer, dict[str, list[float]]]:
    """The model, its optimiser and the history to train on from: seeded afresh, then, with a
    ``state`` (of ``resume.pt``), as that left them."""
    torch.manual_seed(_derive_seed(config.seed, _SEED_INIT))
    model = build_model(config, data.input_shape, data.n_classes).to(device)
    optimizer = _optimizer(config, model)
    history: dict[str, list[float]] = {name: [] for name in HISTORY_VARIABLES}
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = {name: list(state["history"][name]) for name in HISTORY_VARIABLES}
    return model, optimizer, history


def _run_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: _Data,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
    history: dict[str, list[float]],
    home: Path,
) -> tuple[dict[str, float], bool]:
    """Train ``epoch``, append its metrics to ``history`` and save it into ``home``: its
    metrics, and whether training is done."""
    began = time.perf_counter()
    _train_epoch(model, optimizer, data, config, epoch, device)
    metrics = {
        **_evaluate(model, data.x_train, data.y_train, "train"),
        **_evaluate(model, data.x_test, data.y_test, "test"),
        "epoch_seconds": time.perf_counter() - began,
    }
    for name in HISTORY_VARIABLES:
        history[name].append(metrics[name])
    done = _finished(config, history)
    if epoch in config.checkpoint_epochs or done:
        _save(_saved_state(model, data), _checkpoint_path(home, epoch))
    _save_resume_state(home / "resume.pt", epoch, model, optimizer, history)
    return metrics, done


def _show_progress(bar: Any, metrics: Mapping[str, float]) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix(
            train_acc=f"{metrics['train_accuracy']:.3f}",
            test_acc=f"{metrics['test_accuracy']:.3f}",
        )


# --------------------------------------------------------------------------- helpers


def resolve_device(name: str) -> str:
    """The device ``name`` stands for: ``"auto"`` is ``"cuda"`` when torch sees a GPU.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    return _resolve_device(name).type


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise parameter_error(
            "device", "train", "'cpu' or 'auto' here (torch sees no CUDA device)", name
        )
    return torch.device(name)


def _derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed for one purpose, derived from the run's seed (``SeedSequence``)."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def _optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    bounds = [(i, min(i + size, n)) for i in range(0, n, size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        # a batch of one example breaks batch norm in training mode; fold it into the last
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: _Data,
    config: TrainConfig,
    epoch: int,
    device: torch.device,
) -> None:
    # everything random in an epoch depends on (seed, epoch) alone, so resuming is exact
    seed = _derive_seed(config.seed, _SEED_EPOCH, epoch)
    order = torch.randperm(data.x_train.shape[0], generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # dropout masks (CPU and CUDA generators)
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    for lo, hi in _batches(len(order), config.batch_size):
        index = order[lo:hi].to(device)
        x, y = data.x_train[index], data.y_train[index]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for lo, hi in _batches(x.shape[0], _EVAL_BATCH):
        logits = model(x[lo:hi])
        target = y[lo:hi]
        total_loss += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    n = x.shape[0]
    return {f"{split}_loss": total_loss / n, f"{split}_accuracy": correct / n}


def _finished(config: TrainConfig, history: Mapping[str, Sequence[float]]) -> bool:
    trained = len(history["train_accuracy"])
    if trained >= config.epochs:
        return True
    target = config.stop_at_train_accuracy
    return bool(trained and target is not None and history["train_accuracy"][-1] >= target)


def _progress(enabled: bool, config: TrainConfig, start: int) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=config.epochs,
        initial=start,
        unit="epoch",
        desc=f"{config.model} on {config.dataset} (corruption {config.corruption:g})",
    )
