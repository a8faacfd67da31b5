"""The ONNX export of a run's final model (``model.onnx``, or ``model.onnx.error``)."""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from directionkit.errors import DirectionKitError, StoreError
from directionkit.reference_models.runs import EXPORT_ERROR
from directionkit.reference_models.train._checkpoints import (
    _os_error,
    _replacing,
    _saved_state,
    _write_text,
)
from directionkit.reference_models.train._data import _Data


def _export_final(model: nn.Module, data: _Data, path: Path, *, retrained: bool) -> Path:
    """Export ``model`` (its saved weights) to ``path`` unless it was not ``retrained`` and
    ``path`` exists (a finished run found again); ``path``."""
    if retrained or not path.exists():
        # two rows, so the exporter does not specialise the batch axis to a size of 1
        example = data.x_train[:1].expand(2, *data.input_shape)
        _export_or_record(model, _saved_state(model, data), example, path)
    return path


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    # the exporter logs a warning per torchvision operator it cannot register when torchvision
    # is not installed; none of them matter for these models
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _export_or_record(
    model: nn.Module, state: Mapping[str, torch.Tensor], example: torch.Tensor, path: Path
) -> None:
    """Export ``model.onnx``; on failure record why in the run directory and raise.

    Training is done and saved by then, so a failing exporter (e.g. ``onnxscript``
    missing) must not look like a failed run: the reason goes to :data:`EXPORT_ERROR`
    (which ``directionkit analyze RUN`` reports) and the error says how to finish.  A file
    that could not be written (an OSError, a full disk say) is a :class:`StoreError`.
    """
    error = path.with_name(EXPORT_ERROR)
    try:
        _export_onnx(model, state, example, path)
    except Exception as err:  # any exporter failure: the run itself is complete
        reason = f"{type(err).__name__}: {err}".strip()
        with contextlib.suppress(StoreError):  # recorded if it can be (not on a full disk)
            _write_text(error, reason + "\n")
        if (cause := _os_error(err)) is not None:  # the exporter works; the file cannot be written
            raise StoreError(
                f"Could not write {str(path)!r}: {cause}. Training finished and is saved in "
                f"{str(path.parent)!r} (checkpoints, history.zarr); free some space (or fix "
                "what stopped the write) and rerun the same `directionkit train` command: it "
                "finds the finished run and only exports."
            ) from err
        raise DirectionKitError(
            f"Training finished and is saved in {str(path.parent)!r} (checkpoints, "
            f"history.zarr), but the ONNX export failed: {reason}. Install the exporter "
            "with pip install 'directionkit[torch]' (it brings onnxscript), then rerun the "
            "same `directionkit train` command: it finds the finished run and only exports."
        ) from err
    error.unlink(missing_ok=True)


def _export_onnx(
    model: nn.Module, state: Mapping[str, torch.Tensor], example: torch.Tensor, path: Path
) -> None:
    """Export a CPU copy of ``model`` holding the weights ``state`` (the saved ones)."""
    cpu = copy.deepcopy(model).to("cpu").eval()
    cpu.load_state_dict(state)
    batch = torch.export.Dim("batch")
    with _replacing(path) as temporary, warnings.catch_warnings(), _quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notes
        torch.onnx.export(
            cpu,
            (example.to("cpu").contiguous(),),
            str(temporary),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=["input"],
            output_names=["logits"],
            external_data=False,
            verbose=False,
        )
