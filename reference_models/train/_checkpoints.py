"""A run's saved state: checkpoints, ``resume.pt``, and atomic writes of its files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from directionkit.errors import StoreError
from directionkit.reference_models.train._data import _Data

_FORMAT = 1  # version of resume.pt's layout


def _checkpoint_path(run: Path, epoch: int) -> Path:
    return run / "checkpoints" / f"epoch_{epoch:04d}.pt"


def _saved_checkpoints(run: Path) -> dict[int, Path]:
    found = {}
    for path in (run / "checkpoints").glob("epoch_*.pt"):
        suffix = path.stem.removeprefix("epoch_")
        if suffix.isdigit():
            found[int(suffix)] = path
    return dict(sorted(found.items()))


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; rename it to ``path`` on success."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's ``state_dict`` on CPU, so a checkpoint loads on machines without a GPU."""
    return {name: value.detach().to("cpu") for name, value in model.state_dict().items()}


def _saved_state(model: nn.Module, data: _Data) -> dict[str, torch.Tensor]:
    """The ``state_dict`` to save: on CPU, the input standardisation folded into layer one.

    The model trains on ``(x - shift) / scale``; its first ``Linear`` computes
    ``W' x' + b'``, which equals ``(W' / scale) x + (b' - W' shift / scale)`` on raw inputs.
    """
    state = _cpu_state(model)
    if data.shift is None:
        return state
    name = next(n for n, m in model.named_modules() if isinstance(m, nn.Linear))
    weight = state[f"{name}.weight"].double()
    shift = data.shift
    dtype = state[f"{name}.weight"].dtype
    state[f"{name}.bias"] = (state[f"{name}.bias"].double() - weight @ shift / data.scale).to(dtype)
    state[f"{name}.weight"] = (weight / data.scale).to(dtype)
    return state


def _save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically; a failed write is a :class:`StoreError`."""
    try:
        # into a Python file, so that a failed write leaves its OSError (ENOSPC, say) in
        # the RuntimeError torch's writer raises, as its __context__
        with _replacing(path) as temporary, temporary.open("wb") as handle:
            torch.save(obj, handle)
    except (OSError, RuntimeError) as err:  # torch's writer fails with a RuntimeError
        raise _write_failed(path, err) from err


def _write_text(path: Path, text: str) -> None:
    try:
        with _replacing(path) as temporary:
            temporary.write_text(text)
    except OSError as err:
        raise _write_failed(path, err) from err


def _os_error(err: BaseException) -> OSError | None:
    """The OSError ``err`` is or was raised from (its ``__cause__``/``__context__`` chain)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _write_failed(path: Path, err: BaseException) -> StoreError:
    """The error for a file of a run that could not be written (a full disk, say)."""
    cause = _os_error(err)
    reason = str(cause) if cause is not None else f"{type(err).__name__}: {err}"
    return StoreError(f"Could not write {str(path)!r}: {reason}.")


def _save_resume_state(
    path: Path,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    history: Mapping[str, list[float]],
) -> None:
    """Save ``resume.pt``: model, optimiser and history after ``epoch``."""
    _save(
        {
            "format": _FORMAT,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "history": history,
        },
        path,
    )
