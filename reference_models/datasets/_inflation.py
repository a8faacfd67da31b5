"""How far a compressed file may declare it inflates (the bound on compression bombs)."""

from __future__ import annotations

#: A compressed file (a gzipped IDX file, a ``.npz`` member) may declare at most this many
#: times its compressed size: real data sets compress about 5x, zip's deflate reaches 1032x
#: and bzip2 far more on the zeros of a compression bomb.
_MAX_INFLATION = 100

#: ... or this many bytes, whichever is more (a small file of zeros is no bomb).
_INFLATION_FLOOR = 1 << 20


def _inflation_bound(compressed: int) -> int:
    """The most bytes a compressed file of ``compressed`` bytes may declare it inflates to."""
    return max(_MAX_INFLATION * compressed, _INFLATION_FLOOR)


def _inflation_limits() -> str:
    return (
        f"{_MAX_INFLATION}x the compressed size, at least {_INFLATION_FLOOR:,} bytes; real data "
        "sets compress about 5x"
    )
