"""Sweeps: analyse a population of models on Dask, into one zarr store with a ``model`` dim.

:func:`sweep` runs :func:`directionkit.analyze` once per model, each model an independent
task on ``dask.distributed``, and collects the results in **one zarr store**:

``S.zarr/`` (the root group, read by plain ``xarray.open_zarr``)
    Every variable whose size does not depend on the model's width, with a leading
    ``model`` dim: ``done``, ``accuracy``, ``loss``, ``chance_accuracy``, ``near_chance``
    (the clean accuracy is not clearly above chance: that model's AUC says little),
    ``ablation_accuracy`` ``(model, scope, ordering, fraction)``, ``ablation_auc`` and
    ``ablation_auc_corrected`` ``(model, scope)``,
    ``noise_accuracy`` ``(model, repeat, noise_scale)``, the per-model summaries
    ``noise_auc``, ``selectivity_mean``, ``weight_l1_mean``, ``n_units``, the task's
    ``seconds`` and its worker's ``peak_rss_mb`` (the process's peak resident memory when
    the task ended: the worker's peak over the tasks it ran so far), and the
    metadata: ``train_accuracy``, ``train_loss``, ``test_accuracy``, ``test_loss``,
    ``epochs_trained`` (from a training run's history), ``config_<field>`` (the scalar
    fields of a training config) and any ``metadata`` the caller gives.
``S.zarr/units/<name>/`` (one group per model)
    That model's complete :class:`~directionkit.Analysis`, per-unit variables included
    (``selectivity``, ``class_mean``, ``importance_*``, ``ablation_order`` ...).

Why per-model groups for the per-unit variables rather than one ``(model, unit)`` array
padded with NaN: a train-then-analyse sweep does not know any model's unit count before
that model is trained, so a padded array cannot be sized when the store is created; and
padding a population of mixed widths (a 128-unit MLP beside a ResNet-50 with 26,560
channels) would store mostly NaN.  :meth:`SweepResult.unit_variable` gives the padded
``(model, unit)`` view on reading, when it is wanted.

Each task writes only its own region: the root arrays are chunked one model per chunk
(so two workers never write the same chunk file), the model's group is written under a
temporary name and renamed into place, and ``done[model]`` is set last.  A sweep killed
at any point therefore leaves a valid store in which ``done`` says exactly which models
are complete, and rerunning the same sweep on it analyses only the others.  Every chunk
of both kinds of group carries a CRC-32C checksum, as :meth:`Analysis.save` writes them:
:func:`open_sweep` and :meth:`SweepResult.units` refuse a missing or damaged chunk with a
:class:`~directionkit.errors.StoreError` naming the variable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import time
import tomllib
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from directionkit._api import _identity, analyze
from directionkit._choices import DEFAULT_NOISE_SCALES, METRICS, TOML_FORMAT
from directionkit._integrity import per_model_files, read_record, row_files
from directionkit._ownership import writer_lock
from directionkit._validation import check_int, parameter_error
from directionkit.errors import (
    DirectionKitError,
    DirectionKitWarning,
    InvalidParameterError,
    StoreError,
)
from directionkit.store import (
    VERSION_ATTR,
    Analysis,
    _checksummed_encoding,
    _write_sealed,
    atomic_directory,
    open_dataset,
)

__all__ = [
    "RUN_SPLITS",
    "TOML_FORMAT",
    "Checkpoint",
    "SweepResult",
    "open_sweep",
    "read_sweep_config",
    "sweep",
]

#: ``data`` / ``train_data`` values that mean "this training run's own split".
RUN_SPLITS: tuple[str, ...] = ("train", "test")
#: Per-model metadata read from a training run's history (last epoch trained).
HISTORY_METADATA: tuple[str, ...] = ("train_accuracy", "train_loss", "test_accuracy", "test_loss")
SWEEP_KIND = "sweep"
UNITS_GROUP = "units"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.,=+-]*$")
# analyze() parameters a sweep passes through; the rest are the sweep's own
_ANALYZE_KWARGS = tuple(
    name
    for name in inspect.signature(analyze).parameters
    if name not in ("model", "data", "train_data", "progress")
)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A model saved to a file, loaded on the worker by ``factory(path)``.

    Parameters
    ----------
    path : str
        The checkpoint file.
    factory : callable
        ``factory(path)`` returns the model (e.g. builds a ``torch.nn.Module`` and loads
        the state dict into it).  It must be picklable: a module-level function, or one
        defined in the script that runs the sweep (Dask pickles those by value).

    Examples
    --------
    >>> spec = Checkpoint("net.pt", factory=str.upper)
    >>> spec.factory(spec.path)
    'NET.PT'
    """

    path: str
    factory: Callable[[str], Any]


# --------------------------------------------------------------------------- model kinds


def _is_train_config(spec: Any) -> bool:
    # recognised by its type's home, so the core does not import torch to check it
    return type(spec).__name__ == "TrainConfig" and type(spec).__module__.startswith(
        "directionkit.reference_models"
    )


def _is_run_dir(spec: Any) -> bool:
    return isinstance(spec, str | os.PathLike) and (Path(spec) / "config.json").is_file()


def _describe(spec: Any) -> dict[str, Any]:
    """A JSON description of a model spec: what a rerun must match to resume."""
    if _is_train_config(spec):
        return {"kind": "train", "config": spec.to_dict()}
    if _is_run_dir(spec):
        return {"kind": "run", "path": os.path.abspath(os.fspath(spec))}
    if isinstance(spec, Checkpoint):
        factory = getattr(spec.factory, "__qualname__", type(spec.factory).__name__)
        return {"kind": "checkpoint", "path": os.path.abspath(spec.path), "factory": factory}
    if isinstance(spec, str | os.PathLike):
        return {"kind": "file", "path": os.path.abspath(os.fspath(spec))}
    return {"kind": "object", "type": f"{type(spec).__module__}.{type(spec).__qualname__}"}


def _config_of(spec: Any) -> dict[str, Any] | None:
    """The training config (as a dict) of a config or run directory, else None."""
    if _is_train_config(spec):
        return dict(spec.to_dict())
    if _is_run_dir(spec):
        from directionkit.reference_models.runs import read_config

        return read_config(spec)
    return None


