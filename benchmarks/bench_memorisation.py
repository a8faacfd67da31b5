"""Memorisation actually happens: MLPs fit shuffled labels, and true-label MLPs generalise.

    python benchmarks/bench_memorisation.py            # full run, by hand (see RESULTS.md)
    python benchmarks/bench_memorisation.py --quick    # seconds: a smoke check, no targets

Four runs of :func:`directionkit.reference_models.train.train`; the shuffled-label ones stop
as soon as they reach 95 % training accuracy (``stop_at_train_accuracy``) or at an epoch cap:

(a) MLP on the digits with every training label shuffled, until >= 95 % training accuracy;
(b) the same MLP on the true digits labels: test accuracy >= 95 %;
(c) MLP on the true Fashion-MNIST labels: test accuracy >= 85 %;
(d) MLP on Fashion-MNIST with every training label shuffled, trained on standardised inputs
    (``standardize=True``), until >= 95 % training accuracy, on the first
    ``--fashion-train-limit`` training images (default 10,000: all 60,000 take well over an
    hour on 2 CPU cores; see RESULTS.md).

Wall time is measured around ``train()``: data loading, every epoch's training and its
evaluation on the train and test sets (no ONNX export).  Exit status 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from directionkit.reference_models.datasets import DEFAULT_FASHION_MNIST_ROOT
from directionkit.reference_models.train import TrainConfig, train


@dataclass
class Case:
    name: str
    config: TrainConfig
    measure: str  # "train_accuracy" or "test_accuracy"
    target: float


def cases(args: argparse.Namespace) -> list[Case]:
    mlp = {"model": "mlp", "hidden": (512, 512), "optimizer": "adam", "lr": 1e-3, "device": "cpu"}
    fashion = {**mlp, "dataset": "fashion-mnist", "batch_size": 256}
    if args.quick:  # a few epochs on small slices: exercises the code, meets no target
        digits = {**mlp, "dataset": "digits", "batch_size": 64, "epochs": 3}
        small = {**fashion, "train_limit": 2000, "test_limit": 500, "epochs": 2}
        found = [
            Case(
                "(a) digits, shuffled", TrainConfig(**digits, corruption=1.0), "train_accuracy", 0
            ),
            Case("(b) digits, true", TrainConfig(**digits), "test_accuracy", 0),
            Case("(c) fashion-mnist, true", TrainConfig(**small), "test_accuracy", 0),
            Case(
                "(d) fashion-mnist, shuffled",
                TrainConfig(**small, corruption=1.0),
                "train_accuracy",
                0,
            ),
        ]
    else:
        digits = {**mlp, "dataset": "digits", "batch_size": 64}
        found = [
            Case(
                "(a) digits, shuffled",
                TrainConfig(**digits, corruption=1.0, epochs=500, stop_at_train_accuracy=0.95),
                "train_accuracy",
                0.95,
            ),
            Case("(b) digits, true", TrainConfig(**digits, epochs=30), "test_accuracy", 0.95),
            Case(
                "(c) fashion-mnist, true", TrainConfig(**fashion, epochs=15), "test_accuracy", 0.85
            ),
            Case(
                "(d) fashion-mnist, shuffled",
                TrainConfig(
                    **{**fashion, "hidden": args.fashion_hidden, "batch_size": 128},
                    standardize=True,
                    corruption=1.0,
                    epochs=args.fashion_max_epochs,
                    train_limit=args.fashion_train_limit,
                    stop_at_train_accuracy=0.95,
                ),
                "train_accuracy",
                0.95,
            ),
        ]
    if not (DEFAULT_FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").exists():
        print(f"Fashion-MNIST not found under {DEFAULT_FASHION_MNIST_ROOT}: skipping (c), (d)")
        found = [c for c in found if c.config.dataset != "fashion-mnist"]
    return [c for c in found if args.only is None or c.name[1] in args.only]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke check")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--only", help="letters of the runs to do, e.g. 'ab'")
    parser.add_argument(
        "--fashion-train-limit",
        type=int,
        default=10_000,
        help="(d): memorise the first N train images (default 10000; 60000 for all)",
    )
    parser.add_argument("--fashion-max-epochs", type=int, default=500, help="(d): epoch cap")
    parser.add_argument(
        "--fashion-hidden",
        type=int,
        nargs="+",
        default=[512, 512],
        help="(d): hidden widths (default 512 512)",
    )
    parser.add_argument("--out", type=Path, help="keep the run directories here")
    parser.add_argument("--progress", action="store_true", help="show tqdm bars")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scratch = tempfile.TemporaryDirectory(prefix="bench-memorisation-")
    out = args.out or Path(scratch.name)
    print(
        f"machine: {platform.machine()} {_cpu_model()}, {os.cpu_count()} cores; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    missed = []
    for case in cases(args):
        name = case.name.split()[0].strip("()")
        began = time.perf_counter()
        result = train(case.config, out / name, progress=args.progress, onnx=False)
        seconds = time.perf_counter() - began
        last = result.history.isel(epoch=-1)
        met = float(last[case.measure]) >= case.target
        if args.quick:
            verdict = "no target (--quick)"
        else:
            verdict = f"target {case.measure} >= {case.target:g}: {'met' if met else 'MISSED'}"
            if not met:
                missed.append(case.name)
        c = case.config
        print(
            f"{case.name}: MLP {'-'.join(map(str, c.hidden))}"
            f"{', standardised inputs' if c.standardize else ''}, adam lr {c.lr:g}, batch "
            f"{c.batch_size}, {result.history.attrs['n_train']} train examples: "
            f"{result.final_epoch} epochs, {seconds:.1f} s "
            f"(epochs alone {float(result.history['epoch_seconds'].sum()):.1f} s); "
            f"train acc {float(last['train_accuracy']):.4f}, "
            f"test acc {float(last['test_accuracy']):.4f}; {verdict}; "
            f"load average now {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    scratch.cleanup()
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
