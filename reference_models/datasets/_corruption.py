"""Label corruption: :func:`corrupt_labels`."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from directionkit._utils.validation import check_labels, parameter_error


def corrupt_labels(y: Any, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the labels of a random fraction of the examples among themselves.

    ``round(fraction * n)`` examples are chosen with ``np.random.default_rng(seed)``; their
    labels are permuted among them, so the label histogram is preserved exactly (labels are
    not resampled uniformly).  A shuffled label may equal the original one by chance, so the
    returned mask marks the *eligible* (chosen) examples, not those whose label changed.

    Parameters
    ----------
    y : array-like of int, shape (n,)
        Class indices (non-negative integers).  Not modified.
    fraction : float
        Fraction of examples whose labels are shuffled, in ``[0, 1]``.  ``round`` is Python's
        (half to even).
    seed : int
        Seed of the random generator; the same seed gives the same result.

    Returns
    -------
    labels : numpy.ndarray of int64, shape (n,)
        The corrupted labels (a new array).
    mask : numpy.ndarray of bool, shape (n,)
        True for the ``round(fraction * n)`` examples whose labels took part in the shuffle.

    Raises
    ------
    InvalidParameterError
        ``fraction`` is not a number in ``[0, 1]`` or ``seed`` is not an int >= 0.
    InvalidDataError
        ``y`` is not a non-empty 1-d array of non-negative integers.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit.reference_models.datasets import corrupt_labels, load
    >>> _, y = load("digits")
    >>> y_bad, mask = corrupt_labels(y, 0.5, seed=0)
    >>> int(mask.sum()), round(0.5 * len(y))
    (674, 674)
    >>> bool((np.bincount(y_bad) == np.bincount(y)).all())
    True
    >>> bool((y_bad[~mask] == y[~mask]).all())
    True
    """
    func = "corrupt_labels"
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, numbers.Real)
        or not math.isfinite(float(fraction))
        or not 0.0 <= float(fraction) <= 1.0
    ):
        raise parameter_error("fraction", func, "a float in [0, 1]", fraction)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise parameter_error("seed", func, "an int >= 0", seed)
    array = np.asarray(y)
    labels, _ = check_labels(array, array.shape[0] if array.ndim else 0, func)
    n = labels.shape[0]
    k = round(float(fraction) * n)
    mask = np.zeros(n, dtype=bool)
    if k == 0:
        return labels, mask
    rng = np.random.default_rng(int(seed))
    chosen = rng.choice(n, size=k, replace=False)
    labels[chosen] = labels[rng.permutation(chosen)]
    mask[chosen] = True
    return labels, mask