def _check_models(models: Any) -> dict[str, Any]:
    func = "sweep"
    if isinstance(models, Mapping):
        named = dict(models)
    elif isinstance(models, Sequence) and not isinstance(models, str | bytes):
        named = {f"model_{i:04d}": m for i, m in enumerate(models)}
    else:
        raise parameter_error(
            "models", func, "a mapping of name -> model, or a sequence of TrainConfigs", models
        )
    if not named:
        raise parameter_error("models", func, "a non-empty mapping or sequence", models)
    for name in named:
        if not isinstance(name, str) or not _NAME.match(name):
            raise parameter_error(
                "models",
                func,
                "keyed by names made of letters, digits and _ . , = + - (not starting with "
                "'.' or '-'; each name becomes a folder of the store)",
                name,
            )
    return named


# --------------------------------------------------------------------------- the store


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the root arrays look like: their coordinates, from analyze's parameters."""

    metrics: tuple[str, ...]
    scopes: tuple[str, ...]
    orderings: int
    fractions: np.ndarray
    noise_scales: np.ndarray
    noise_repeats: int


def _plan(kwargs: Mapping[str, Any], has_train_data: bool) -> _Plan:
    from directionkit.experiments._ablation import check_fractions

    func = "sweep"
    unknown = sorted(set(kwargs) - set(_ANALYZE_KWARGS))
    if unknown:
        listed = ", ".join(repr(k) for k in _ANALYZE_KWARGS)
        raise InvalidParameterError(
            f"sweep() got unknown keyword arguments {unknown}; it passes these on to "
            f"analyze(): {listed}."
        )
    metrics = kwargs.get("metrics")
    chosen = list(METRICS) if metrics is None else list(metrics)
    if "noise" in chosen and not has_train_data:
        if metrics is not None:  # refused here, not once per model on the workers
            raise parameter_error(
                "train_data", func, "given when 'noise' is among the metrics (unit sd comes "
                "from the training data)", None,
            )  # fmt: skip
        chosen.remove("noise")
    scopes = kwargs.get("scopes", ("all",))
    if isinstance(scopes, str):
        raise parameter_error("scopes", func, "a sequence of scopes", scopes)
    scales = kwargs.get("noise_scales")
    return _Plan(
        metrics=tuple(chosen),
        scopes=tuple(str(s) for s in scopes),
        orderings=check_int(kwargs.get("orderings", 10), "orderings", func, minimum=1),
        fractions=check_fractions(kwargs.get("fractions", 21), func),
        noise_scales=np.asarray(DEFAULT_NOISE_SCALES if scales is None else scales, float),
        noise_repeats=check_int(kwargs.get("noise_repeats", 10), "noise_repeats", func, minimum=1),
    )


