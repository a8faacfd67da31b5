"""The command line's arguments: one parser, a function per command that adds its options.
Imports nothing but the standard library and directionkit's option names, so that
``directionkit --help`` answers at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sized
from typing import TYPE_CHECKING

from directionkit._utils.choices import (
    ABLATE_TO,
    ALL_KINDS,
    ALL_METRICS,
    DEFAULT_NOISE_SCALES,
    DIRECTION_KINDS,
    FORMATS,
    LAYOUTS,
    TOML_FORMAT,
)
from directionkit._version import __version__
from directionkit.reference_models._train_cli import add_arguments as add_train_arguments
from directionkit.reference_models._train_cli import add_progress

if TYPE_CHECKING:  # numpy, like every other library, is imported where a command needs it
    import numpy as np


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="directionkit",
        description="Measure how much a trained network relies on single directions "
        "(Morcos et al., ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"directionkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_demo(commands)
    _add_show(commands)
    _add_analyze(commands)
    _add_train(commands)
    _add_reproduce(commands)
    _add_sweep(commands)
    _add_report(commands)
    return parser


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``directionkit demo``."""
    demo = commands.add_parser(
        "demo",
        description="Train scikit-learn's MLPClassifier (one ReLU hidden layer) on the bundled "
        "8x8 digits, measure every hidden unit's class selectivity, mutual information and "
        "incoming-weight L1 norm on the held-out split, save them, and print a summary. Needs "
        "no framework: a first look in about 20 seconds.",
        help="train a small MLP on the bundled digits data and measure its hidden units",
    )
    demo.add_argument("--out", required=True, help="where to write the analysis (zarr store)")
    demo.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def _add_show(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``directionkit show PATH``."""
    show = commands.add_parser(
        "show", help="print the headline numbers of a saved analysis",
        description="Print what was measured (data, split, examples, model) and the headline "
        "numbers: accuracy, ablation AUC per scope, mean selectivity, Spearman correlation of "
        "selectivity with importance (overall and per site), then the stored variables.",
    )  # fmt: skip
    show.add_argument("path", help="a zarr store written by directionkit")


def _add_analyze(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``directionkit analyze MODEL --data ... --out ...``: what is measured, on what."""
    analyze = commands.add_parser(
        "analyze",
        help="audit a model (an .onnx file) on labelled data and save every measure",
        description="Run every experiment of the paper on MODEL and save the analysis as a "
        "zarr store. Inputs are float32 images in [0, 1], NCHW (or a .npz's flat rows), then "
        "--scale, --mean/--std and --layout as the model needs; they are checked against the "
        "model's input shape.",
    )
    analyze.add_argument(
        "model",
        help="path to an .onnx file (external data next to it), or a training run directory "
        "(its model.onnx)",
    )
    analyze.add_argument(
        "--data", required=True,
        help="digits, fashion-mnist, PATH.npz, a training run directory (its data, with the "
        "labels it trained on), or a directory of MNIST-format IDX files. A .npz holds "
        "x_train, y_train, x_test, y_test (x: images (N, C, H, W) in [0, 1], or flat "
        "(N, features) rows for an MLP; y: integer class indices); a file with only x and "
        "y has no splits: it is the test split, and the noise measure, which needs the "
        "train split, is left out",
    )  # fmt: skip
    analyze.add_argument("--out", required=True, help="where to write the analysis (zarr)")
    analyze.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    analyze.add_argument("--split", choices=("train", "test"), default="test",
                         help="the split every measure is computed on (default test)")  # fmt: skip
    analyze.add_argument("--limit", type=int, help="use only the first N examples of a split")
    analyze.add_argument(
        "--sites", nargs="+",
        help="site names, or any tensor of the graph (default: every hidden activation)",
    )  # fmt: skip
    analyze.add_argument(
        "--output", metavar="NAME|INDEX",
        help="the model output holding the class scores, by name or index (negative counts "
        "from the end; default: the only candidate, or the one named logits; several others "
        "are refused with a list)",
    )  # fmt: skip
    analyze.add_argument(
        "--output-kind", choices=ALL_KINDS,
        help="what the scores are, where the model does not tell it (one score per example "
        "in [0, 1] with no sigmoid in sight: binary-probability or binary-logit)",
    )  # fmt: skip
    analyze.add_argument(
        "--input", dest="inputs", metavar="NAME=VALUE", action="append", type=_input_value,
        help="another input of the model (repeat for each): a number (--input sr=16000), a "
        ".npy file, or zeros:SHAPE / ones:SHAPE with B for the batch size (--input "
        "state=zeros:2,B,128); the data go to the input not named",
    )  # fmt: skip
    analyze.add_argument(
        "--unit-axis", dest="unit_axes", metavar="SITE=AXIS", action="append",
        type=_unit_axis,
        help="the unit axis of a site's activation, counted in one example (0 is the first "
        "axis after the batch), where the producing layer does not tell it (repeatable)",
    )  # fmt: skip
    analyze.add_argument(
        "--importance-units", type=_importance_units, default=1024, metavar="N|all",
        help="measure single-unit importance on about N units (a sample stratified by "
        "site, at least one unit per site), or all (default: %(default)s)",
    )  # fmt: skip
    _add_measure_options(analyze)
    add_progress(analyze)


def _add_measure_options(analyze: argparse.ArgumentParser) -> None:
    """The options of ``analyze`` that set how each measure is taken, and how inputs are
    prepared."""
    analyze.add_argument(
        "--metrics", nargs="+", choices=ALL_METRICS,
        help="which measures (default: all; noise sd comes from the train split)",
    )  # fmt: skip
    analyze.add_argument(
        "--scopes", nargs="+", default=["all"],
        help="ablation scopes: all, a site, last:K (the last K layers; a ResNet block is one "
        "layer), or the preset paper-conv = all last:3 (default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument("--orderings", type=int, default=10, help="ablation orderings (10)")
    analyze.add_argument("--fractions", type=int, default=21, help="ablation fractions (21)")
    analyze.add_argument(
        "--ablate-to", choices=ABLATE_TO, default="zero",
        help="clamp value of ablations: zero (the paper's curves), mean (each element's own "
        "mean on the train split, paper A.1) or channel-mean (one mean per feature map) "
        "(default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument(
        "--accuracy", choices=("top1", "top5"), default="top1",
        help="accuracy of every measure; the paper uses top5 for ImageNet (default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument(
        "--noise-scales", type=float, nargs="+", default=list(DEFAULT_NOISE_SCALES),
        help="noise scales s: N(0, (s * sd_unit)^2) is added to every unit "
        "(default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument("--noise-repeats", type=int, default=10,
                         help="noise draws per scale (default: %(default)s)")  # fmt: skip
    analyze.add_argument(
        "--noise-sd", choices=("map", "spatial-mean"), default="map",
        help="sd_unit of a conv map: over all its elements on the train split, or of its "
        "spatial mean (default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument("--n-bins", type=int, default=16,
                         help="bins of activity for the mutual information "
                         "(default: %(default)s)")  # fmt: skip
    analyze.add_argument(
        "--classes", choices=("present", "all"), default="present",
        help="class means and selectivity over the classes the data hold (a warning names "
        "the missing ones) or over every class of the model (an error if one is missing) "
        "(default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument(
        "--directions", choices=DIRECTION_KINDS, default="units",
        help="the single directions measured at every site: the units, a random rotation "
        "of them (seeded), the principal components of the train split's activity, or the "
        "span of its class-mean differences (default: %(default)s)",
    )  # fmt: skip
    analyze.add_argument("--binning", choices=("equal-width", "equal-frequency"),
                         default="equal-width",
                         help="how the MI bins are placed (default: %(default)s)")  # fmt: skip
    analyze.add_argument("--device", choices=("cpu", "cuda"), help="default: CUDA if present")
    analyze.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    analyze.add_argument("--batch-size", type=int, default=1000, help="examples per batch")
    analyze.add_argument("--scale", type=float, default=1.0,
                         help="multiply the [0, 1] inputs by this first (e.g. 255)")  # fmt: skip
    analyze.add_argument("--mean", type=float, nargs="+", help="then subtract (per channel)")
    analyze.add_argument("--std", type=float, nargs="+", help="then divide by (per channel)")
    analyze.add_argument("--layout", choices=(*LAYOUTS, "auto"), default="auto",
                         help="the model's input layout (default: the one that fits)")  # fmt: skip


def _add_train(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``directionkit train``: the options are ``TrainConfig``'s fields."""
    train = commands.add_parser(
        "train",
        help="train a reference model (optionally on shuffled labels) into a run directory",
        description="Train one of the paper's reference models from one config; writes "
        "checkpoints, history.zarr, config.json and model.onnx to --out, and resumes an "
        "interrupted run of the same config. Needs the torch extra.",
    )
    add_train_arguments(train)


def _add_sweep(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``directionkit sweep CONFIG --store ...``."""
    sweep = commands.add_parser(
        "sweep",
        help="analyse many models (a TOML config) on Dask into one zarr store",
        description="Analyse every model a TOML config names, one Dask task per model, into\n"
        "one zarr store with a 'model' dim (see directionkit.sweep). Rerunning on the same\n"
        "store finishes an interrupted sweep without redoing finished models.",
        epilog=f"CONFIG format:\n\n{TOML_FORMAT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("config", help="the sweep config (TOML; format below)")
    sweep.add_argument("--store", required=True, help="the zarr store to write (or resume)")
    sweep.add_argument("--scheduler", help="a Dask scheduler address (default: a LocalCluster)")
    sweep.add_argument("--overwrite", action="store_true",
                       help="replace a store that holds a different sweep")  # fmt: skip
    add_progress(sweep)


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``directionkit report PATH... --out ...``."""
    report = commands.add_parser(
        "report", help="write PNG figures and report.html (one analysis, or several compared)",
        description="One store: its figures and summary. Several stores: their ablation "
        "curves, noise curves and selectivity/MI distributions overlaid, an AUC table, and "
        "each model's training config (recorded when a run directory was analysed).",
    )  # fmt: skip
    report.add_argument("path", nargs="+",
                        help="zarr store(s) written by `directionkit analyze`")  # fmt: skip
    report.add_argument(
        "--label", "--by", dest="label", metavar="KEY",
        help="with several stores: the training-config key to label and order them by "
        "(e.g. corruption, dropout, seed)",
    )  # fmt: skip
    report.add_argument("--out", required=True, help="directory for the figures and HTML")
    report.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    report.add_argument(
        "--format", choices=FORMATS, default="png",
        help="figure files: PNG at print resolution (300 dpi), SVG, or both (default png)",
    )  # fmt: skip


def _input_value(text: str) -> tuple[str, object]:
    """``--input NAME=VALUE``: ``(name, value or callable x -> value)``."""
    import numpy as np

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    for prefix, fill in (("zeros:", 0.0), ("ones:", 1.0)):
        if value.startswith(prefix):
            dims = value.removeprefix(prefix).split(",")
            if not dims or not all(d == "B" or d.isdigit() for d in dims):
                raise argparse.ArgumentTypeError(
                    f"{prefix}SHAPE takes comma-separated sizes and B (the batch), got {value!r}"
                )

            def made(x: Sized, dims: list[str] = dims, fill: float = fill) -> np.ndarray:
                shape = [len(x) if d == "B" else int(d) for d in dims]
                return np.full(shape, fill, np.float32)

            return name, made
    if value.endswith(".npy"):
        try:
            return name, np.load(value, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise argparse.ArgumentTypeError(f"cannot read {value!r}: {err}") from err
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"VALUE of {name!r} must be a number, a .npy file, or zeros:SHAPE / ones:SHAPE; "
            f"got {value!r}"
        ) from None
    return name, np.asarray(int(number) if number.is_integer() and "." not in value else number)


def _unit_axis(text: str) -> tuple[str, int]:
    """``--unit-axis SITE=AXIS``."""
    name, sep, axis = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, int(axis)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SITE=AXIS (an int), got {text!r}") from None


def _importance_units(text: str) -> int | str:
    """``--importance-units N|all``."""
    if text == "all":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a count >= 1 or all, got {text!r}")


#: The names of directionkit.paper.SCALES (kept here so --help loads no xarray).
_SCALE_NAMES = ("toy", "quick", "cpu", "full")


_EXPERIMENT_NAMES = (
    "corrupted-labels", "noise", "ensemble", "early-stopping", "hyperparameters", "dropout",
    "batchnorm", "selectivity-importance", "ablation-method", "depth", "l1", "directions",
    "measures",
)  # fmt: skip


def _add_reproduce(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    reproduce = commands.add_parser(
        "reproduce",
        help="train and analyse the paper's networks; figures, statistics and verdicts",
        description="Run the experiments of Morcos et al. (2018) (default: all of them): "
        "train or reuse the networks in --out, analyse them, and write each experiment's "
        "zarr store, figures and verdict, then SUMMARY.md and report.html. A rerun in the "
        "same --out continues where it stopped and redoes nothing finished. Needs the "
        "torch extra.",
    )
    reproduce.add_argument(
        "experiments",
        nargs="*",
        metavar="EXPERIMENT",
        help=f"any of {', '.join(_EXPERIMENT_NAMES)} (default: all)",
    )
    size = reproduce.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="scale",
        action="store_const",
        const="quick",
        help="reduced scale on the bundled digits data, for a CPU (default)",
    )
    size.add_argument(
        "--full",
        dest="scale",
        action="store_const",
        const="full",
        help="the paper's scale (Fashion-MNIST by default); meant for a GPU",
    )
    size.add_argument(
        "--scale",
        dest="scale",
        choices=_SCALE_NAMES,
        help="a named scale: toy (tests, seconds), quick (= --quick), cpu (every experiment "
        "on 5,000 Fashion-MNIST images, about 25 minutes on a 2-core CPU), full (= --full)",
    )
    reproduce.add_argument(
        "--dataset",
        choices=("digits", "fashion-mnist", "cifar10"),
        help="default: digits (--quick, toy), fashion-mnist (cpu, --full)",
    )
    reproduce.add_argument("--data-root", help="folder of the data set's files (cifar10)")
    reproduce.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train and analyse (default: CUDA if present)",
    )
    reproduce.add_argument("--out", required=True, help="output folder (reused when rerun)")
    add_progress(reproduce)
    reproduce.set_defaults(scale="quick")  # fmt: skip
