"""``directionkit train``: arguments and the call to :func:`~.train.train`, nothing else.

Importing this module does not import torch (``directionkit --help`` stays fast); :func:`run`
imports the training module when it is called.  Options left out take
:class:`~directionkit.reference_models.train.TrainConfig`'s defaults, so the defaults live in
one place.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_arguments", "run"]

# the options that fill TrainConfig (dest == field name); torch-free, so not read off the class
_CONFIG_FIELDS = tuple(
    """dataset data_root corruption label_seed train_limit test_limit model hidden dropout
    standardize batch_norm width blocks epochs optimizer lr momentum weight_decay batch_size
    seed device checkpoint_epochs stop_at_train_accuracy""".split()
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``directionkit train`` to ``parser``.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="directionkit train")
    >>> add_arguments(parser)
    >>> args = parser.parse_args(["--corruption", "1", "--hidden", "64", "64", "--out", "run"])
    >>> args.corruption, args.hidden, args.epochs, args.out
    (1.0, [64, 64], None, 'run')
    """
    _add_data_arguments(parser)
    _add_model_arguments(parser)
    _add_training_arguments(parser)
    _add_output_arguments(parser)


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the data set: which, where, how much, how corrupted."""
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", help="digits (default), fashion-mnist, mnist, cifar10, PATH.npz")
    data.add_argument("--data-root", help="directory of the data set's files")
    data.add_argument(
        "--corruption",
        type=float,
        metavar="P",
        help="fraction of training labels shuffled among themselves, in [0, 1] (default 0)",
    )
    data.add_argument("--label-seed", type=int, help="seed of the label shuffle (default --seed)")
    data.add_argument("--train-limit", type=int, metavar="N", help="use the first N train examples")
    data.add_argument("--test-limit", type=int, metavar="N", help="use the first N test examples")


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the model: family and shape."""
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=("mlp", "convnet", "resnet"), help="default mlp")
    model.add_argument(
        "--hidden", type=int, nargs="+", metavar="W", help="MLP hidden widths (default 512 512)"
    )
    model.add_argument("--dropout", type=float, help="MLP dropout after each ReLU (default 0)")
    model.add_argument(
        "--standardize",
        action="store_const",
        const=True,
        help="MLP: train on standardised inputs (folded into layer one when saved)",
    )
    model.add_argument(
        "--no-batch-norm",
        dest="batch_norm",
        action="store_const",
        const=False,
        help="ConvNet without batch normalisation",
    )
    model.add_argument("--width", type=float, help="ConvNet/ResNet width multiplier (default 1)")
    model.add_argument(
        "--blocks",
        type=int,
        nargs="+",
        metavar="B",
        help="ResNet blocks per stage (default 3 4 6 3)",
    )


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the training: epochs, optimiser, seed, device, checkpoints."""
    fit = parser.add_argument_group("training")
    fit.add_argument("--epochs", type=int, help="epochs to train (default 10)")
    fit.add_argument("--optimizer", choices=("adam", "sgd"), help="default adam")
    fit.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    fit.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    fit.add_argument("--weight-decay", type=float, help="default 0")
    fit.add_argument("--batch-size", type=int, help="default 128")
    fit.add_argument("--seed", type=int, help="seeds weights, shuffling, dropout (default 0)")
    fit.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto (CUDA if any)")
    fit.add_argument(
        "--checkpoint-epochs",
        type=int,
        nargs="+",
        metavar="E",
        help="also save the weights after these epochs (0: initial weights)",
    )
    fit.add_argument(
        "--stop-at-train-accuracy",
        type=float,
        metavar="A",
        help="stop once the training accuracy reaches A (e.g. 0.95)",
    )


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the output: the run directory and what is written."""
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, help="the run directory")
    out.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run of a different config in --out (only a run train wrote, holding "
        "nothing else, or an empty folder is ever replaced; the old run stays in place until "
        "the new one has saved its first epoch beside it, then the two swap in one rename)",
    )
    out.add_argument(
        "--no-resume",
        action="store_true",
        help="start again even if --out holds an unfinished run of this config",
    )
    out.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    add_progress(out)


def add_progress(parser: Any) -> None:
    """``--progress`` / ``--no-progress`` (alias ``--quiet``): default, bars only when
    standard error is a terminal (a log file gets none)."""
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bars (default: only when standard error is a terminal)",
    )  # fmt: skip
    parser.add_argument("--quiet", dest="progress", action="store_false", help=argparse.SUPPRESS)


def shows_progress(args: argparse.Namespace) -> bool:
    """Whether to draw progress bars: as asked, else only on a terminal.

    Examples
    --------
    >>> shows_progress(argparse.Namespace(progress=False))
    False
    """
    if args.progress is not None:
        return bool(args.progress)
    return sys.stderr.isatty()


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` (from a parser set up by :func:`add_arguments`) say; print a summary.

    Errors from the library (:class:`~directionkit.errors.DirectionKitError`) propagate, for
    the calling command to report.

    Returns
    -------
    int
        0, the exit status.
    """
    from directionkit.reference_models.train import TrainConfig, train

    given: dict[str, Any] = {
        name: getattr(args, name) for name in _CONFIG_FIELDS if getattr(args, name) is not None
    }
    config = TrainConfig(**given)
    result = train(
        config,
        args.out,
        progress=shows_progress(args),
        resume=not args.no_resume,
        overwrite=args.overwrite,
        onnx=not args.no_onnx,
    )
    last = result.history.isel(epoch=-1)
    how = (
        "already complete"
        if result.resumed_from == result.final_epoch
        else (f"resumed from epoch {result.resumed_from}" if result.resumed_from else "trained")
    )
    print(
        f"{config.model} on {config.dataset} (corruption {config.corruption:g}), "
        f"{result.final_epoch} epochs ({how}): "
        f"train accuracy {float(last['train_accuracy']):.4f}, "
        f"test accuracy {float(last['test_accuracy']):.4f}"
    )
    print(f"saved to {result.out_dir}")
    return 0