def _metadata_columns(
    names: Sequence[str], configs: Mapping[str, dict[str, Any] | None], metadata: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Per-model columns known before any task runs: config fields and user metadata."""
    rows: dict[str, dict[str, Any]] = {name: {} for name in names}
    for name in names:
        config = configs.get(name)
        for key, value in (config or {}).items():
            rows[name][f"config_{key}"] = value
        extra = metadata.get(name, {})
        if not isinstance(extra, Mapping):
            raise parameter_error("metadata", "sweep", "a mapping of name -> dict", metadata)
        rows[name].update(extra)
    keys = sorted({k for row in rows.values() for k in row})
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        values = [rows[name].get(key) for name in names]
        numeric = all(
            v is None or (isinstance(v, int | float | np.number) and not isinstance(v, str))
            for v in values
        )
        if numeric:
            columns[key] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            columns[key] = np.array(
                [v if isinstance(v, str) else json.dumps(v) for v in values], dtype=object
            )
    return columns


def _root_dataset(
    names: Sequence[str], plan: _Plan, columns: Mapping[str, np.ndarray]
) -> xr.Dataset:
    """The root of a fresh store: every per-model variable, unfilled (NaN, done False)."""
    n = len(names)

    def empty(*sizes: int) -> np.ndarray:
        return np.full((n, *sizes), np.nan)

    variables: dict[str, Any] = {
        "done": ("model", np.zeros(n, dtype=bool)),
        "finished_at": ("model", empty()),
        "seconds": ("model", empty()),
        "n_units": ("model", np.zeros(n, dtype=np.int64)),
        "accuracy": ("model", empty()),
        "loss": ("model", empty()),
        "chance_accuracy": ("model", empty()),
        "near_chance": ("model", np.zeros(n, dtype=bool)),
        "selectivity_mean": ("model", empty()),
        "weight_l1_mean": ("model", empty()),
        "epochs_trained": ("model", np.zeros(n, dtype=np.int64)),
        "peak_rss_mb": ("model", empty()),
        **{key: ("model", empty()) for key in HISTORY_METADATA},
    }
    coords: dict[str, Any] = {"model": np.array(list(names), dtype=object)}
    if "ablation" in plan.metrics:
        curve = (len(plan.scopes), plan.orderings, plan.fractions.size)
        variables["ablation_accuracy"] = (("model", "scope", "ordering", "fraction"), empty(*curve))
        variables["ablation_auc"] = (("model", "scope"), empty(len(plan.scopes)))
        variables["ablation_auc_corrected"] = (("model", "scope"), empty(len(plan.scopes)))
        coords |= {
            "scope": np.array(plan.scopes, dtype=object),
            "ordering": np.arange(plan.orderings),
            "fraction": plan.fractions,
        }
    if "noise" in plan.metrics:
        noise = (plan.noise_repeats, plan.noise_scales.size)
        variables["noise_accuracy"] = (("model", "repeat", "noise_scale"), empty(*noise))
        variables["noise_auc"] = ("model", empty())
        coords |= {"repeat": np.arange(plan.noise_repeats), "noise_scale": plan.noise_scales}
    for key, values in columns.items():
        if key in HISTORY_METADATA and values.dtype.kind == "f":
            # e.g. the test accuracy of a model trained elsewhere; a training run's own
            # history replaces it when its task runs
            variables[key] = ("model", values)
            continue
        if key in variables:
            raise parameter_error(
                "metadata", "sweep", f"keys other than the store's own variables ({key!r})", key
            )
        variables[key] = ("model", values)
    return xr.Dataset(variables, coords=coords)


def _create_store(path: Path, root: xr.Dataset, attrs: dict[str, Any], overwrite: bool) -> None:
    import zarr

    root = root.copy()
    root.attrs = {**attrs, VERSION_ATTR: _version()}
    # every chunk written and checksummed (as Analysis.save); one model per chunk:
    # concurrent tasks never write the same chunk file
    encoding = _checksummed_encoding(root)
    for name, var in root.data_vars.items():
        if var.dims[:1] == ("model",):
            encoding[str(name)]["chunks"] = (1, *var.shape[1:])
    per_model = {"group": UNITS_GROUP, "variables": sorted(_ROW_VARIABLES)}
    with atomic_directory(path, overwrite=overwrite) as temporary:
        _write_sealed(
            root, temporary, encoding=encoding,
            before_seal=lambda folder: zarr.open_group(
                folder / UNITS_GROUP, mode="w-", zarr_format=3
            ),
            skip=per_model_files(per_model), extra={"per_model": per_model},
        )  # fmt: skip


#: Root variables a sweep's tasks fill in, one chunk per model: outside the root's
#: integrity record, each model's chunks are recorded with its ``units/NAME`` group.
_ROW_VARIABLES = frozenset({
    "done", "finished_at", "seconds", "n_units", "accuracy", "loss", "chance_accuracy",
    "near_chance", "selectivity_mean", "weight_l1_mean", "epochs_trained", "peak_rss_mb",
    "ablation_accuracy", "ablation_auc", "ablation_auc_corrected", "noise_accuracy",
    "noise_auc", *HISTORY_METADATA,
})  # fmt: skip


def _row_files(path: Path, index: int) -> dict[str, str]:
    """Relative path -> SHA-256 of model ``index``'s chunks of the row variables (but
    ``done``, written last)."""
    return row_files(path, index, _ROW_VARIABLES - {"done"})


def _version() -> str:
    from directionkit._version import __version__

    return __version__


def _remove_stale_temporaries(path: Path) -> None:
    """Half-written model groups of a killed run, and replaced ones not yet removed."""
    units = path / UNITS_GROUP
    for child in units.iterdir() if units.is_dir() else ():
        if child.name.startswith(".") and (".tmp-" in child.name or ".old-" in child.name):
            shutil.rmtree(child, ignore_errors=True)


def _read_attrs(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError) as err:
        raise StoreError(f"{str(path)!r} is not a readable zarr store: {err}") from err
    return dict(meta.get("attributes", {}))


# --------------------------------------------------------------------------- one task


def _split(spec: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
    from directionkit.reference_models.runs import split_data

    config = _config_of(spec)
    assert config is not None
    data = split_data(config, split)
    return data.X, data.y


def _history_metadata(history: xr.Dataset) -> dict[str, float]:
    values: dict[str, float] = {"epochs_trained": float(history.sizes.get("epoch", 0))}
    if values["epochs_trained"]:
        for key in HISTORY_METADATA:
            if key in history:
                values[key] = float(history[key].values[-1])
    return values


def _load(spec: Any, name: str, runs_dir: Path | None) -> tuple[Any, dict[str, float]]:
    """The model a spec names, and what its training history says (if it has one)."""
    if _is_train_config(spec):
        from directionkit.reference_models.train import train

        assert runs_dir is not None
        result = train(spec, runs_dir / name, progress=False, onnx=False)
        return result.load_model(), _history_metadata(result.history)
    if _is_run_dir(spec):
        run = Path(spec)
        history = open_dataset(run / "history.zarr")
        if (run / "model.onnx").is_file():
            return str(run / "model.onnx"), _history_metadata(history)
        from directionkit.reference_models.train import load_model

        return load_model(run), _history_metadata(history)
    if isinstance(spec, Checkpoint):
        return spec.factory(spec.path), {}
    return spec, {}


def _resolve_data(data: Any, spec: Any) -> Any:
    if isinstance(data, str) and data in RUN_SPLITS:
        return _split(spec, data)
    return data


@contextlib.contextmanager
def _single_threaded(enabled: bool) -> Iterator[None]:
    """One BLAS / torch thread per task when each worker owns one core."""
    if not enabled:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)


def _summaries(dataset: xr.Dataset) -> dict[str, float]:
    values: dict[str, float] = {}
    if "noise_accuracy" in dataset and float(dataset["accuracy"]) > 0:
        values["noise_auc"] = noise_auc(dataset["noise_accuracy"], float(dataset["accuracy"]))
    if "selectivity" in dataset:
        values["selectivity_mean"] = float(dataset["selectivity"].mean())
    if "weight_l1" in dataset:
        values["weight_l1_mean"] = float(dataset["weight_l1"].mean())
    return values


def noise_auc(noise_accuracy: xr.DataArray, accuracy: float) -> float:
    """Area under the mean noise curve, accuracy / ``accuracy``, scale axis scaled to [0, 1].

    The noise counterpart of the ablation AUC: 1 when noise never hurts; computed with the
    trapezoid rule over the sorted noise scales.

    Examples
    --------
    >>> import xarray as xr
    >>> curve = xr.DataArray([[0.8, 0.4, 0.0]], dims=("repeat", "noise_scale"),
    ...                      coords={"noise_scale": [0.0, 1.0, 2.0]})
    >>> noise_auc(curve, 0.8)
    0.5
    """
    curve = noise_accuracy.mean("repeat").sortby("noise_scale") / accuracy
    scales = np.asarray(curve["noise_scale"].values, dtype=np.float64)
    span = scales[-1] - scales[0]
    if span <= 0:
        return float(curve.values[0])
    ys = np.asarray(curve.values, dtype=np.float64)
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(scales)) / span)


def _run_one(
    store: str,
    index: int,
    name: str,
    spec: Any,
    data: Any,
    train_data: Any,
    runs_dir: str | None,
    analyze_kwargs: dict[str, Any],
    single_thread: bool,
) -> dict[str, Any]:
    """One task: load (or train) a model, analyse it, write its region, then ``done``.

    Nothing here reads or writes consolidated metadata: zarr warns about it, and the
    filter that silences the warning is process-global state, which a task cannot
    change safely beside other tasks on threads of the same worker.
    """
    began_at = time.time()
    import zarr

    began = time.perf_counter()
    path = Path(store)

    def finished() -> bool:
        group: Any = zarr.open_group(path, mode="r", zarr_format=3, use_consolidated=False)
        return bool(group["done"][index])

    # Dask reruns a task whose result was held by a worker that died, even when the task
    # had finished: the store says whether it did, and a finished model is never redone
    # (nor rewritten after the sweep has returned).
    if finished():
        return {"name": name, "seconds": 0.0, "skipped": True, **_span(began_at)}
    with _single_threaded(single_thread):
        model, history = _load(spec, name, None if runs_dir is None else Path(runs_dir))
        loaded = time.perf_counter()
        # a worker's warnings would be lost in its log: what they say (near chance, a
        # measure left out, an assumption) is in the model's stored attrs and variables
        with _single_threaded(single_thread), warnings.catch_warnings():
            warnings.simplefilter("ignore", DirectionKitWarning)
            result = analyze(
                model,
                _resolve_data(data, spec),
                train_data=_resolve_data(train_data, spec),
                progress=False,
                **analyze_kwargs,
            )
    analysed = time.perf_counter()
    dataset = result.dataset
    dataset.attrs["sweep_model"] = name
    if finished():  # another attempt of this task finished first: keep what it wrote
        return {"name": name, "seconds": 0.0, "skipped": True, **_span(began_at)}
    # every chunk written, even one equal to the fill value (a NaN AUC, near_chance False):
    # zarr would otherwise delete that chunk file, and the checksummed store reads as damaged
    opened: Any = zarr.open_group(path, mode="r+", zarr_format=3, use_consolidated=False)
    group = _FullChunks(opened)
    scalars = {
        "accuracy": float(dataset["accuracy"]),
        "loss": float(dataset["loss"]),
        "n_units": int(dataset.sizes.get("unit", 0)),
        **_summaries(dataset),
        **history,
    }
    for key in ("chance_accuracy", "near_chance"):
        if key in dataset:
            scalars[key] = dataset[key].item()
    for key, value in scalars.items():
        if key in group:  # a store made before a variable was added lacks it
            group[key][index] = value
    if "ablation_accuracy" in dataset and "ablation_accuracy" in group:
        group["ablation_accuracy"][index] = (
            dataset["ablation_accuracy"].transpose("scope", "ordering", "fraction").values
        )
        group["ablation_auc"][index] = dataset["ablation_auc"].values
        if "ablation_auc_corrected" in dataset and "ablation_auc_corrected" in group:
            group["ablation_auc_corrected"][index] = dataset["ablation_auc_corrected"].values
    if "noise_accuracy" in dataset and "noise_accuracy" in group:
        group["noise_accuracy"][index] = (
            dataset["noise_accuracy"].transpose("repeat", "noise_scale").values
        )
    seconds = time.perf_counter() - began
    group["seconds"][index] = seconds
    group["peak_rss_mb"][index] = _peak_rss_mb()
    group["finished_at"][index] = time.time()
    # the model's group records the digests of its row's chunks: open_sweep checks them
    row = {"sweep_row": _row_files(path, index), "sweep_index": index}
    with atomic_directory(path / UNITS_GROUP / name, overwrite=True) as temporary:
        _write_sealed(dataset, temporary, extra=row)
    group["done"][index] = True  # last: the model counts as finished only now
    # where the task's time went (the benchmark's timeline): load / train, analyze, write
    phases = {
        "load": loaded - began,
        "analyze": analysed - loaded,
        "write": seconds + began - analysed,
    }
    return {"name": name, "seconds": seconds, **phases, **_span(began_at)}


class _FullChunks:
    """A zarr group whose arrays write every chunk, even one equal to the fill value."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def __contains__(self, key: str) -> bool:
        return key in self._group

    def __getitem__(self, key: str) -> Any:
        return self._group[key].with_config({"write_empty_chunks": True})


