"""What a model's output is (class scores, log-probabilities, probabilities, a single
binary score) and how its scores become a loss and a prediction."""

from __future__ import annotations

from typing import Any

import numpy as np

from directionkit._utils.choices import ALL_KINDS
from directionkit._utils.validation import parameter_error
from directionkit.errors import UnsupportedModelError

#: What a model's output holds (an adapter's ``output_kind``), by the operation that
#: produced it, and how directionkit scores it.  Probabilities come back from the adapter
#: as their logarithm, so accuracy is their argmax and the core's cross-entropy
#: ``-log softmax(scores)[y]`` is ``-log p[y]``; for a Sigmoid's per-class probabilities,
#: which need not sum to one, it is ``-log(s[y] / sum(s))``.
OUTPUT_KINDS = {
    "Softmax": "probabilities",
    "Softmax2d": "probabilities",
    "LogSoftmax": "log-probabilities",
    "Sigmoid": "sigmoid-probabilities",
}


OUTPUT_KIND_NOTES = {
    "probabilities": "directionkit uses the logarithm of these probabilities as class scores, "
    "so the loss is -log p[label]",
    "log-probabilities": "directionkit uses it as it is (its cross-entropy is -log p[label])",
    "sigmoid-probabilities": "directionkit uses the logarithm of these per-class sigmoids as "
    "class scores: accuracy is their argmax, and the loss is -log(s[label] / sum(s)), the "
    "sigmoids renormalised over the classes",
}


#: The output kinds an adapter returns as their logarithm.
LOGARITHM_TAKEN = ("probabilities", "sigmoid-probabilities")


OUTPUT_KIND_NOTES["binary-probability"] = (
    "one probability per example, of class 1: directionkit scores it as two classes, "
    "[log(1 - p), log p], so accuracy thresholds p at 0.5 and the loss is the binary "
    "cross-entropy"
)


OUTPUT_KIND_NOTES["binary-logit"] = (
    "one logit per example, of class 1: directionkit scores it as two classes, [0, z] "
    "(their softmax is [1 - sigmoid(z), sigmoid(z)]), so accuracy thresholds z at 0 and the "
    "loss is the binary cross-entropy"
)


def binary_kind(scores: np.ndarray, where: str, sigmoid: bool) -> str:
    """The kind of a single score per example: out of a sigmoid a probability; with a
    value of the first batch outside [0, 1] a logit; otherwise ambiguous, refused.

    A logit whose values happen to lie in [0, 1] (a random or an uncertain model) read
    as a probability would be thresholded at 0.5 instead of 0: silently wrong accuracy.
    So without evidence the adapter asks: ``output_kind="binary-probability"`` (a
    sigmoid the graph hides, in a control-flow subgraph) or ``"binary-logit"``.

    Examples
    --------
    >>> binary_kind(np.array([[0.2], [0.9]]), "output 'p'", sigmoid=True)
    'binary-probability'
    >>> binary_kind(np.array([[-1.5], [2.0]]), "output 'z'", sigmoid=False)
    'binary-logit'
    >>> binary_kind(np.array([[0.2], [0.9]]), "output 'p'", sigmoid=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.UnsupportedModelError: The model gives one score per example ...
    """
    if sigmoid:
        return "binary-probability"
    values = np.asarray(scores, np.float64)
    if values.size and np.all((values >= 0) & (values <= 1)):
        raise UnsupportedModelError(
            f"The model gives one score per example ({where}), every value of the first "
            "batch in [0, 1], and no sigmoid was found producing it: a probability of class "
            "1, or a logit? directionkit will not guess; pass output_kind="
            "'binary-probability' or 'binary-logit'."
        )
    return "binary-logit"


def check_output_kind(kind: Any, func: str) -> str | None:
    """``output_kind`` as given to an adapter: None (detect) or one of :data:`ALL_KINDS`."""
    if kind is not None and kind not in ALL_KINDS:
        raise parameter_error("output_kind", func, f"None or one of {list(ALL_KINDS)}", kind)
    return kind


def binary_columns(scores: np.ndarray, kind: str) -> np.ndarray:
    """Single scores ``(..., 1)`` as two-class scores ``(..., 2)`` (see :data:`BINARY_KINDS`).

    Examples
    --------
    >>> binary_columns(np.array([[0.5]]), "binary-probability").round(4).tolist()
    [[-0.6931, -0.6931]]
    >>> binary_columns(np.array([[2.0]]), "binary-logit").tolist()
    [[0.0, 2.0]]
    """
    values = np.asarray(scores)
    if kind == "binary-logit":
        return np.concatenate([np.zeros_like(values), values], axis=-1)
    p = np.clip(values.astype(np.float64), 1e-38, 1 - 1e-7)
    return np.concatenate([np.log1p(-p), np.log(p)], axis=-1).astype(np.float32)


def looks_like_probabilities(scores: np.ndarray, tol: float = 1e-4) -> str | None:
    """``"probabilities"`` when every row of ``(B, C)`` scores is non-negative and sums
    to one, ``"log-probabilities"`` when their exponentials do, else None.

    Adapters use it on the first batch for scores that no softmax operation produced
    (a softmax written out by hand); a model with one class or one example row that
    happens to sum to one is not enough evidence alone, so ``C >= 2`` is required.

    Examples
    --------
    >>> looks_like_probabilities(np.array([[0.2, 0.8], [0.5, 0.5]]))
    'probabilities'
    >>> looks_like_probabilities(np.log(np.array([[0.2, 0.8]])))
    'log-probabilities'
    >>> looks_like_probabilities(np.array([[1.5, -0.5]])) is None
    True
    """
    z = np.asarray(scores, np.float64)
    if z.ndim != 2 or z.shape[1] < 2 or z.shape[0] == 0 or not np.all(np.isfinite(z)):
        return None
    if np.all(z >= -tol) and np.allclose(z.sum(axis=1), 1.0, rtol=0, atol=tol):
        return "probabilities"
    if np.all(z <= tol):
        top = z.max(axis=1, keepdims=True)
        log_total = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
        if np.allclose(log_total, 0.0, rtol=0, atol=tol):
            return "log-probabilities"
    return None


def probabilities_by_value(scores: np.ndarray, where: str) -> tuple[str, str] | None:
    """``(kind, note)`` when ``(B, C)`` scores that no softmax made hold probabilities by
    their values (see :func:`looks_like_probabilities`), else None.  ``where`` says where
    the scores were read; the note is what the adapter warns and records.

    Examples
    --------
    >>> probabilities_by_value(np.array([[0.25, 0.75]]), "output 'p'")[0]
    'probabilities'
    """
    kind = looks_like_probabilities(scores)
    if kind is None:
        return None
    note = (
        f"The model's scores ({where}) are {kind} by their values (every row of the first "
        "batch is non-negative and sums to one"
        + (", as logarithms" if kind == "log-probabilities" else "")
        + "), though no softmax produced them; directionkit treats them as such."
    )
    return kind, note
