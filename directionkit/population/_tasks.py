"""One task of a sweep: load (or train) one model, analyse it, and write its row.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from directionkit.api import analyze
from directionkit.errors import (
    DirectionKitWarning,
)
from directionkit.experiments import BASELINES
from directionkit.population._models import (
    HISTORY_METADATA,
    RUN_SPLITS,
    Checkpoint,
    _config_of,
    _is_run_dir,
    _is_train_config,
)
from directionkit.population._store import UNITS_GROUP, _FullChunks, _row_files
from directionkit.population._timeline import _peak_rss_mb, _span
from directionkit.results import atomic_directory, open_dataset
from directionkit.results._stores import _write_sealed


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
    _write_row(group, index, dataset, history)
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


def _write_row(group: Any, index: int, dataset: xr.Dataset, history: dict[str, float]) -> None:
    """Write one model's row of the root arrays: its scalars, summaries and curves."""
    scalars = {
        "accuracy": float(dataset["accuracy"]),
        "loss": float(dataset["loss"]),
        "n_units": int(dataset.sizes.get("unit", 0)),
        **_summaries(dataset),
        **{name: float(dataset[name]) for name in BASELINES if name in dataset},
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