def _span(began_at: float) -> dict[str, Any]:
    """When a task ran (wall clock) and where: for the sweep's timeline."""
    return {"started_at": began_at, "ended_at": time.time(), "pid": os.getpid()}


#: Set to a list to record the phases of the next sweeps' dispatch (benchmarks):
#: ``(event, wall-clock time, detail)`` tuples; ``None`` records nothing.
_TIMELINE: list[tuple[str, float, Any]] | None = None


def _mark(event: str, detail: Any = None) -> None:
    if _TIMELINE is not None:
        _TIMELINE.append((event, time.time(), detail))


def _peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (NaN where unknown).

    Linux's ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss`` also counts the
    memory of the parent a worker process was forked from before it exec'd, so a worker
    spawned by a 1 GiB driver would report at least 1 GiB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


# --------------------------------------------------------------------------- the cluster


@contextlib.contextmanager
def _spawn_safe_main() -> Iterator[None]:
    """Keep Dask's spawned workers from re-running the caller's ``__main__``.

    A worker process started by ``spawn`` imports the parent's main script by its path
    (``__main__.__file__``).  For a script piped through stdin that path is ``<stdin>``,
    which does not exist ("Nanny failed to start"); for a script without an
    ``if __name__ == "__main__":`` guard it would start the sweep again in every worker.
    The workers need nothing from it (the tasks are functions of this module; objects
    defined in the script are pickled by value), so the path is hidden while the
    cluster lives, and restored after.
    """
    main = sys.modules.get("__main__")
    hide = main is not None and getattr(main, "__spec__", None) is None and "__file__" in vars(main)
    saved = vars(main).pop("__file__") if hide and main is not None else None
    try:
        yield
    finally:
        if hide and main is not None:
            main.__file__ = saved


