"""The ``directionkit`` command: parses arguments and calls the public API, nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

from directionkit._api import METRICS
from directionkit._version import __version__
from directionkit.errors import DirectionKitError, StoreError
from directionkit.preprocessing import LAYOUTS
from directionkit.reference_models._train_cli import add_arguments as add_train_arguments


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="directionkit",
        description="Measure how much a trained network relies on single directions "
        "(Morcos et al., ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"directionkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train a small MLP on the bundled digits data and measure its hidden units",
    )
    demo.add_argument("--out", required=True, help="where to write the analysis (zarr store)")
    demo.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    show = commands.add_parser("show", help="summarise a saved analysis")
    show.add_argument("path", help="a zarr store written by directionkit")

    analyze = commands.add_parser(
        "analyze",
        help="audit a model (an .onnx file) on labelled data and save every measure",
        description="Run every experiment of the paper on MODEL and save the analysis as a "
        "zarr store. Inputs are float32 images in [0, 1], NCHW, then --scale, --mean/--std "
        "and --layout as the model needs; they are checked against the model's input shape.",
    )
    analyze.add_argument(
        "model",
        help="path to an .onnx file (external data next to it), or a training run directory "
        "(its model.onnx)",
    )
    analyze.add_argument(
        "--data", required=True,
        help="digits, fashion-mnist, PATH.npz, a training run directory (its data, with the "
        "labels it trained on), or a directory of MNIST-format IDX files",
    )  # fmt: skip
    analyze.add_argument("--out", required=True, help="where to write the analysis (zarr)")
    analyze.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    analyze.add_argument("--split", choices=("train", "test"), default="test",
                         help="the split every measure is computed on (default test)")  # fmt: skip
    analyze.add_argument("--limit", type=int, help="use only the first N examples of a split")
    analyze.add_argument("--sites", nargs="+", help="site names (default: every activation)")
    analyze.add_argument(
        "--metrics", nargs="+", choices=METRICS,
        help="which measures (default: all; noise sd comes from the train split)",
    )  # fmt: skip
    analyze.add_argument(
        "--scopes", nargs="+", default=["all"], help="ablation scopes: all, a site, last:K"
    )
    analyze.add_argument("--orderings", type=int, default=10, help="ablation orderings (10)")
    analyze.add_argument("--fractions", type=int, default=21, help="ablation fractions (21)")
    analyze.add_argument("--ablate-to", choices=("zero", "mean"), default="zero")
    analyze.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA if present")
    analyze.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    analyze.add_argument("--batch-size", type=int, default=1000, help="examples per batch")
    analyze.add_argument("--scale", type=float, default=1.0,
                         help="multiply the [0, 1] inputs by this first (e.g. 255)")  # fmt: skip
    analyze.add_argument("--mean", type=float, nargs="+", help="then subtract (per channel)")
    analyze.add_argument("--std", type=float, nargs="+", help="then divide by (per channel)")
    analyze.add_argument("--layout", choices=(*LAYOUTS, "auto"), default="auto",
                         help="the model's input layout (default: the one that fits)")  # fmt: skip
    analyze.add_argument("--no-progress", action="store_true", help="no progress bars")

    train = commands.add_parser(
        "train",
        help="train a reference model (optionally on shuffled labels) into a run directory",
        description="Train one of the paper's reference models from one config; writes "
        "checkpoints, history.zarr, config.json and model.onnx to --out, and resumes an "
        "interrupted run of the same config. Needs the torch extra.",
    )
    add_train_arguments(train)

    report = commands.add_parser("report", help="write PNG figures and report.html")
    report.add_argument("path", help="a zarr store written by `directionkit analyze`")
    report.add_argument("--out", required=True, help="directory for the figures and HTML")
    report.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def _analyze(args: argparse.Namespace) -> None:
    """``directionkit analyze``: load, prepare, check, measure, save, summarise."""
    from directionkit._api import analyze, as_adapter
    from directionkit.preprocessing import load_data, prepare_inputs
    from directionkit.reference_models.runs import is_run_dir
    from directionkit.report import summary_table
    from directionkit.store import check_writable

    check_writable(args.out, overwrite=args.overwrite)  # fail before any work
    model = args.model
    if is_run_dir(model):  # a run directory of `directionkit train`: its export
        model = os.path.join(model, "model.onnx")
        if not os.path.isfile(model):
            raise StoreError(
                f"The training run {args.model!r} has no model.onnx (trained with --no-onnx, "
                "or not finished); rerun `directionkit train` on it without --no-onnx."
            )
    adapter = as_adapter(model, sites=args.sites, device=args.device, data=None)
    shape = getattr(adapter, "input_shape", None)

    def prepared(split: str) -> tuple[np.ndarray, np.ndarray]:
        X, y = load_data(args.data, split, args.limit)
        X = prepare_inputs(X, scale=args.scale, mean=args.mean, std=args.std,
                           layout=args.layout, input_shape=shape)  # fmt: skip
        return X, y

    data = prepared(args.split)
    metrics = args.metrics
    wants_noise = metrics is None or "noise" in metrics
    train = prepared("train") if wants_noise else None
    result = analyze(
        adapter, data, train_data=train, metrics=metrics, scopes=args.scopes,
        orderings=args.orderings, fractions=args.fractions, ablate_to=args.ablate_to,
        seed=args.seed, batch_size=args.batch_size, progress=not args.no_progress,
    )  # fmt: skip
    name = os.path.basename(os.path.normpath(args.model))
    result.dataset.attrs["model"] = f"{name} {result.dataset.attrs['model']}"
    result.dataset.attrs["data"] = f"{args.data}:{args.split} {result.dataset.attrs['data']}"
    path = result.save(args.out, overwrite=args.overwrite)
    print(summary_table(result.dataset, per_site=False))
    print(f"saved to {path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``directionkit`` console script.

    Examples
    --------
    >>> main(["show", "/nonexistent/run.zarr"])
    2
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from directionkit._demo import digits_demo, summary

            result = digits_demo(hidden=args.hidden, seed=args.seed)
            path = result.save(args.out, overwrite=args.overwrite)
            print(summary(result))
            print(f"saved to {path}")
        elif args.command == "show":
            from directionkit.store import open as open_store

            print(open_store(args.path))
        elif args.command == "analyze":
            _analyze(args)
        elif args.command == "train":
            try:
                from directionkit.reference_models.train import TrainConfig  # noqa: F401
            except ImportError as err:
                print(f"directionkit: error: training needs PyTorch ({err}); install it with "
                      "pip install torch==2.13.0", file=sys.stderr)  # fmt: skip
                return 2
            from directionkit.reference_models._train_cli import run as run_training

            return run_training(args)
        elif args.command == "report":
            from directionkit.report import write_report

            print(f"wrote {write_report(args.path, args.out, overwrite=args.overwrite)}")
    except DirectionKitError as err:
        message = str(err).replace("pass overwrite=True", "pass --overwrite")
        print(f"directionkit: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
