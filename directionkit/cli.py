"""The ``directionkit`` command: parses arguments and calls the public API, nothing else."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence, Sized
from typing import TYPE_CHECKING, Any

from directionkit._choices import (
    ABLATE_TO,
    ALL_KINDS,
    DEFAULT_NOISE_SCALES,
    FORMATS,
    LAYOUTS,
    METRICS,
    TOML_FORMAT,
)
from directionkit._version import __version__
from directionkit.errors import DirectionKitError, InvalidParameterError, StoreError
from directionkit.reference_models._train_cli import add_arguments as add_train_arguments
from directionkit.reference_models._train_cli import add_progress, shows_progress

if TYPE_CHECKING:  # numpy, like every other library, is imported where a command needs it
    from pathlib import Path

    import numpy as np


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

    show = commands.add_parser(
        "show", help="print the headline numbers of a saved analysis",
        description="Print what was measured (data, split, examples, model) and the headline "
        "numbers: accuracy, ablation AUC per scope, mean selectivity, Spearman correlation of "
        "selectivity with importance (overall and per site), then the stored variables.",
    )  # fmt: skip
    show.add_argument("path", help="a zarr store written by directionkit")

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
    analyze.add_argument(
        "--metrics", nargs="+", choices=METRICS,
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
    add_progress(analyze)

    train = commands.add_parser(
        "train",
        help="train a reference model (optionally on shuffled labels) into a run directory",
        description="Train one of the paper's reference models from one config; writes "
        "checkpoints, history.zarr, config.json and model.onnx to --out, and resumes an "
        "interrupted run of the same config. Needs the torch extra.",
    )
    add_train_arguments(train)

    _add_reproduce(commands)

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
    return parser


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


#: The names of directionkit.experiments.paper.SCALES (kept here so --help loads no xarray).
_SCALE_NAMES = ("toy", "quick", "cpu", "full")
_EXPERIMENT_NAMES = (
    "corrupted-labels", "noise", "ensemble", "early-stopping", "hyperparameters", "dropout",
    "batchnorm", "selectivity-importance", "ablation-method", "depth", "l1",
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


def _reproduce(args: argparse.Namespace) -> None:
    """``directionkit reproduce``: run the experiments, print one line per verdict."""
    from directionkit.experiments.paper import reproduce

    def report(result: object) -> None:
        from directionkit.experiments.paper import ExperimentResult

        assert isinstance(result, ExperimentResult)
        reused = " (reused)" if result.reused else ""
        print(f"{result.name}: {result.verdict}{reused} [{result.seconds:.0f} s] "
              f"{result.summary}", flush=True)  # fmt: skip

    reproduce(
        args.experiments or None, args.out, scale=args.scale, dataset=args.dataset,
        data_root=args.data_root, device=args.device, progress=shows_progress(args),
        on_result=report,
    )  # fmt: skip
    print(f"wrote {os.path.join(args.out, 'SUMMARY.md')} and "
          f"{os.path.join(args.out, 'report.html')}")  # fmt: skip


def _show(path: str) -> None:
    """``directionkit show PATH``: a store, an experiment's folder, or a reproduce folder."""
    from pathlib import Path

    if "xarray" not in sys.modules:
        # a fresh process that only reads: xarray imports dask whenever it is installed
        # (0.3-0.6 s, a third of the command's time), and nothing here computes with it
        for name in ("dask", "dask.array"):
            sys.modules.setdefault(name, None)  # type: ignore[arg-type]

    from directionkit._summary import summary_text
    from directionkit.store import open as open_store
    from directionkit.store import resolve_store

    folder = Path(path)
    if folder.is_dir() and (folder / "SUMMARY.md").is_file() and not resolve_store(folder):
        _show_reproduce(folder)
        return
    result = open_store(resolve_store(folder) or folder)
    if "experiment" in result.attrs:
        from directionkit.experiments.paper import experiment_rows

        rows = experiment_rows(result.dataset)
        width = max(len(label) for label, _ in rows)
        print("\n".join(f"{label:<{width}}  {text}" for label, text in rows))
    print(summary_text(result.dataset, per_site=True))
    print("variables: " + ", ".join(
        f"{n} ({', '.join(map(str, v.dims))})" for n, v in result.dataset.data_vars.items()
    ))  # fmt: skip