@contextlib.contextmanager
def _connect(client: Any, n_tasks: int, started: Any = None) -> Iterator[tuple[Any, bool]]:
    """A ``distributed.Client``: the caller's, one to an address, or a new LocalCluster.

    Yields the client and whether each worker has one core of its own (our own cluster).
    ``started``: the future of a cluster :func:`_own_cluster` is already starting.
    """
    distributed: Any = _distributed()
    if started is not None:  # our own cluster, started earlier (_own_cluster)
        yield started.result()[1], True
        return
    with _dask_scheduler_kept():
        if isinstance(client, distributed.Client):
            yield client, False
            return
        if isinstance(client, str):
            # not set as dask's default: the caller's dask.compute / .load() stay local
            with distributed.Client(client, set_as_default=False) as connected:
                yield connected, False
            return
    with _own_cluster(n_tasks) as own:
        yield own.result()[1], True


def _distributed() -> Any:
    try:
        importlib.import_module("dask")
        return importlib.import_module("distributed")  # untyped
    except ImportError as err:  # the dask extra is missing
        raise DirectionKitError(
            f"sweep() runs on dask.distributed ({err}); install it with "
            "pip install 'directionkit[dask]'."
        ) from err


@contextlib.contextmanager
def _dask_scheduler_kept() -> Iterator[None]:
    """Leave dask's default scheduler as it was.

    ``distributed`` switches it with ``dask.config.set`` contexts on several threads (the
    client's, and a worker's when it runs in this process); their exits can interleave
    and leave it at ``"dask.distributed"`` after every client has closed, which breaks the
    caller's later ``dask.compute`` (and xarray's ``.load()``).
    """
    import dask

    before = dask.config.get("scheduler", None)
    try:
        yield
    finally:
        if dask.config.get("scheduler", None) != before:
            dask.config.set(scheduler=before)


#: Dask's periodic housekeeping, less often in the sweep's own cluster: every wake-up of a
#: worker's event loop takes the GIL from the task running beside it.  Defaults 20 ms,
#: 500 ms and 100 ms; with these the 16-model benchmark sweep ran 39.7-39.9 s against
#: 42.2-45.2 s (RESULTS.md, issue 13).  The memory monitor still checks every second.
_QUIET_EVENT_LOOPS = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "1s",
}


@contextlib.contextmanager
def _own_cluster(n_tasks: int) -> Iterator[Any]:
    """A LocalCluster of single-threaded process workers, one per core (at most n_tasks).

    Yields at once a future of ``(cluster, client)``: the cluster starts on a thread, so
    the driver can go on preparing (creating the store) while the workers spawn and
    import the task code (the :mod:`directionkit._sweep_worker` preload, which also lets
    each worker process leave without the interpreter's slow teardown once it has closed
    cleanly).  Closed on exit.

    Its workers run without Dask's ``MALLOC_TRIM_THRESHOLD_=65536``: with it, glibc hands
    every freed buffer above 64 KiB back to the system and torch's training steps fault
    them back in; a digits MLP trained 1.6x slower in a worker than in a plain process
    (benchmarks/RESULTS.md, issue 13).

    Nor with Dask's statistical profiler: it samples every worker thread's stack every
    10 ms, and on a machine with one worker per core that sampling competes with the
    tasks themselves; a sweep task (train + analyze a digits MLP) took 4.0 s with it and
    3.2 s without on the 2-core benchmark machine (RESULTS.md, issue 13).  Its other
    periodic callbacks run less often (:data:`_QUIET_EVENT_LOOPS`).  A cluster the caller
    passes is used as it is configured.
    """
    import dask

    distributed: Any = _distributed()
    workers = max(1, min(n_tasks, os.cpu_count() or 1))
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)

    def start() -> tuple[Any, Any]:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            preload=["directionkit._sweep_worker"],
        )
        try:
            return cluster, distributed.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise

    failed = False
    with (
        _dask_scheduler_kept(),
        _spawn_safe_main(),
        dask.config.set(
            {
                "distributed.nanny.pre-spawn-environ": environ,
                "distributed.worker.profile.enabled": False,
                **_QUIET_EVENT_LOOPS,
            }
        ),
        ThreadPoolExecutor(1, thread_name_prefix="directionkit-sweep-cluster") as pool,
    ):
        _mark("connect")
        started = pool.submit(start)
        try:
            yield started
        except BaseException:
            failed = True
            raise
        finally:
            try:
                cluster, own = started.result()
            except Exception:
                if not failed:  # else the sweep's own error says more
                    raise
            else:
                own.close()
                cluster.close()


# --------------------------------------------------------------------------- public API


