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
import importlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from directionkit._utils.validation import parameter_error
from directionkit.api._analyze import _identity
from directionkit.errors import (
    DirectionKitError,
    StoreError,
)
from directionkit.population._cluster import _connect, _distributed, _own_cluster, _scatter
from directionkit.population._models import (
    RUN_SPLITS,
    _check_models,
    _config_of,
    _describe,
    _Plan,
    _plan,
)
from directionkit.population._store import (
    SWEEP_KIND,
    SweepResult,
    _create_store,
    _metadata_columns,
    _read_attrs,
    _remove_stale_temporaries,
    _root_dataset,
    open_sweep,
)
from directionkit.population._tasks import _run_one
from directionkit.population._timeline import _mark
from directionkit.results._ownership import writer_lock


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