def _show_reproduce(out: Path) -> None:
    """The verdicts of a ``reproduce`` folder, one experiment a line."""
    from directionkit.experiments.paper import EXPERIMENTS, ExperimentResult

    found = [(n, ExperimentResult.read(out / n)) for n in EXPERIMENTS]
    results = [(n, r) for n, r in found if r is not None]
    if not results:
        raise StoreError(f"{str(out)!r} holds no finished experiment of reproduce.")
    width = max(len(n) for n, _ in results)
    for name, result in results:
        print(f"{name:<{width}}  {result.verdict:<14}  {result.summary}")
    print(f"(directionkit show {out / results[0][0]} for one experiment's numbers)")


def _analyze(args: argparse.Namespace) -> None:
    """``directionkit analyze``: load, prepare, check, measure, save, summarise."""
    for name, least in (("orderings", 1), ("fractions", 2), ("noise_repeats", 1),
                        ("n_bins", 2), ("limit", 1), ("seed", 0), ("batch_size", 1)):  # fmt: skip
        value = getattr(args, name)
        if value is not None and value < least:  # before any import or load: at once
            raise InvalidParameterError(
                f"The '{name}' parameter of analyze must be an int >= {least}. Got {value!r} "
                "instead."
            )
    from directionkit._ownership import writer_lock
    from directionkit.store import check_writable

    check_writable(args.out, overwrite=args.overwrite)  # fail before any work
    with writer_lock(args.out, "analyze"):  # one writer of --out throughout
        _analyze_locked(args)


def _analyze_locked(args: argparse.Namespace) -> None:
    from directionkit._api import analyze, as_adapter
    from directionkit._summary import summary_text
    from directionkit.preprocessing import load_data, prepare_inputs
    from directionkit.reference_models.datasets import SplitNotFoundError
    from directionkit.reference_models.runs import is_run_dir

    model = _model_file(args.model)
    output = args.output
    if output is not None and output.lstrip("-").isdigit():
        output = int(output)
    given = [name for name, _ in args.inputs or ()]
    twice = sorted({n for n in given if given.count(n) > 1})
    if twice:
        raise InvalidParameterError(f"--input names {twice} more than once; give each once.")
    adapter = as_adapter(
        model, sites=args.sites, device=args.device, data=None, output=output,
        inputs=dict(args.inputs) if args.inputs else None,
        unit_axes=dict(args.unit_axes) if args.unit_axes else None,
        output_kind=args.output_kind,
    )  # fmt: skip
    shape = getattr(adapter, "input_shape", None)

    def prepared(split: str) -> tuple[np.ndarray, np.ndarray]:
        X, y = load_data(args.data, split, args.limit)
        X = prepare_inputs(X, scale=args.scale, mean=args.mean, std=args.std,
                           layout=args.layout, input_shape=shape)  # fmt: skip
        return X, y

    data = prepared(args.split)
    metrics = args.metrics
    wants_noise = metrics is None or "noise" in metrics
    wants_means = args.ablate_to != "zero" and (metrics is None or "ablation" in metrics)
    train = None
    try:
        train = prepared("train") if wants_noise or wants_means else None
    except SplitNotFoundError as err:  # an unsplit .npz: the data analysed, nothing to train on
        if wants_means:
            raise SplitNotFoundError(
                f"{err} --ablate-to {args.ablate_to} clamps units to their train-split means: "
                "give the file a train split, or use --ablate-to zero."
            ) from err
        if metrics is not None:  # noise asked for by name
            others = " ".join(m for m in METRICS if m != "noise")
            raise SplitNotFoundError(
                f"{err} The noise measure scales its noise by the train split's per-unit sd: "
                f"give the file a train split, or leave noise out (--metrics {others})."
            ) from err
        print(f"directionkit: note: {err} The noise measure, which needs it, is left out.",
              file=sys.stderr)  # fmt: skip
    if wants_means:
        print(f"ablate-to {args.ablate_to}: means from the train split of {args.data}")
    scopes = args.scopes[0] if args.scopes == ["paper-conv"] else args.scopes
    result = analyze(
        adapter, data, train_data=train, metrics=metrics, scopes=scopes,
        orderings=args.orderings, fractions=args.fractions, ablate_to=args.ablate_to,
        noise_scales=args.noise_scales, noise_repeats=args.noise_repeats,
        noise_sd=args.noise_sd, accuracy=args.accuracy, n_bins=args.n_bins,
        binning=args.binning, seed=args.seed, batch_size=args.batch_size,
        importance_units=args.importance_units, classes=args.classes,
        progress=shows_progress(args),
    )  # fmt: skip
    if is_run_dir(args.model):
        from directionkit.reference_models.runs import run_summary

        result.dataset.attrs["run_config"] = run_summary(args.model)
    name = os.path.basename(os.path.normpath(args.model))
    result.dataset.attrs["model"] = f"{name} {result.dataset.attrs['model']}"
    attrs = result.dataset.attrs
    attrs["data"] = f"{args.data}:{args.split} {attrs['data']}"
    if attrs.get("train_data") is not None:  # the split the means and sds came from
        attrs["train_data"] = f"{args.data}:train {attrs['train_data']}"
    result.dataset.attrs["dataset"] = args.data
    result.dataset.attrs["split"] = args.split
    path = result.save(args.out, overwrite=args.overwrite)
    print(summary_text(result.dataset))
    print(f"saved to {path}")