def sweep(
    models: Mapping[str, Any] | Sequence[Any],
    data: Any,
    *,
    train_data: Any = None,
    store: str | os.PathLike[str],
    client: Any = None,
    runs_dir: str | os.PathLike[str] | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **analyze_kwargs: Any,
) -> SweepResult:
    """Analyse every model of a population, one Dask task each, into one zarr store.

    Parameters
    ----------
    models : mapping of str to model, or sequence of TrainConfig
        Name -> model, where a model is anything :func:`directionkit.analyze` takes (a
        ``torch.nn.Module``, an ``.onnx`` path, an adapter), a :class:`Checkpoint`, a
        training run directory of ``directionkit train`` (its ``model.onnx``, else its
        final checkpoint), or a :class:`~directionkit.reference_models.train.TrainConfig`
        to train first (into ``runs_dir/<name>``; training resumes like ``train`` does).
        A sequence of configs is named ``model_0000``, ``model_0001``, ...  Names become
        folder names: letters, digits and ``_ . , = + -``.
    data : (X, y), DataLoader, ... or {"train", "test"}
        What every model is analysed on (see :func:`~directionkit.analyze`); ``"train"``
        or ``"test"`` means each training run's own split (its corrupted training labels
        for ``"train"``), for run directories and configs only.
    train_data : same kinds as ``data``, optional
        Unit sd for the noise curves (and means for ``ablate_to="mean"``).
    store : str or path-like
        The zarr store.  If it holds a sweep of the same models and parameters, the models
        already done are skipped; if it holds something else, a :class:`StoreError`
        (unless ``overwrite``).
    client : None, distributed.Client or str
        ``None`` starts a ``LocalCluster`` with one single-threaded process worker per core
        (at most one per model) and closes it at the end; a ``Client`` or a scheduler
        address is used as it is.  The own cluster's workers run without Dask's stack
        profiler and with slower housekeeping ticks, which otherwise compete with the
        tasks for the GIL when every core has a worker (about 20 % of a small model's
        task time on the 2-core benchmark machine); for a cluster of your own with one
        worker per core, consider ``distributed.worker.profile.enabled: false``.
    runs_dir : str or path-like, optional
        Where configs are trained; default ``<store>.runs`` beside the store.
    metadata : mapping of str to dict, optional
        Extra per-model values (numbers or strings) stored as variables along ``model``;
        ``train_accuracy``, ``test_accuracy``, ``train_loss`` and ``test_loss`` may be
        given this way for models that are not training runs (for
        :func:`~directionkit.selection_report`).
    overwrite : bool, default False
        Replace a store that holds a different sweep.
    progress : bool, default True
        A progress bar over models.
    **analyze_kwargs
        Passed to :func:`~directionkit.analyze` (``orderings``, ``fractions``, ``metrics``,
        ``scopes``, ``seed``, ...).

    Returns
    -------
    SweepResult
        The store, read back.

    Raises
    ------
    DirectionKitError
        Some models failed; the message names them and their errors.  Every other model
        is complete in the store, and a rerun retries only the failed ones.

    Notes
    -----
    A rerun is recognised as "the same sweep" by the model names and kinds (a config's
    fields, a file's path, a factory's name, an object's type), the analyze parameters and
    the data's identity: a torch module given as an object is not hashed, so changing its
    weights and rerunning on the same store skips it; use a new store or ``overwrite``.

    Dask's process workers start by re-importing the caller's main script (``spawn``).
    While the cluster that ``client=None`` starts is running, ``__main__.__file__`` is
    hidden from them, so the sweep also runs from a script piped through stdin (where
    the import fails with "Nanny failed to start") and from scripts without an
    ``if __name__ == "__main__":`` guard; functions and classes defined in the script
    still reach the workers, pickled by value.

    Examples
    --------
    >>> import tempfile, numpy as np, directionkit as dk
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> nets = {f"net{i}": NumpyMLPAdapter.random(4, (6,), 3, seed=i) for i in range(2)}
    >>> X = np.random.default_rng(0).normal(size=(40, 4)); y = nets["net0"].predict(X)
    >>> from distributed import Client
    >>> with tempfile.TemporaryDirectory() as tmp, Client(processes=False, n_workers=1,
    ...         threads_per_worker=1, dashboard_address=":0", set_as_default=False) as client:
    ...     result = dk.sweep(nets, (X, y), store=f"{tmp}/s.zarr", client=client,
    ...                       orderings=2, fractions=5, progress=False)
    ...     result.done, result["ablation_auc"].dims
    (['net0', 'net1'], ('model', 'scope'))
    """
    func = "sweep"
    _distributed()  # before anything is read or written: is the dask extra installed?
    named = _check_models(models)
    metadata = {} if metadata is None else dict(metadata)
    unknown = sorted(set(metadata) - set(named))
    if unknown:
        raise parameter_error("metadata", func, "keyed by model names", unknown)
    for which, value in (("data", data), ("train_data", train_data)):
        if isinstance(value, str) and value in RUN_SPLITS:
            plain = [n for n, m in named.items() if _config_of(m) is None]
            if plain:
                raise parameter_error(
                    which,
                    func,
                    f"data, not {value!r}, for models that are not training runs or configs "
                    f"(such as {plain[0]!r})",
                    value,
                )
    if not (client is None or isinstance(client, str) or hasattr(client, "submit")):
        raise parameter_error(
            "client", func, "None, a distributed.Client or a scheduler address", client
        )
    plan = _plan(analyze_kwargs, train_data is not None)
    path = Path(store)
    runs = Path(runs_dir) if runs_dir is not None else path.with_name(path.name + ".runs")
    configs = {name: _config_of(spec) for name, spec in named.items()}
    signature = json.loads(
        json.dumps(
            {
                "kind": SWEEP_KIND,
                "models": {name: _describe(spec) for name, spec in named.items()},
                "analyze": {k: analyze_kwargs[k] for k in sorted(analyze_kwargs)},
                "data": data if isinstance(data, str) else _identity(data),
                "train_data": train_data
                if isinstance(train_data, str) or train_data is None
                else _identity(train_data),
                "metadata": metadata,
            },
            default=lambda v: v.tolist() if isinstance(v, np.ndarray | np.generic) else str(v),
        )
    )
    if not path.parent.is_dir():
        raise StoreError(f"The folder of {str(path)!r} does not exist.")
    with contextlib.ExitStack() as stack:
        stack.enter_context(writer_lock(path, "a sweep"))
        started = None
        if client is None and (overwrite or not path.exists()):
            # every model is pending: start the cluster while the store is created
            started = stack.enter_context(_own_cluster(len(named)))
        return _sweep_into(
            path, named, data, train_data, runs, analyze_kwargs, plan, configs, signature,
            metadata, client, started, overwrite, progress,
        )  # fmt: skip


