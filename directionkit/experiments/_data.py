"""Turning what users pass as data into a re-iterable stream of ``(x, y)`` batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import Any

import numpy as np

from directionkit._utils.validation import check_int, integral_labels
from directionkit.errors import InvalidDataError

DEFAULT_BATCH_SIZE = 1000


def _labels_to_numpy(y: Any, func: str = "analyze") -> np.ndarray:
    if hasattr(y, "detach"):  # a torch tensor, without importing torch
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    # whole-number float labels (1.0) are class indices; anything else is refused here
    return integral_labels(y, func) if y.ndim == 1 and y.dtype.kind == "f" else y


class Batches:
    """A re-iterable view of a data set as ``(x, labels)`` batches.

    Parameters
    ----------
    data : tuple (X, y) of arrays, or an iterable of (x, y) batches
        ``X`` has the examples on its first axis; ``y`` holds integer class labels.
        An iterable (a torch ``DataLoader``, a list, a generator function's result
        wrapped in a list) must be re-iterable to be read more than once.
    batch_size : int, optional
        Batch size used to cut an ``(X, y)`` tuple (default 1000).
    func : str
        Name of the public function, for error messages.

    Examples
    --------
    >>> X, y = np.zeros((5, 3)), np.array([0, 1, 0, 1, 1])
    >>> [xb.shape[0] for xb, _ in Batches((X, y), batch_size=2)]
    [2, 2, 1]
    """

    def __init__(self, data: Any, batch_size: int | None = None, func: str = "analyze") -> None:
        self.func = func
        self._seen: int | None = None  # examples of one whole pass, once one was made
        self.batch_size = check_int(
            DEFAULT_BATCH_SIZE if batch_size is None else batch_size, "batch_size", func, minimum=1
        )
        if isinstance(data, tuple) and len(data) == 2 and not _is_batch_iterable(data):
            x, y = data
            n_x = len(x) if hasattr(x, "__len__") else None
            y_np = _labels_to_numpy(y, func)
            if n_x is None or y_np.ndim != 1 or n_x != y_np.shape[0]:
                raise InvalidDataError(
                    f"The data of {func} must be (X, y) with one label per example. Got "
                    f"X with {n_x} examples and y of shape {y_np.shape}."
                )
            self._arrays: tuple[Any, np.ndarray] | None = (x, y_np)
            self._iterable: Iterable[Any] | None = None
        elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
            self._arrays, self._iterable = None, data
        else:
            raise InvalidDataError(
                f"The data of {func} must be an (X, y) tuple of arrays or an iterable of (x, y) "
                f"batches (e.g. a torch DataLoader). Got {type(data).__name__} instead."
            )

    @property
    def n_examples(self) -> int | None:
        """Examples per pass: known for arrays, after one pass, or from a loader's dataset.

        Examples
        --------
        >>> Batches((np.zeros((5, 3)), np.zeros(5, int))).n_examples
        5
        >>> batches = Batches(iter([(np.zeros((2, 3)), np.zeros(2, int))]))
        >>> batches.n_examples, sum(1 for _ in batches), batches.n_examples
        (None, 1, 2)
        """
        if self._arrays is not None:
            return int(self._arrays[1].shape[0])
        if self._seen is not None:
            return self._seen
        inner = self._iterable
        if isinstance(inner, Batches):
            return inner.n_examples
        dataset = getattr(inner, "dataset", None)  # a torch DataLoader
        return len(dataset) if isinstance(dataset, Sized) else None

    def __iter__(self) -> Iterator[tuple[Any, np.ndarray]]:
        count = 0
        seen = 0
        if self._arrays is not None:
            x, y = self._arrays
            for start in range(0, len(y), self.batch_size):
                count += 1
                yield x[start : start + self.batch_size], y[start : start + self.batch_size]
        else:
            assert self._iterable is not None
            for index, batch in enumerate(self._iterable):
                if not isinstance(batch, tuple | list) or len(batch) < 2:
                    raise InvalidDataError(
                        f"Batch {index} of the data of {self.func} must be an (x, y) pair. Got "
                        f"{type(batch).__name__} instead."
                    )
                x, y = batch[0], _labels_to_numpy(batch[1], self.func)
                if y.ndim != 1 or len(x) != y.shape[0]:
                    raise InvalidDataError(
                        f"Batch {index} of the data of {self.func} has {len(x)} inputs but labels "
                        f"of shape {y.shape}; expected one label per input."
                    )
                if y.shape[0] == 0:
                    continue
                count += 1
                seen += y.shape[0]
                yield x, y
            self._seen = seen  # a whole pass: its size is known from now on
        if count == 0:
            raise InvalidDataError(f"The data of {self.func} is empty: it yielded no examples.")


def _is_batch_iterable(data: tuple[Any, Any]) -> bool:
    """A 2-tuple of (x, y) pairs is a list of batches, not (X, y)."""
    first = data[0]
    return isinstance(first, tuple | list) and len(first) == 2 and not np.isscalar(first[0])
