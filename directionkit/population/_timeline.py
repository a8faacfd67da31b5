"""A timeline of a sweep's events, kept only when a benchmark asks for it (``_TIMELINE``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any


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
