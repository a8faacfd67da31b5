"""Progress within an experiment: work counted in example-rows, reported as it is done.

An experiment's work is the model evaluations it runs: ``examples x intervention rows``
for every pass over the data.  Each experiment plans its passes up front (so a progress
bar knows its total and can estimate the time left) and advances after every batch and
every chunk of intervention rows.  The callback is the experiments' optional
``progress`` argument, called as ``progress(done, total)``; ``total`` is None when the
number of examples is not known (an iterable of batches without a length).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressCallback", "Tracker", "row_chunks"]

#: ``progress(done, total)``: work done and planned so far, in example-rows.
ProgressCallback = Callable[[int, "int | None"], None]

# with a progress callback, the M intervention rows of a batch are run in about this many
# chunks (never below _MIN_ROWS rows each), so that a stage of one batch still advances
_CHUNKS = 16
_MIN_ROWS = 8


def row_chunks(m: int, tracking: bool) -> list[tuple[int, int]]:
    """``(start, stop)`` chunks of ``m`` intervention rows: one chunk unless tracking.

    Examples
    --------
    >>> row_chunks(40, tracking=False), row_chunks(20, tracking=True)
    ([(0, 40)], [(0, 8), (8, 16), (16, 20)])
    """
    if not tracking:
        return [(0, m)]
    size = max(_MIN_ROWS, -(-m // _CHUNKS))
    return [(start, min(start + size, m)) for start in range(0, m, size)]


class Tracker:
    """Counts the work of one experiment and reports it to a callback (or to nobody).

    Examples
    --------
    >>> calls = []
    >>> tracker = Tracker(lambda done, total: calls.append((done, total)))
    >>> tracker.plan(100, rows=3)
    >>> tracker.advance(50, rows=3); tracker.advance(50, rows=3)
    >>> calls
    [(0, 300), (150, 300), (300, 300)]
    >>> Tracker(None).active
    False
    """

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.done = 0
        self.total: int | None = 0

    @property
    def active(self) -> bool:
        """Whether anyone listens (only then are intervention rows chunked)."""
        return self.callback is not None

    def plan(self, examples: int | None, rows: int = 1, passes: int = 1) -> None:
        """Add ``passes`` passes over ``examples`` examples with ``rows`` rows each."""
        if self.total is not None:
            self.total = None if examples is None else self.total + examples * rows * passes
        self._report()

    def advance(self, examples: int, rows: int = 1) -> None:
        """``examples`` examples were run under ``rows`` intervention rows."""
        self.done += examples * rows
        self._report()

    def _report(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.total)