def _sweep(args: argparse.Namespace) -> None:
    """``directionkit sweep``: read the config, run the sweep, summarise."""
    from directionkit._sweep import _distributed, read_sweep_config, sweep

    _distributed()  # the dask extra, before the config is read
    models, kwargs = read_sweep_config(args.config)
    result = sweep(
        models, store=args.store, client=args.scheduler, overwrite=args.overwrite,
        progress=shows_progress(args), **kwargs,
    )  # fmt: skip
    columns = [c for c in ("accuracy", "ablation_auc", "test_accuracy") if c in result.dataset]
    table = result.dataset[columns]
    if "scope" in table.dims:
        table = table.isel(scope=0, drop=True)
    print(table.to_dataframe().to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"{len(result.done)} of {len(result.models)} models done; saved to {result.path}")


def _model_file(model: str) -> str:
    """The ONNX file ``analyze MODEL`` stands for, or a :class:`StoreError` saying why not."""
    from directionkit.reference_models.runs import REPLACED_RUN, export_error, is_run_dir

    if is_run_dir(model):  # a run directory of `directionkit train`: its export
        onnx_file = os.path.join(model, "model.onnx")
        if os.path.isfile(onnx_file):
            return onnx_file
        replaced = os.path.join(model, REPLACED_RUN)
        if os.path.isdir(replaced):
            raise StoreError(
                f"The training run {model!r} holds {REPLACED_RUN}, left by an overwrite that "
                "an older directionkit did not finish: it may hold the run that was being "
                "replaced. Move what you want to keep out of it and delete it, then rerun "
                "the `directionkit train` command."
            )
        failure = export_error(model)
        if failure is not None:
            raise StoreError(
                f"The ONNX export of the training run {model!r} failed ({failure}). Install "
                "the exporter with pip install 'directionkit[torch]', then rerun the same "
                "`directionkit train` command: it finds the finished run and only exports."
            )
        raise StoreError(
            f"The training run {model!r} has no model.onnx (trained with --no-onnx, "
            "or not finished); rerun `directionkit train` on it without --no-onnx."
        )
    if not os.path.exists(model):
        raise StoreError(f"MODEL {model!r} does not exist.")
    if os.path.isdir(model) or not model.lower().endswith(".onnx"):
        hint = (
            "a PyTorch checkpoint holds weights, not the network: export the model with "
            "torch.onnx.export(model, (example,), 'model.onnx', dynamo=True, "
            "dynamic_shapes=({0: torch.export.Dim('batch')},)) and pass the .onnx file"
            if model.lower().endswith((".pt", ".pth", ".ckpt", ".bin"))
            else "export your model to ONNX (e.g. torch.onnx.export, tf2onnx, skl2onnx) and "
            "pass the .onnx file"
        )
        raise StoreError(
            f"MODEL {model!r} is not an ONNX file (.onnx) or a training run directory of "
            f"`directionkit train`; {hint}."
        )
    return model


