"""Running the paper's experiments: :func:`run_experiment`, :func:`reproduce` (under the
output folder's one-writer lock) and one function per experiment."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from directionkit._utils.validation import check_choice, parameter_error
from directionkit.errors import StoreError
from directionkit.paper._experiment import Experiment, claims_text
from directionkit.paper._registry import EXPERIMENTS
from directionkit.paper._results import ExperimentResult, json_ready, save_figure
from directionkit.paper._scale import Scale
from directionkit.paper._summary_page import write_summary
from directionkit.paper._workspace import Workspace
from directionkit.results import open_dataset, write_zarr
from directionkit.results._ownership import writer_lock
from directionkit.results._schema import _strings_as_objects

__all__ = [
    "ablation_method",
    "batchnorm",
    "corrupted_labels",
    "depth",
    "dropout",
    "early_stopping",
    "ensemble",
    "hyperparameters",
    "l1",
    "noise",
    "reproduce",
    "run_experiment",
    "selectivity_importance",
]


def _open_workspace(
    out: str | os.PathLike[str],
    scale: str | Scale,
    dataset: str | None,
    data_root: str | os.PathLike[str] | None,
    device: str,
    progress: bool,
    func: str,
) -> Workspace:
    if dataset is None:
        name = scale if isinstance(scale, str) else scale.name
        dataset = "fashion-mnist" if name in ("full", "cpu") else "digits"
    return Workspace(
        out,
        scale,
        dataset=dataset,
        data_root=data_root,
        device=device,
        progress=progress,
        func=func,
    )


def _run(experiment: Experiment, ws: Workspace) -> ExperimentResult:
    folder = ws.folder(experiment.name)
    key = json_ready(ws.key(experiment.name))
    store = folder / f"{experiment.name}.zarr"
    previous = ExperimentResult.read(folder)
    if (
        previous is not None
        and previous.key == key
        and store.is_dir()
        and all((folder / name).is_file() for name in previous.figures)
    ):
        previous.reused = True
        return previous
    began = time.perf_counter()
    built, population = experiment.build(ws)
    built = _strings_as_objects(built)
    built.attrs = json_ready(
        {
            **built.attrs,
            "experiment": experiment.name,
            "rule": experiment.rule.text,
            "population": population,
            "deviations": experiment.deviations(ws.scale, ws.dataset),
            "key": key,
        }
    )
    write_zarr(built, store, overwrite=True)
    stored = open_dataset(store)
    statistics = json_ready(experiment.statistics(stored))
    verdict = experiment.rule(statistics)
    plt_figures = experiment.figures(stored, statistics)
    figures = []
    for name, figure in plt_figures.items():
        save_figure(figure, folder / f"{name}.png")
        figures.append(f"{name}.png")
    result = ExperimentResult(
        name=experiment.name,
        title=experiment.title,
        claim=experiment.claim,
        paper=experiment.paper,
        statistics=statistics,
        summary=experiment.summarize(statistics),
        rule=experiment.rule.text,
        verdict=verdict,
        figures=figures,
        population=population,
        seconds=time.perf_counter() - began,
        key=key,
        deviations=experiment.deviations(ws.scale, ws.dataset),
        claims=claims_text(experiment.rule, statistics),
    )
    result.write(folder)
    return result


def run_experiment(
    name: str,
    out: str | os.PathLike[str],
    *,
    scale: str | Scale = "quick",
    dataset: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    device: str = "auto",
    progress: bool = True,
) -> ExperimentResult:
    """Run one experiment of the paper (or reuse its finished result) in ``out``.

    Parameters
    ----------
    name : str
        One of :data:`EXPERIMENTS` (``"corrupted-labels"``, ``"noise"``, ...).
    out : str or path-like
        The output folder; runs, analyses and results in it are reused.
    scale : {"quick", "cpu", "full", "toy"} or Scale
        Population and network sizes (:data:`SCALES`).
    dataset : {"digits", "fashion-mnist", "cifar10"}, optional
        Default: digits, or Fashion-MNIST for ``scale="cpu"`` and ``scale="full"``.
    data_root : str or path-like, optional
        Folder of the data set's files (CIFAR-10 needs it).
    device : {"auto", "cpu", "cuda"}
        Where networks are trained and analysed.
    progress : bool
        Show progress bars.

    Returns
    -------
    ExperimentResult
        Also stored as ``out/<name>/result.json``, beside ``<name>.zarr`` and the PNGs.

    Examples
    --------
    >>> import tempfile
    >>> from directionkit.paper import run_experiment
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = run_experiment("depth", out, scale="toy", device="cpu", progress=False)
    ...     again = run_experiment("depth", out, scale="toy", device="cpu", progress=False)
    >>> result.verdict, again.reused  # one toy network: too few to decide
    ('inconclusive', True)
    """
    check_choice(name, "name", "run_experiment", tuple(EXPERIMENTS))
    with _locked(out, "run_experiment"):
        ws = _open_workspace(out, scale, dataset, data_root, device, progress, "run_experiment")
        return _run(EXPERIMENTS[name], ws)


@contextlib.contextmanager
def _locked(out: str | os.PathLike[str], func: str) -> Iterator[None]:
    """Hold the one-writer lock of the folder ``out`` (its parents made first)."""
    folder = Path(out)
    if os.path.lexists(folder) and not folder.is_dir():
        raise StoreError(f"{str(folder)!r} exists and is not a folder.")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"Could not create the folder {str(folder.parent)!r}: {err}.") from err
    with writer_lock(folder, func):
        yield


def reproduce(
    experiments: Sequence[str] | None = None,
    out: str | os.PathLike[str] = "paper",
    *,
    scale: str | Scale = "quick",
    dataset: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
    device: str = "auto",
    progress: bool = True,
    on_result: Callable[[ExperimentResult], None] | None = None,
) -> list[ExperimentResult]:
    """Run the paper's experiments and write ``out/SUMMARY.md`` and ``out/report.html``.

    Parameters
    ----------
    experiments : sequence of str, optional
        Names from :data:`EXPERIMENTS`; default all, in the paper's order.
    out, scale, dataset, data_root, device, progress :
        As for :func:`run_experiment`.
    on_result : callable, optional
        Called with each :class:`ExperimentResult` as it is finished (e.g. to log it).

    Returns
    -------
    list of ExperimentResult
        In the order run.  The summary and report cover every experiment finished in
        ``out`` at this scale, including ones from earlier calls.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as out:
    ...     results = reproduce(["l1"], out, scale="toy", device="cpu", progress=False)
    ...     sorted(p.name for p in Path(out).glob("*.*"))
    ['.directionkit', 'SUMMARY.md', 'report.html']
    """
    if isinstance(experiments, str):
        raise parameter_error("experiments", "reproduce", "a sequence of names", experiments)
    names = list(EXPERIMENTS) if experiments is None else list(experiments)
    for name in names:
        check_choice(name, "experiments", "reproduce", tuple(EXPERIMENTS))
    with _locked(out, "reproduce"):
        ws = _open_workspace(out, scale, dataset, data_root, device, progress, "reproduce")
        return _run_all(names, ws, on_result)


def _run_all(
    names: list[str], ws: Workspace, on_result: Callable[[ExperimentResult], None] | None
) -> list[ExperimentResult]:
    from tqdm.auto import tqdm

    results = []
    bar = tqdm(names, desc="paper", disable=not ws.progress)
    for name in bar:
        bar.set_postfix_str(name)
        result = _run(EXPERIMENTS[name], ws)
        results.append(result)
        if on_result is not None:
            on_result(result)
    finished = {r.name: r for r in results}
    for name in EXPERIMENTS:  # earlier calls' results at the same scale belong in the report
        if name not in finished:
            stored = ExperimentResult.read(ws.out / name)
            if stored is not None and stored.key == json_ready(ws.key(name)):
                stored.reused = True
                finished[name] = stored
    write_summary([finished[n] for n in EXPERIMENTS if n in finished], ws)
    return results


def _experiment_function(name: str) -> Callable[..., ExperimentResult]:
    experiment = EXPERIMENTS[name]

    def run(out: str | os.PathLike[str], **options: Any) -> ExperimentResult:
        return run_experiment(name, out, **options)

    run.__name__ = run.__qualname__ = name.replace("-", "_")
    run.__doc__ = f"""{experiment.title}.

    {experiment.claim}

    The same as ``run_experiment({name!r}, out, **options)``; see :func:`run_experiment`.

    Rule: {experiment.rule.text}

    Examples
    --------
    >>> from directionkit.paper import EXPERIMENTS
    >>> EXPERIMENTS[{name!r}].name
    {name!r}
    """
    return run


corrupted_labels = _experiment_function("corrupted-labels")
noise = _experiment_function("noise")
ensemble = _experiment_function("ensemble")
early_stopping = _experiment_function("early-stopping")
hyperparameters = _experiment_function("hyperparameters")
dropout = _experiment_function("dropout")
batchnorm = _experiment_function("batchnorm")
selectivity_importance = _experiment_function("selectivity-importance")
ablation_method = _experiment_function("ablation-method")
depth = _experiment_function("depth")
l1 = _experiment_function("l1")
