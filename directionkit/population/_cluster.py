"""The Dask cluster a sweep runs on: a LocalCluster of its own (started safely, quietly)
or the scheduler the user names.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from directionkit.errors import (
    DirectionKitError,
)
from directionkit.population._timeline import _mark


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
    import the task code (the :mod:`directionkit.population._worker` preload, which also lets
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
            preload=["directionkit.population._worker"],
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


def _scatter(client: Any, data: Any) -> Any:
    """Arrays go to every worker once, not once per task."""
    if isinstance(data, tuple) and all(isinstance(a, np.ndarray) for a in data):
        return tuple(client.scatter(list(data), broadcast=True, hash=False))
    return data