# (parameter, function) of a library message -> the option of each command that sets it
_OPTIONS = {
    ("data", "load_data"): {"analyze": "--data"},
    ("limit", "load_data"): {"analyze": "--limit"},
    ("name", "load"): {"train": "--dataset"},
    ("root", "load"): {"train": "--data-root"},
}
# library parameters whose option of `analyze` has another name (the rest: dest == parameter)
_ANALYZE_ALIASES = {"scales": "noise_scales", "repeats": "noise_repeats", "scope": "scopes"}
# the library functions `analyze` calls with its options
_ANALYZE_FUNCS = (
    "analyze", "ablation_curve", "noise_curve", "unit_importance", "activation_statistics",
    "prepare_inputs", "load_data", "OnnxAdapter",
)  # fmt: skip
# advice written for Python callers -> the same advice for each command
_ADVICE = {
    "pass overwrite=True": {"*": "pass --overwrite"},
    # the labels a data set's loader read: the user knows them as --data's (or --dataset's)
    "'labels' of load_data": {"analyze": "The labels of --data", "*": "The labels of the data"},
    "'labels' of load": {"analyze": "The labels of --data", "train": "The labels of --dataset",
                         "*": "The labels of the data"},
    "choose another out_dir": {"train": "choose another --out"},
    "choose a new or empty out_dir": {"train": "choose a new or empty --out"},
    "or pass root= a directory holding the IDX files": {
        "train": "or pass --data-root a directory holding the IDX files",
        "analyze": "or give --data a directory holding the IDX files",
    },
}


def _command_flags(command: str) -> dict[str, str]:
    """A command's options by their destination, e.g. ``{"n_bins": "--n-bins"}``."""
    commands = next(
        a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)
    ).choices
    return {
        action.dest: max(action.option_strings, key=len)
        for action in commands[command]._actions
        if action.option_strings
    }


def _cli_message(message: str, command: str) -> str:
    """A library error message in the command's terms: its options, not Python parameters.

    Examples
    --------
    >>> _cli_message("The 'data' parameter of load_data must be 'digits'. Got 'x' instead.",
    ...              "analyze")
    "--data must be 'digits'. Got 'x' instead."
    >>> _cli_message("... pass overwrite=True to replace it.", "demo")
    '... pass --overwrite to replace it.'
    """
    for (parameter, func), options in _OPTIONS.items():
        if command in options:
            message = message.replace(f"The '{parameter}' parameter of {func}", options[command])
    if command == "analyze":  # its options set the parameters of the same names
        flags = _command_flags("analyze")
        message = re.sub(
            rf"The '(\w+)' parameter of (?:{'|'.join(_ANALYZE_FUNCS)})\b",
            lambda m: flags.get(_ANALYZE_ALIASES.get(m[1], m[1]), m[0]),
            message,
        )
        # keyword arguments in advice: the options that set them
        message = re.sub(
            r"inputs=\{((?:'[^']+': '\.\.\.'(?:, )?)+)\}",
            lambda m: " ".join(f"--input {k}=VALUE" for k in re.findall(r"'([^']+)': ", m[1])),
            message,
        )
        message = re.sub(r"unit_axes=\{'(.+?)': AXIS\}", r"--unit-axis \1=AXIS", message)
        for python, option in (
            ("Pass output= the name", "Pass --output the name"),
            ("pass output= to choose", "pass --output to choose"),
            ("given by inputs=", "given by --input"),
            ("out of inputs=", "out of --input"),
            ("(fixed values, or callables x -> value made for each batch x)",
             "(a number, a .npy file, or zeros:SHAPE with B for the batch)"),
            ("with sites=[...]", "with --sites"),
            ("The 'unit_axes' entry of site", "The --unit-axis entry of site"),
            ("pass output_kind='binary-probability' or 'binary-logit'",
             "pass --output-kind binary-probability or binary-logit"),
        ):  # fmt: skip
            message = message.replace(python, option)
    if command == "train":  # TrainConfig's fields are the options of train (dest == field)
        message = re.sub(
            r"The '(\w+)' parameter of TrainConfig",
            lambda m: "--no-batch-norm" if m[1] == "batch_norm" else "--" + m[1].replace("_", "-"),
            message,
        )
    for advice, replacements in _ADVICE.items():
        replacement = replacements.get(command, replacements.get("*"))
        if replacement is not None:
            message = message.replace(advice, replacement)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``directionkit`` console script.

    Examples
    --------
    >>> main(["show", "/nonexistent/run.zarr"])
    2
    """
    args = _parser().parse_args(argv)
    try:
        with _warnings_printed(args.command):
            return _run(args)
    except BrokenPipeError:  # `directionkit show X | head`: the reader left, nothing to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # python flushes stdout at exit: into nothing
        return 0


@contextlib.contextmanager
def _warnings_printed(command: str) -> Iterator[None]:
    """directionkit's own warnings (an assumption, a measure left out, a model near chance)
    as ``directionkit: warning: ...`` lines on stderr as they come; others as usual."""
    from directionkit.errors import DirectionKitWarning

    with warnings.catch_warnings():
        warnings.simplefilter("always", DirectionKitWarning)
        previous = warnings.showwarning

        def show(
            message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
        ) -> None:
            if issubclass(category, DirectionKitWarning):
                text = _cli_message(str(message).removeprefix("directionkit: "), command)
                print(f"directionkit: warning: {text}", file=sys.stderr, flush=True)
            else:
                previous(message, category, *args, **kwargs)

        warnings.showwarning = show
        yield


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; DirectionKitErrors become one line and status 2."""
    try:
        if args.command == "demo":
            from directionkit._demo import digits_demo, summary
            from directionkit.store import check_writable

            check_writable(args.out, overwrite=args.overwrite)  # before training, not after
            result = digits_demo(hidden=args.hidden, seed=args.seed)
            path = result.save(args.out, overwrite=args.overwrite)
            print(summary(result))
            print(f"saved to {path}")
        elif args.command == "show":
            _show(args.path)
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
        elif args.command == "reproduce":
            if importlib.util.find_spec("torch") is None:
                print("directionkit: error: reproduce trains networks and needs PyTorch; "
                      "install it with pip install torch==2.13.0", file=sys.stderr)  # fmt: skip
                return 2
            _reproduce(args)
        elif args.command == "sweep":
            _sweep(args)
        elif args.command == "report":
            from directionkit.report import write_comparison_report, write_report

            if len(args.path) == 1 and args.label is None:
                out = write_report(
                    args.path[0], args.out, overwrite=args.overwrite, format=args.format
                )
                print(f"wrote {out / 'report.html'}")
            else:
                page = write_comparison_report(
                    args.path, args.out, by=args.label, overwrite=args.overwrite,
                    format=args.format,
                )  # fmt: skip
                print(f"wrote {page}")
    except DirectionKitError as err:
        print(f"directionkit: error: {_cli_message(str(err), args.command)}", file=sys.stderr)
        return 2
    except Exception as err:
        known = _third_party_message(err, getattr(args, "path", None))
        if known is None:
            raise  # a bug of ours: the traceback is what a report needs
        print(f"directionkit: error: {known}", file=sys.stderr)
        return 2
    return 0


