"""Chance accuracy, and whether a model's accuracy is clearly above it.

A model at chance stays at chance when its units are ablated, so its ablation curve is
flat and its normalised AUC near 1: it looks maximally robust.  directionkit therefore
stores the accuracy of the best *constant* prediction on the evaluated labels beside the
clean accuracy, the AUC with accuracy mapped so that clean = 1 and chance = 0
(:func:`directionkit.ablation_auc` with ``chance=``), and a flag for a model whose clean
accuracy is not clearly above chance (:func:`near_chance`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from directionkit._utils.validation import check_int
from directionkit.errors import InvalidDataError

__all__ = ["CHANCE_MARGIN", "chance_accuracy", "chance_margin", "chance_note", "near_chance"]

#: The least margin above chance a clean accuracy needs (see :func:`chance_margin`).
CHANCE_MARGIN = 0.05
#: The one-sided binomial tail a clean accuracy must be beyond: that of three standard
#: deviations of a normal (a guessing model passes about once in 740 tries).
CHANCE_TAIL = 0.00135


def chance_accuracy(label_counts: Any, k: int = 1) -> float:
    """The accuracy of the best constant prediction: the ``k`` most frequent classes'
    share of the labels (top-``k`` accuracy), the majority-class rate for ``k = 1``.

    It is the accuracy of a model that ignores its input, and what a network's accuracy
    falls to when every unit is ablated and its output becomes constant (at best).  On
    balanced labels it is ``k / C``; on imbalanced ones it is higher than ``k / C``,
    which is why it, and not ``1 / C``, is the floor.

    Parameters
    ----------
    label_counts : array-like of int, shape (C,)
        How many examples of each class the evaluated data hold.
    k : int
        Top-k accuracy's k.

    Examples
    --------
    >>> chance_accuracy([10, 10, 10, 10])
    0.25
    >>> chance_accuracy([70, 20, 10]), chance_accuracy([70, 20, 10], k=2)
    (0.7, 0.9)
    """
    counts = np.asarray(label_counts, dtype=np.float64)
    k = check_int(k, "k", "chance_accuracy", minimum=1)
    if counts.ndim != 1 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
        raise InvalidDataError(
            "chance_accuracy needs a non-empty 1-d array of class counts, not all 0. Got "
            f"{np.asarray(label_counts).tolist()!r}."
        )
    top = np.sort(counts)[::-1][:k]
    return float(top.sum() / counts.sum())


def chance_margin(chance: float, n: int) -> float:
    """How far above ``chance`` a clean accuracy on ``n`` examples must be to count as
    clearly above it.

    The accuracy must be one that a model guessing at ``chance`` reaches with probability
    at most :data:`CHANCE_TAIL` (the one-sided binomial tail of three standard deviations:
    about 3 standard errors on many examples, exact on few), and at least
    :data:`CHANCE_MARGIN` (five points) above chance, so that a model barely above chance
    on a large data set is not read as having learned.  A margin above ``1 - chance``
    means no accuracy on ``n`` examples can tell the model from a guesser.

    Examples
    --------
    >>> round(chance_margin(0.1, 10_000), 3), round(chance_margin(0.5, 40), 3)
    (0.05, 0.25)
    >>> round(chance_margin(0.7, 10), 3)  # 10 of 10 right happens to a guesser 2.8% of the time
    0.4
    """
    # scipy.special, not scipy.stats (0.6 s more to import, on every first analyze)
    from scipy.special import bdtrc  # bdtrc(k, n, p) = P(X > k), X ~ Binomial(n, p)

    n = check_int(n, "n", "chance_margin", minimum=1)

    def tail(count: int) -> float:  # P(X >= count), falling as count grows
        return 1.0 if count <= 0 else float(bdtrc(count - 1, n, chance))

    # the smallest count of correct examples whose tail is <= CHANCE_TAIL (n + 1: none)
    low, high = 0, n + 1
    while low < high:
        middle = (low + high) // 2
        if tail(middle) <= CHANCE_TAIL:
            high = middle
        else:
            low = middle + 1
    return max(CHANCE_MARGIN, low / n - chance)


def near_chance(accuracy: float, chance: float, n: int) -> bool:
    """Whether a clean ``accuracy`` on ``n`` examples is not clearly above ``chance``
    (less than :func:`chance_margin` above it): the model's ablation measures then
    describe a model that learned nothing the data show.

    Examples
    --------
    >>> near_chance(0.1000, 0.1, 500), near_chance(0.95, 0.1, 500)
    (True, False)
    """
    # a hair of tolerance: an accuracy of exactly the needed count of n passes
    return bool(accuracy < chance + chance_margin(chance, n) - 1e-9)


def chance_note(accuracy: float, label_counts: Any, k: int = 1) -> tuple[float, str | None]:
    """Chance accuracy for ``label_counts`` and, when ``accuracy`` is not clearly above it,
    the sentence that says so (None otherwise); callers add what follows for them.

    Examples
    --------
    >>> chance_note(0.95, [50, 50])
    (0.5, None)
    >>> print(chance_note(0.52, [50, 50])[1])
    the clean accuracy 0.5200 is not clearly above chance (0.5000, the best constant prediction's, + 0.1600)
    """  # noqa: E501
    counts = np.asarray(label_counts)
    chance = chance_accuracy(counts, k)
    n = int(counts.sum())
    if not near_chance(accuracy, chance, n):
        return chance, None
    return chance, (
        f"the clean accuracy {accuracy:.4f} is not clearly above chance ({chance:.4f}, the "
        f"best constant prediction's, + {chance_margin(chance, n):.4f})"
    )