def _sweep_into(
    path: Path,
    named: dict[str, Any],
    data: Any,
    train_data: Any,
    runs: Path,
    analyze_kwargs: dict[str, Any],
    plan: _Plan,
    configs: Mapping[str, dict[str, Any] | None],
    signature: dict[str, Any],
    metadata: Mapping[str, Any],
    client: Any,
    started: Any,
    overwrite: bool,
    progress: bool,
) -> SweepResult:
    """The rest of :func:`sweep`: the store, then the pending models (see there)."""
    if path.exists() and not overwrite:
        previous = _read_attrs(path).get(SWEEP_KIND)
        if previous != signature:
            raise StoreError(
                f"{str(path)!r} already holds {_difference(previous, signature)}; pass "
                "overwrite=True to replace it, or choose another store."
            )
    else:
        root = _root_dataset(list(named), plan, _metadata_columns(list(named), configs, metadata))
        _create_store(path, root, {SWEEP_KIND: signature}, overwrite)
    _remove_stale_temporaries(path)

    done = xr.open_zarr(path, consolidated=False, chunks=None)["done"].values
    names = list(named)
    pending = [i for i, finished in enumerate(done) if not finished]
    failures: dict[str, BaseException] = {}
    if pending:
        failures = _dispatch(
            path, names, named, pending, data, train_data, runs, analyze_kwargs, client,
            started, progress,
        )  # fmt: skip
    if failures:
        listed = "; ".join(f"{n}: {type(e).__name__}: {e}" for n, e in failures.items())
        raise DirectionKitError(
            f"{len(failures)} of {len(names)} models of the sweep failed ({listed}). The "
            f"others are complete in {str(path)!r}; rerun the sweep to retry the failed ones."
        )
    return open_sweep(path)


def _dispatch(
    path: Path,
    names: list[str],
    named: Mapping[str, Any],
    pending: list[int],
    data: Any,
    train_data: Any,
    runs: Path,
    analyze_kwargs: dict[str, Any],
    client: Any,
    started: Any,
    progress: bool,
) -> dict[str, BaseException]:
    as_completed: Any = importlib.import_module("distributed").as_completed

    failures: dict[str, BaseException] = {}
    if started is None:
        _mark("connect")
    with _connect(client, len(pending), started) as (connected, own):
        _mark("connected")
        shared_data = _scatter(connected, data)
        shared_train = _scatter(connected, train_data)
        _mark("scattered")
        token = uuid.uuid4().hex[:8]
        futures = {
            connected.submit(
                _run_one,
                str(path),
                i,
                names[i],
                named[names[i]],
                shared_data,
                shared_train,
                str(runs),
                analyze_kwargs,
                own,
                key=f"directionkit-sweep-{names[i]}-{token}",
                pure=False,
            ): names[i]
            for i in pending
        }
        total = len(names)
        bar = tqdm(
            total=total, initial=total - len(pending), desc="sweep", unit="model",
            disable=not progress,
        )  # fmt: skip
        try:
            for future in as_completed(futures, loop=connected.loop):
                error = future.exception()
                if error is not None:
                    failures[futures[future]] = error
                else:
                    _mark("task", future.result())
                bar.update(1)
        finally:
            bar.close()
        _mark("collected")
    _mark("closed")
    return failures


def _scatter(client: Any, data: Any) -> Any:
    """Arrays go to every worker once, not once per task."""
    if isinstance(data, tuple) and all(isinstance(a, np.ndarray) for a in data):
        return tuple(client.scatter(list(data), broadcast=True, hash=False))
    return data


def _difference(previous: Any, signature: dict[str, Any]) -> str:
    if not isinstance(previous, dict):
        return "something other than a directionkit sweep"
    for key in ("models", "analyze", "data", "train_data", "metadata"):
        if previous.get(key) != signature[key]:
            if key == "models":
                old, new = previous.get(key) or {}, signature[key]
                gone = sorted(set(old) - set(new))
                added = sorted(set(new) - set(old))
                changed = sorted(n for n in set(old) & set(new) if old[n] != new[n])
                return (
                    f"a sweep of other models (not in this sweep: {gone}; new: {added}; "
                    f"changed: {changed})"
                )
            return f"a sweep with other {key} ({previous.get(key)!r}, not {signature[key]!r})"
    return "a different sweep"


class SweepResult:
    """A sweep store, read back: the per-model variables and each model's analysis.

    Attributes
    ----------
    path : Path
    dataset : xarray.Dataset
        The root variables (dim ``model`` first; see the module doc), in memory.
    """

    def __init__(self, path: Path, dataset: xr.Dataset) -> None:
        self.path = path
        self.dataset = dataset

    @property
    def models(self) -> list[str]:
        """Every model's name, in the sweep's order."""
        return [str(m) for m in self.dataset["model"].values]

    @property
    def done(self) -> list[str]:
        """The models whose analysis is complete."""
        return [m for m, d in zip(self.models, self.dataset["done"].values, strict=True) if d]

    def __getitem__(self, name: str) -> xr.DataArray:
        return self.dataset[name]

    def __repr__(self) -> str:
        return (
            f"<directionkit.SweepResult> {str(self.path)!r}: {len(self.done)} of "
            f"{len(self.models)} models done; variables {sorted(map(str, self.dataset))}"
        )

    def units(self, name: str) -> Analysis:
        """The complete analysis of model ``name`` (per-unit variables included)."""
        if name not in self.models:
            raise parameter_error(
                "name", "SweepResult.units", f"one of the sweep's models {self.models}", name
            )
        group = self.path / UNITS_GROUP / name
        if name not in self.done or not group.is_dir():
            raise StoreError(f"Model {name!r} of the sweep at {str(self.path)!r} is not done.")
        return Analysis(open_dataset(group))

    def unit_variable(self, variable: str) -> xr.DataArray:
        """A per-unit variable of every finished model, padded with NaN: dims ``(model, unit)``.

        ``unit`` runs to the widest model's unit count; coordinates ``site`` and
        ``unit_index`` are per model, so they are left out (read them from :meth:`units`).
        """
        rows = []
        done = self.done
        for name in done:
            values = self.units(name)[variable]
            if values.dims[:1] != ("unit",):
                raise parameter_error(
                    "variable", "SweepResult.unit_variable", "a variable with a 'unit' dim",
                    variable,
                )  # fmt: skip
            rows.append(np.asarray(values.values, dtype=np.float64))
        width = max((r.shape[0] for r in rows), default=0)
        padded = np.full((len(rows), width, *(rows[0].shape[1:] if rows else ())), np.nan)
        for i, row in enumerate(rows):
            padded[i, : row.shape[0]] = row
        dims = ("model", "unit", *(self.units(done[0])[variable].dims[1:] if done else ()))
        return xr.DataArray(padded, dims=dims, coords={"model": done}, name=variable)