#: Modules whose failures mean "a chunk of the store could not be decoded".
_CODEC_MODULES = ("numcodecs", "zarr.codecs", "zarr.core.codec_pipeline")


def _third_party_message(err: Exception, store: str | None) -> str | None:
    """A one-line message for what a library raises on bad input (None: not recognised).

    The adapters and the store map the failures they know to :class:`DirectionKitError`;
    this is the net under them, so that a damaged file never ends in a traceback.
    Libraries are recognised by module name: the core imports neither onnx nor zarr's
    codecs to catch their classes.

    Examples
    --------
    >>> class Fail(Exception): pass
    >>> Fail.__module__ = "onnxruntime.capi.onnxruntime_pybind11_state"
    >>> print(_third_party_message(Fail("no kernel for op Foo"), None))
    the ONNX model could not be loaded or run (Fail: no kernel for op Foo)
    >>> _third_party_message(ZeroDivisionError("a bug"), None) is None
    True
    """
    kind = type(err)
    root = kind.__module__.split(".")[0]
    if root in ("onnx", "onnxruntime"):
        return f"the ONNX model could not be loaded or run ({kind.__name__}: {err})"
    if isinstance(err, OSError):
        return None
    tb, modules = err.__traceback__, []
    while tb is not None:
        modules.append(str(tb.tb_frame.f_globals.get("__name__", "")))
        tb = tb.tb_next
    if any(m.startswith(_CODEC_MODULES) for m in modules):
        where = repr(store) if store else "the store"
        return (
            f"{where} could not be read: a chunk is damaged or truncated ({kind.__name__}: "
            f"{err}); rerun the command that wrote it."
        )
    return None


if __name__ == "__main__":
    sys.exit(main())
