"""Train the paper's reference models: one :class:`TrainConfig` in, one run directory out.

A run directory holds everything a later analysis needs, and enough to resume:

=============================== ============================================================
``config.json``                 the :class:`TrainConfig` (``TrainConfig.from_dict`` reads it)
``run.json``                    what the data gave: input shape, classes, example counts
``checkpoints/epoch_XXXX.pt``   the model's ``state_dict`` at each requested epoch and the
                                last one (plain tensors: ``torch.load(..., weights_only=True)``)
``resume.pt``                   model, optimiser and history after the latest finished epoch
``history.zarr``                per-epoch ``train_loss``, ``train_accuracy``, ``test_loss``,
                                ``test_accuracy`` and ``epoch_seconds`` (dim ``epoch``)
``model.onnx``                  the final model, batch axis free, in one file (no external
                                data file: every reference model is far below ONNX's 2 GB)
``model.onnx.error``            only when the export failed: why (``analyze`` reports it)
=============================== ============================================================

Checkpoints and ``model.onnx`` always take the data set's own inputs (as
:func:`~directionkit.reference_models.datasets.load` returns them), also when the MLP was
trained on standardised ones (``standardize``): the standardisation is folded into its
first layer when it is saved.

Training is deterministic for a seed on CPU (on one machine, at one torch thread count, which
sets the order of floating-point sums): the initial weights come from a generator
seeded from ``seed``, and at the start of every epoch both the shuffling order and the
dropout masks are re-seeded from ``(seed, epoch)``.  So a run killed after epoch ``k`` and
rerun resumes from ``resume.pt`` and ends with bit-identical weights to an uninterrupted run.
Every file is written under a temporary name and renamed into place, so an interruption
never leaves a half-written file behind.  A write that fails (a full disk, say) is a
:class:`~directionkit.errors.StoreError` naming the file: the run directory then holds the
epochs saved so far, and a rerun resumes there; when no epoch was saved yet, the files the
run had written are removed again.

Only a run directory of :func:`train` (or an empty folder) is ever written into or replaced,
and one ``train`` at a time: it holds a lock on the run directory throughout (a second
``train`` into it fails at once, naming the first one's process id).  A run directory carries
directionkit's ownership marker (``.directionkit``); ``overwrite`` replaces only a marked run
that holds nothing but what ``train`` writes, and anything else is refused before anything
is written.  A replaced run is not deleted up front: the new run saves its first epoch in a
folder beside it, and the two swap places in one atomic rename; only then is the old one
deleted.  A kill at any moment leaves either the old run complete or the new one, never a
mixture; the next ``train`` (or ``open``) removes the leftover.

The training metrics of an epoch are measured after it, in eval mode, on the labels the model
was trained on (corrupted labels included); the test metrics on the true test labels.
"""

from directionkit.reference_models.train._config import MODELS, OPTIMIZERS, TrainConfig
from directionkit.reference_models.train._history import HISTORY_VARIABLES
from directionkit.reference_models.train._loop import resolve_device as resolve_device
from directionkit.reference_models.train._loop import train
from directionkit.reference_models.train._models import build_model, load_model
from directionkit.reference_models.train._result import TrainResult

# resolve_device is importable from here as before, but (as before) not part of __all__
__all__ = [
    "HISTORY_VARIABLES",
    "MODELS",
    "OPTIMIZERS",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "load_model",
    "train",
]
