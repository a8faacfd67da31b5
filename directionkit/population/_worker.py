"""Worker preload of the LocalCluster that :func:`directionkit.sweep` starts itself.

Dask imports this module in each worker process as it starts (``preload``):

- ``dask_setup`` imports the task code (:mod:`directionkit.population._sweep`, and with it xarray,
  zarr, scipy) while the worker starts, which the sweep overlaps with the driver's own
  preparation (creating the store), instead of in the first task;
- once the worker has closed cleanly (``dask_teardown``), its process leaves with
  ``os._exit`` at interpreter exit, skipping the interpreter's teardown.  A spawned worker
  ends with ``sys.exit``, and tearing down torch's modules took 1-4 s on the 2-core
  benchmark machine, past the nanny's 4 s grace period ("Worker process still alive after
  4.0 seconds, killing"), all of it on the sweep's wall time.  The worker holds nothing
  by then: every task wrote its model to the store before returning.

A worker that dies or is killed never reaches ``dask_teardown``, so it exits as it would
have without this module.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import sys
from typing import Any

_closed = False


def _leave_fast() -> None:
    if not _closed:
        return
    logging.shutdown()  # the handlers would be flushed by the teardown skipped here
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # pragma: no cover - closed stream
            pass
    os._exit(0)


def dask_setup(worker: Any) -> None:
    """Import the sweep's task code; arrange the fast exit."""
    importlib.import_module("directionkit.population._sweep")
    # registered after those imports' own handlers, so it runs before them (LIFO): only
    # after a clean close, when nothing in this process matters any more
    atexit.register(_leave_fast)


def dask_teardown(worker: Any) -> None:
    """The worker has closed cleanly: its process may leave without the teardown."""
    global _closed
    _closed = True
