"""The errors of a data set that is not there: :class:`DatasetNotFoundError`, and
:class:`SplitNotFoundError` for a split a ``.npz`` file does not have."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from directionkit.errors import DirectionKitError, InvalidDataError


class DatasetNotFoundError(DirectionKitError, FileNotFoundError):
    """The files of a data set are not where :func:`load` looked for them.

    The message lists every path looked at and says how to get the data.
    """

    def __str__(self) -> str:  # OSError would format (errno, strerror) otherwise
        return str(self.args[0])


class SplitNotFoundError(InvalidDataError):
    """A ``.npz`` data file without the split asked for (e.g. ``x``/``y`` only, no ``train``)."""


def _not_found(what: str, looked: Sequence[Path], how: str) -> DatasetNotFoundError:
    listed = "\n".join(f"  {p}" for p in looked)
    return DatasetNotFoundError(f"{what} not found. Looked at:\n{listed}\n{how}")