def open_sweep(path: str | os.PathLike[str], *, verify: bool = True) -> SweepResult:
    """Read a sweep store written by :func:`sweep` (finished or not).

    Checked as :func:`directionkit.open` checks an analysis: the root's metadata and
    fixed variables against the integrity record written with the store, and each
    finished model's chunks against the digests its task recorded with its
    ``units/NAME`` group (itself checked when :meth:`SweepResult.units` reads it).
    ``verify=False`` reads a store without checking (with a warning).

    Raises
    ------
    StoreError
        No folder at ``path``, not a sweep store, or a chunk of the root group missing or
        damaged (the error names the variable).

    Examples
    --------
    >>> open_sweep("/nonexistent.zarr")
    Traceback (most recent call last):
    ...
    directionkit.errors.StoreError: No sweep store at '/nonexistent.zarr': no such folder.
    """
    source = Path(path)
    if not source.is_dir():
        raise StoreError(f"No sweep store at {str(source)!r}: no such folder.")
    if SWEEP_KIND not in _read_attrs(source):
        raise StoreError(f"{str(source)!r} is a zarr store but not a directionkit sweep.")
    # the chunks change under a running sweep; the metadata never does
    dataset = open_dataset(source, verify=verify)
    if verify:
        _check_rows(source, dataset)
    return SweepResult(source, dataset)


def _check_rows(source: Path, dataset: xr.Dataset) -> None:
    """Check that each finished model's group recorded its row of the root (the row's
    digests themselves are checked with the store, see :mod:`directionkit._integrity`)."""
    names = [str(m) for m in dataset["model"].values]
    for index, (name, done) in enumerate(zip(names, dataset["done"].values, strict=True)):
        if not done:
            continue
        record = read_record(source / UNITS_GROUP / name)
        if record is None or record.get("sweep_index") != index:
            raise StoreError(
                f"The store {str(source)!r} is damaged: model {name!r} is marked done but its "
                f"group {UNITS_GROUP}/{name} has no integrity record of its row. Restore it "
                "from a copy, or rerun the sweep into a new store."
            )


# --------------------------------------------------------------------------- TOML configs


def read_sweep_config(
    path: str | os.PathLike[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a sweep described in TOML: ``(models, sweep keyword arguments)``.

    The format is :data:`TOML_FORMAT`.  Relative paths are relative to the TOML file.

    Examples
    --------
    >>> import tempfile
    >>> text = '[grid]\\nbase = {hidden = [8]}\\ncorruption = [0.0, 1.0]\\n'
    >>> with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
    ...     _ = f.write(text)
    >>> models, kwargs = read_sweep_config(f.name)
    >>> sorted(models), kwargs["data"]
    (['corruption=0.0', 'corruption=1.0'], 'train')
    >>> os.remove(f.name)
    """
    import itertools

    source = Path(path)
    try:
        config = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise StoreError(f"Cannot read the sweep config {str(source)!r}: {err}") from err
    here = source.parent
    known = {"sweep", "analyze", "models", "grid"}
    if set(config) - known:
        raise InvalidParameterError(
            f"Unknown tables {sorted(set(config) - known)} in {str(source)!r}; the sweep "
            f"config has {sorted(known)}."
        )

    def local(value: str) -> str:
        return value if os.path.isabs(value) else str(here / value)

    def train_config(fields: Mapping[str, Any]) -> Any:
        from directionkit.reference_models.train import TrainConfig

        fields = dict(fields)
        if isinstance(fields.get("dataset"), str) and fields["dataset"].endswith(".npz"):
            fields["dataset"] = local(fields["dataset"])
        return TrainConfig.from_dict(fields)

    models: dict[str, Any] = {}
    for name, table in config.get("models", {}).items():
        kinds = sorted(set(table) & {"onnx", "run", "train"})
        if len(kinds) != 1 or set(table) - {"onnx", "run", "train"}:
            raise InvalidParameterError(
                f"[models.{name}] in {str(source)!r} must have exactly one of 'onnx', 'run' "
                f"or 'train'. Got keys {sorted(table)} instead."
            )
        kind = kinds[0]
        models[name] = train_config(table[kind]) if kind == "train" else local(table[kind])
    grid = dict(config.get("grid", {}))
    if grid:
        base = dict(grid.pop("base", {}))
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise InvalidParameterError(
                    f"[grid] {key} in {str(source)!r} must be a non-empty list of values. "
                    f"Got {values!r} instead."
                )
        keys = list(grid)
        for combo in itertools.product(*(grid[k] for k in keys)):
            name = ",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True))
            models[name.replace(" ", "")] = train_config(base | dict(zip(keys, combo, strict=True)))
    if not models:
        raise InvalidParameterError(
            f"{str(source)!r} names no models: add [models.NAME] tables or a [grid]."
        )
    settings = dict(config.get("sweep", {}))
    allowed = {"data", "split", "limit", "train_data", "runs_dir"}
    if set(settings) - allowed:
        raise InvalidParameterError(
            f"Unknown keys {sorted(set(settings) - allowed)} in [sweep] of {str(source)!r}; "
            f"allowed: {sorted(allowed)}."
        )
    kwargs: dict[str, Any] = dict(config.get("analyze", {}))
    split = settings.get("split", "test")
    limit = settings.get("limit")
    kwargs["data"] = _data_from_name(settings.get("data", "train"), split, limit, local)
    if "train_data" in settings:
        kwargs["train_data"] = _data_from_name(settings["train_data"], "train", limit, local)
    if "runs_dir" in settings:
        kwargs["runs_dir"] = local(settings["runs_dir"])
    return models, kwargs


def _data_from_name(spec: str, split: str, limit: int | None, local: Callable[[str], str]) -> Any:
    from directionkit.preprocessing import load_data

    if spec in RUN_SPLITS:
        if limit is not None:
            raise InvalidParameterError(
                "'limit' applies to a named data set, not to the runs' own splits "
                "(set train_limit / test_limit in the configs instead)."
            )
        return spec
    if spec not in ("digits", "fashion-mnist"):
        spec = local(spec)
    return load_data(spec, split, limit)
