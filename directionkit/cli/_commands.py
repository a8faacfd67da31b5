"""What each command does: thin calls of the public API, each importing what it needs
when it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from directionkit._utils.choices import MEASURED_DIRECTIONS, METRICS
from directionkit.errors import InvalidParameterError, StoreError
from directionkit.reference_models._train_cli import shows_progress

if TYPE_CHECKING:  # numpy, like every other library, is imported where a command needs it
    from pathlib import Path

    import numpy as np


def _reproduce(args: argparse.Namespace) -> None:
    """``directionkit reproduce``: run the experiments, print one line per verdict."""
    from directionkit.paper import reproduce

    def report(result: object) -> None:
        from directionkit.paper import ExperimentResult

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

    from directionkit.api import open as open_store
    from directionkit.report._summary import summary_text
    from directionkit.results import resolve_store

    folder = Path(path)
    if folder.is_dir() and (folder / "SUMMARY.md").is_file() and not resolve_store(folder):
        _show_reproduce(folder)
        return
    result = open_store(resolve_store(folder) or folder)
    if "experiment" in result.attrs:
        from directionkit.paper import experiment_rows

        rows = experiment_rows(result.dataset)
        width = max(len(label) for label, _ in rows)
        print("\n".join(f"{label:<{width}}  {text}" for label, text in rows))
    print(summary_text(result.dataset, per_site=True))
    print("variables: " + ", ".join(
        f"{n} ({', '.join(map(str, v.dims))})" for n, v in result.dataset.data_vars.items()
    ))  # fmt: skip


def _show_reproduce(out: Path) -> None:
    """The verdicts of a ``reproduce`` folder, one experiment a line."""
    from directionkit.paper import EXPERIMENTS, ExperimentResult

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
    from directionkit.results import check_writable
    from directionkit.results._ownership import writer_lock

    check_writable(args.out, overwrite=args.overwrite)  # fail before any work
    with writer_lock(args.out, "analyze"):  # one writer of --out throughout
        _analyze_locked(args)


def _analyze_locked(args: argparse.Namespace) -> None:
    from directionkit.api import analyze, as_adapter
    from directionkit.preprocessing import load_data, prepare_inputs
    from directionkit.reference_models.datasets import SplitNotFoundError
    from directionkit.reference_models.runs import is_run_dir
    from directionkit.report._summary import summary_text

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
    wants_basis = args.directions in MEASURED_DIRECTIONS
    train = None
    try:
        train = prepared("train") if wants_noise or wants_means or wants_basis else None
    except SplitNotFoundError as err:  # an unsplit .npz: the data analysed, nothing to train on
        if wants_basis:
            raise SplitNotFoundError(
                f"{err} --directions {args.directions} measures its basis on the train split: "
                "give the file a train split, or use --directions units or random."
            ) from err
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
        directions=args.directions, progress=shows_progress(args),
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
    from directionkit.population import read_sweep_config, sweep
    from directionkit.population._cluster import _distributed

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


def _demo(args: argparse.Namespace) -> None:
    """``directionkit demo``: train scikit-learn's MLP on digits, measure, save, summarise."""
    from directionkit.cli._demo import digits_demo, summary
    from directionkit.results import check_writable

    check_writable(args.out, overwrite=args.overwrite)  # before training, not after
    result = digits_demo(hidden=args.hidden, seed=args.seed)
    path = result.save(args.out, overwrite=args.overwrite)
    print(summary(result))
    print(f"saved to {path}")


def _train(args: argparse.Namespace) -> int:
    """``directionkit train``: one reference model into a run directory (needs torch)."""
    try:
        from directionkit.reference_models.train import TrainConfig  # noqa: F401
    except ImportError as err:
        print(f"directionkit: error: training needs PyTorch ({err}); install it with "
              "pip install torch==2.13.0", file=sys.stderr)  # fmt: skip
        return 2
    from directionkit.reference_models._train_cli import run as run_training

    return run_training(args)


def _reproduce_command(args: argparse.Namespace) -> int:
    """``directionkit reproduce``, refused at once without torch."""
    if importlib.util.find_spec("torch") is None:
        print("directionkit: error: reproduce trains networks and needs PyTorch; "
              "install it with pip install torch==2.13.0", file=sys.stderr)  # fmt: skip
        return 2
    _reproduce(args)
    return 0


def _report(args: argparse.Namespace) -> None:
    """``directionkit report``: one store's report, or several compared."""
    from directionkit.report import write_comparison_report, write_report

    if len(args.path) == 1 and args.label is None:
        out = write_report(
            args.path[0], args.out, overwrite=args.overwrite, format=args.format,
            describe=_describe_experiment,
        )  # fmt: skip
        print(f"wrote {out / 'report.html'}")
    else:
        page = write_comparison_report(
            args.path, args.out, by=args.label, overwrite=args.overwrite,
            format=args.format,
        )  # fmt: skip
        print(f"wrote {page}")


def _describe_experiment(dataset: Any) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """What a report shows of the store of one experiment of the paper, or of a sweep (its
    measures ranked against the generalization gap)."""
    if dataset.attrs.get("experiment") is None:
        from directionkit.population import describe_sweep

        return describe_sweep(dataset)
    from directionkit.paper import experiment_figures, experiment_rows

    return experiment_rows(dataset), experiment_figures(dataset)


#: Each command's function: None or 0 is success, another int the exit status.
COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "demo": _demo,
    "show": lambda args: _show(args.path),
    "analyze": _analyze,
    "train": _train,
    "reproduce": _reproduce_command,
    "sweep": _sweep,
    "report": _report,
}
