"""The evaluation loop every experiment shares, and the bookkeeping of units and scopes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from directionkit._utils.validation import check_choice, check_labels
from directionkit.adapter import Interventions, ModelAdapter, Site, SupportsLazySites
from directionkit.errors import InvalidParameterError, SiteNotFoundError
from directionkit.experiments._data import Batches
from directionkit.experiments._progress import Tracker, row_chunks


@dataclass
class Scores:
    """Per intervention row: correct predictions, summed cross-entropy, example count;
    and how many examples of each class the data held (``(C,)``)."""

    correct: np.ndarray
    loss: np.ndarray
    n: int
    label_counts: np.ndarray | None = None

    @property
    def accuracy(self) -> np.ndarray:
        """Fraction of examples classified correctly, per row."""
        return self.correct / self.n

    @property
    def mean_loss(self) -> np.ndarray:
        """Mean cross-entropy (nats), per row."""
        return self.loss / self.n


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example cross-entropy of ``(M, B, C)`` logits, computed stably in float64.

    Examples
    --------
    >>> bool(np.isclose(cross_entropy(np.zeros((1, 1, 4)), np.array([2]))[0, 0], np.log(4)))
    True
    """
    return _cross_entropy_terms(logits.astype(np.float64), labels)


def _cross_entropy_terms(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``-log softmax(z)[label]`` over the last axis of ``(..., B, C)`` scores, in their dtype."""
    z = z - z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    index = labels.reshape((1,) * (z.ndim - 2) + (-1, 1))
    return log_norm - np.take_along_axis(z, index, axis=-1)[..., 0]


def summed_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Summed cross-entropy of ``(B, C)`` logits, in their own dtype, summed in float64.

    The per-example terms of :func:`cross_entropy` without its float64 copy of the
    logits: for the many small per-unit batches of the rank-1 importance path, where
    that copy and the extra passes cost more than the arithmetic.

    Examples
    --------
    >>> z = np.array([[0.0, 1.0], [2.0, -1.0]], np.float32)
    >>> y = np.array([1, 0])
    >>> bool(np.isclose(summed_cross_entropy(z, y), cross_entropy(z[None], y).sum()))
    True
    """
    return float(np.sum(_cross_entropy_terms(logits, labels), dtype=np.float64))


Accuracy = Literal["top1", "top5"]
ACCURACY_KINDS: tuple[str, ...] = ("top1", "top5")


def top_k(accuracy: Any, func: str) -> int:
    """``k`` of an accuracy kind: ``"top1"`` is 1, ``"top5"`` is 5 (checked).

    Examples
    --------
    >>> top_k("top5", "analyze")
    5
    """
    check_choice(accuracy, "accuracy", func, ACCURACY_KINDS)
    return int(str(accuracy).removeprefix("top"))


def top_k_hits(logits: np.ndarray, labels: np.ndarray, k: int, axis: int = -1) -> np.ndarray:
    """Whether each label is among the ``k`` highest scores along ``axis`` (classes).

    A label's rank counts the classes scoring higher, plus those scoring the same with
    a smaller index, so ``k=1`` agrees with ``argmax`` (first maximum wins) on ties.
    ``labels`` broadcasts against ``logits`` with the class axis removed.

    Examples
    --------
    >>> z = np.array([[0.1, 0.7, 0.2], [0.5, 0.5, 0.0]])
    >>> top_k_hits(z, np.array([2, 1]), 1).tolist(), top_k_hits(z, np.array([2, 1]), 2).tolist()
    ([False, False], [True, True])
    """
    z = np.moveaxis(logits, axis, -1)
    picked = np.take_along_axis(z, np.expand_dims(labels, -1), axis=-1)
    classes = np.arange(z.shape[-1])
    ahead = (z > picked) | ((z == picked) & (classes < np.expand_dims(labels, -1)))
    hits: np.ndarray = ahead.sum(axis=-1) < k
    return hits


def check_top_k(k: int, n_classes: int, func: str) -> None:
    """Top-k accuracy needs more than ``k`` classes, else every example is a hit."""
    if k > 1 and n_classes <= k:
        raise InvalidParameterError(
            f"The 'accuracy' parameter of {func} is 'top{k}', which needs a model with more "
            f"than {k} classes; this one has {n_classes} (every example would count as "
            "correct). Use accuracy='top1'."
        )


def evaluate(
    adapter: ModelAdapter,
    batches: Batches,
    interventions: Interventions | None,
    k: int = 1,
    tracker: Tracker | None = None,
) -> Scores:
    """Accuracy (top-``k``) and loss of every intervention row over the whole data set.

    With an active ``tracker`` the rows of each batch run in chunks, each reported when
    done (the same numbers: a row's noise depends on its index, not on its chunk).
    """
    correct: np.ndarray | None = None
    loss: np.ndarray | None = None
    counts: np.ndarray | None = None
    n = 0
    tracking = tracker is not None and tracker.active
    for index, (x, y) in enumerate(batches):
        iv = None if interventions is None else interventions.for_batch(index)
        m = 1 if iv is None else iv.n_interventions
        parts = []
        for start, stop in row_chunks(m, tracking and iv is not None):
            rows = iv if iv is None or stop - start == m else iv.rows(start, stop)
            parts.append(adapter.run(x, rows).logits)
            if tracker is not None:
                tracker.advance(y.shape[0], stop - start)
        logits = parts[0] if len(parts) == 1 else np.concatenate(parts)
        check_labels_fit(y, logits.shape[-1], batches.func)
        check_top_k(k, logits.shape[-1], batches.func)
        if k == 1:
            hits = (logits.argmax(axis=-1) == y[None, :]).sum(axis=1)
        else:
            hits = top_k_hits(logits, np.broadcast_to(y, logits.shape[:-1]), k).sum(axis=1)
        ce = cross_entropy(logits, y).sum(axis=1)
        correct = hits if correct is None else correct + hits
        loss = ce if loss is None else loss + ce
        batch_counts = np.bincount(y, minlength=logits.shape[-1])
        counts = batch_counts if counts is None else counts + batch_counts
        n += y.shape[0]
    assert correct is not None and loss is not None
    return Scores(correct, loss, n, counts)


def find_sites(adapter: ModelAdapter, batches: Batches) -> None:
    """Let an adapter that finds its sites by running the model run the first example."""
    if isinstance(adapter, SupportsLazySites) and adapter.sites_pending:
        x, _ = next(iter(batches))
        adapter.run(x[:1])


def check_labels_fit(y: np.ndarray, n_classes: int, func: str) -> None:
    """Labels must be integer class indices below the model's number of outputs."""
    outputs = f"the model has {n_classes} outputs"
    check_labels(y, len(y), func, n_classes, classes_from=outputs, allow_empty=True)


def unit_coords(sites: Mapping[str, Site]) -> dict[str, tuple[str, np.ndarray]]:
    """The ``site`` and ``unit_index`` coordinates of the ``unit`` dim, in site order."""
    names = np.concatenate([np.full(s.n_units, n, dtype=object) for n, s in sites.items()])
    index = np.concatenate([np.arange(s.n_units) for s in sites.values()])
    return {"site": ("unit", names.astype(str)), "unit_index": ("unit", index)}


def site_layers(sites: Mapping[str, Site]) -> list[list[str]]:
    """The sites grouped into layers, in forward order.

    A layer is a run of consecutive sites with the same :attr:`Site.layer_name` (the
    ReLU calls of one ResNet block); a site without a layer is a layer of its own.

    Examples
    --------
    >>> sites = {n: Site(n, 2, depth=i, layer=l) for i, (n, l) in
    ...          enumerate([("stem", None), ("b.r", "b"), ("b.r#1", "b"), ("fc", None)])}
    >>> site_layers(sites)
    [['stem'], ['b.r', 'b.r#1'], ['fc']]
    """
    layers: list[list[str]] = []
    previous: str | None = None
    for name, site in sites.items():
        if layers and site.layer is not None and site.layer_name == previous:
            layers[-1].append(name)
        else:
            layers.append([name])
        previous = site.layer_name
    return layers


def scope_sites(sites: Mapping[str, Site], scope: str, func: str) -> list[str]:
    """The site names a scope (``"all"``, a site name, or ``"last:K"``) covers.

    ``"last:K"`` is the sites of the last K *layers* (see :func:`site_layers`): on a
    plain network the last K sites, on a ResNet the last K blocks.
    """
    if not isinstance(scope, str):
        raise InvalidParameterError(
            f"The 'scope' parameter of {func} must be 'all', a site name or 'last:K'. "
            f"Got {scope!r} instead."
        )
    names = list(sites)
    if scope == "all":
        return names
    if scope.startswith("last:"):
        k = scope.removeprefix("last:")
        layers = site_layers(sites)
        if not k.isdigit() or not 1 <= int(k) <= len(layers):
            raise InvalidParameterError(
                f"The 'scope' parameter of {func} must be 'last:K' with 1 <= K <= {len(layers)} "
                f"(the number of layers). Got {scope!r} instead."
            )
        return [name for layer in layers[-int(k) :] for name in layer]
    if scope not in sites:
        raise SiteNotFoundError(scope, names)
    return [scope]


def site_offsets(sites: Mapping[str, Site]) -> dict[str, int]:
    """Index of each site's first unit along the ``unit`` dim."""
    offsets, total = {}, 0
    for name, site in sites.items():
        offsets[name] = total
        total += site.n_units
    return offsets
