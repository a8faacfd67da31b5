"""The experiments of Morcos et al. (2018), one function each, and :func:`reproduce`.

Each experiment trains (or reuses) its reference networks in an output folder, analyses
them with :func:`directionkit.analyze`, stores the numbers it needs as a zarr store, draws
its figures as PNG files, computes the statistic the paper reports *from the stored
numbers*, and gives a verdict by a rule stated beside it (and stored with the result):

========================== ================= ===============================================
experiment                 paper             statistic
========================== ================= ===============================================
``corrupted-labels``       Fig. 1            Spearman(corruption, ablation AUC)
``noise``                  Fig. 2            Spearman(corruption, noise robustness)
``ensemble``               Fig. 3            Spearman(generalisation error, AUC) over seeds;
                                             best 5 minus worst 5 AUC
``early-stopping``         Fig. 4a-b         Spearman(AUC, test loss) per seed; AUC-peak lag
``hyperparameters``        Fig. 4c           Spearman(AUC, test accuracy); selection gap
``dropout``                Fig. 5a           loss by the dropout fraction; slope change past
                                             it; AUC past it, true minus shuffled
``batchnorm``              Fig. 5b, 6        AUC, live-unit selectivity and MI, BN minus none
``selectivity-importance`` Fig. 7, A4        within-layer Spearman(selectivity/MI, importance)
``ablation-method``        Fig. A1           AUC of zero minus mean ablation, paired
``depth``                  Fig. A2           Spearman(layer depth, mean selectivity)
``l1``                     Fig. A3           within-layer Spearman(selectivity, filter L1)
========================== ================= ===============================================

Every statistic carries a 95% interval (bootstrap; what it resamples is stored beside it)
and every rule decides on the interval (:mod:`._rules`): *reproduced*, *partly*, *not
reproduced* or *inconclusive* when the interval is too wide or the population too small.
Where our protocol differs from the paper's (data, model, width, epochs, population,
scope), the difference is stated with the result, generated from the scale.

Scales (:data:`SCALES`): ``"quick"`` runs everything on the bundled digits data on a CPU;
``"cpu"`` on 5,000 Fashion-MNIST training images on a CPU in about 25 minutes; ``"full"``
uses the paper's sizes (for a GPU); ``"toy"`` is for tests.  A rerun in the same folder
reuses finished training runs, analyses and experiments (see :class:`Workspace`).
Training needs the torch extra; it is imported only when a network is trained or loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from directionkit._ownership import writer_lock
from directionkit._validation import check_choice, parameter_error
from directionkit.errors import StoreError
from directionkit.experiments.paper._core import (
    DATASETS,
    SCALES,
    ExperimentResult,
    Scale,
    Workspace,
    save_figure,
)
from directionkit.experiments.paper._experiments import EXPERIMENTS, Experiment, claims_text
from directionkit.experiments.paper._report import write_summary
from directionkit.experiments.paper._rules import VERDICTS, Rule
from directionkit.store import _strings_as_objects, open_dataset, write_zarr

__all__ = [
    "DATASETS",
    "EXPERIMENTS",
    "SCALES",
    "VERDICTS",
    "Experiment",
    "ExperimentResult",
    "Rule",
    "Scale",
    "Workspace",
    "ablation_method",
    "batchnorm",
    "check_verdict",
    "corrupted_labels",
    "depth",
    "dropout",
    "early_stopping",
    "ensemble",
    "experiment_rows",
    "experiment_figures",
    "hyperparameters",
    "l1",
    "noise",
    "reproduce",
    "run_experiment",
    "selectivity_importance",
]


def _json_ready(value: Any) -> Any:
    """Statistics as JSON gives them back (numpy scalars to Python, tuples to lists)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def _workspace(
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
    key = _json_ready(ws.key(experiment.name))
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
    built.attrs = _json_ready(
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
    statistics = _json_ready(experiment.statistics(stored))
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
    >>> from directionkit.experiments.paper import run_experiment
    >>> with tempfile.TemporaryDirectory() as out:
    ...     result = run_experiment("depth", out, scale="toy", device="cpu", progress=False)
    ...     again = run_experiment("depth", out, scale="toy", device="cpu", progress=False)
    >>> result.verdict, again.reused  # one toy network: too few to decide
    ('inconclusive', True)
    """
    check_choice(name, "name", "run_experiment", tuple(EXPERIMENTS))
    with _locked(out, "run_experiment"):
        ws = _workspace(out, scale, dataset, data_root, device, progress, "run_experiment")
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
        ws = _workspace(out, scale, dataset, data_root, device, progress, "reproduce")
        return _reproduce(names, ws, on_result)


def _reproduce(
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
            if stored is not None and stored.key == _json_ready(ws.key(name)):
                stored.reused = True
                finished[name] = stored
    write_summary([finished[n] for n in EXPERIMENTS if n in finished], ws)
    return results


def check_verdict(result: ExperimentResult) -> bool:
    """Whether ``result``'s verdict is what its experiment's rule gives on its statistics.

    Examples
    --------
    >>> from directionkit.experiments.paper import EXPERIMENTS, ExperimentResult
    >>> rule = EXPERIMENTS["depth"].rule.text
    >>> statistics = {"rho": 0.9, "rho_ci": [0.7, 0.95], "rho_n": 3, "rho_p": 0.001}
    >>> result = ExperimentResult("depth", "", "", "", statistics, "", rule, "reproduced", [],
    ...                           "", 0.0)
    >>> check_verdict(result)
    True
    >>> result.verdict = "not reproduced"
    >>> check_verdict(result)
    False
    """
    rule = EXPERIMENTS[result.name].rule
    return rule.text == result.rule and rule(result.statistics) == result.verdict


def _experiment_of(dataset: xr.Dataset) -> tuple[Experiment, dict[str, Any]] | None:
    """The experiment whose store ``dataset`` is, and its statistics read from it."""
    name = dataset.attrs.get("experiment")
    if name not in EXPERIMENTS:
        return None
    experiment = EXPERIMENTS[name]
    return experiment, _json_ready(experiment.statistics(dataset))


def experiment_rows(dataset: xr.Dataset) -> list[tuple[str, str]]:
    """What an experiment's store says, as ``(label, text)`` rows: the experiment, the
    paper's claim and statistic, ours (recomputed from the store), the rule and the
    verdict it gives.  Empty for a store that is not an experiment's.

    The verdict is the rule stored with the store applied to statistics of the stored
    numbers; when today's rule differs from the stored one, a row says so.

    Examples
    --------
    >>> import xarray as xr
    >>> experiment_rows(xr.Dataset())
    []
    """
    found = _experiment_of(dataset)
    if found is None:
        return []
    experiment, statistics = found
    rows = [
        ("experiment", f"{experiment.name}: {experiment.title}"),
        ("claim", experiment.claim),
        ("paper", experiment.paper),
        ("ours", experiment.summarize(statistics)),
        *[("statistic", line) for line in claims_text(experiment.rule, statistics)],
        ("interval", str(statistics.get("interval", "n/a"))),
        ("rule", experiment.rule.text),
        ("verdict", experiment.rule(statistics)),
        *[("deviation", str(d)) for d in dataset.attrs.get("deviations", [])],
    ]
    stored_rule = dataset.attrs.get("rule")
    if stored_rule is not None and stored_rule != experiment.rule.text:
        rows.append(("note", f"this store was judged by another rule: {stored_rule}"))
    if dataset.attrs.get("population"):
        rows.insert(1, ("population", str(dataset.attrs["population"])))
    return rows


def experiment_figures(dataset: xr.Dataset) -> dict[str, Any]:
    """The experiment's figures drawn from its store (matplotlib Figures by name); empty
    for a store that is not an experiment's.

    Examples
    --------
    >>> import xarray as xr
    >>> experiment_figures(xr.Dataset({"accuracy": 0.9}))
    {}
    """
    found = _experiment_of(dataset)
    if found is None:
        return {}
    experiment, statistics = found
    return dict(experiment.figures(dataset, statistics))


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
    >>> from directionkit.experiments.paper import EXPERIMENTS
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
