"""Repeated side-by-side runs: the machine line, per-run figures and their medians.

Issue 14's targets are medians of 5 side-by-side runs, recorded with the machine's load.
A benchmark script times each of its methods once per run (all methods in the same run,
one after the other, so a change of the machine's speed hits all of them), hands the
times to :class:`Runs`, and prints :meth:`Runs.table`: every run's raw seconds, the
median per method, and the median of the per-run ratios to the baseline.

Imported by the benchmark scripts, which run as ``python benchmarks/<script>.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field


def machine() -> str:
    """CPU, cores, load averages (1/5/15 min), date: the line each result is recorded with."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = "/".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{cpu}, {os.cpu_count()} cores, load average {load}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip


@dataclass
class Runs:
    """Seconds per method per run; the first method is the baseline of the ratios."""

    baseline: str
    seconds: dict[str, list[float]] = field(default_factory=dict)
    loads: list[float] = field(default_factory=list)

    def add(self, times: dict[str, float]) -> None:
        """Record one run (every method, timed side by side), and the load after it."""
        for method, value in times.items():
            self.seconds.setdefault(method, []).append(value)
        self.loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))

    def ratios(self, method: str) -> list[float]:
        """Per run: baseline seconds / method seconds."""
        return [b / m for b, m in zip(self.seconds[self.baseline], self.seconds[method],
                                      strict=True)]  # fmt: skip

    def table(self) -> str:
        """A markdown table: raw seconds per run, the median, the median per-run ratio."""
        n = len(self.loads)
        head = "| method | " + " | ".join(f"run {i + 1}" for i in range(n))
        lines = [head + " | median | median ratio (per run) |",
                 "|---" * (n + 3) + "|"]  # fmt: skip
        for method, values in self.seconds.items():
            ratio = "" if method == self.baseline else (
                f"**{statistics.median(self.ratios(method)):.1f}x** "
                f"({', '.join(f'{r:.1f}' for r in self.ratios(method))})"
            )  # fmt: skip
            lines.append(f"| {method} | " + " | ".join(f"{v:.2f} s" for v in values)
                         + f" | {statistics.median(values):.2f} s | {ratio} |")  # fmt: skip
        lines.append("| 1-min load average after the run | "
                     + " | ".join(f"{v:.2f}" for v in self.loads) + " | | |")  # fmt: skip
        return "\n".join(lines)
