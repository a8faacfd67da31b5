"""The evaluation loop every experiment shares, and the bookkeeping of units and scopes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from directionkit._validation import check_labels
from directionkit.adapter import Interventions, ModelAdapter, Site
from directionkit.errors import InvalidParameterError, SiteNotFoundError
from directionkit.experiments._data import Batches


@dataclass
class Scores:
    """Per intervention row: correct predictions, summed cross-entropy, example count."""

    correct: np.ndarray
    loss: np.ndarray
    n: int

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
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=-1))
    picked = np.take_along_axis(z, labels[None, :, None], axis=-1)[..., 0]
    return log_norm - picked


def evaluate(
    adapter: ModelAdapter, batches: Batches, interventions: Interventions | None
) -> Scores:
    """Accuracy and loss of every intervention row over the whole data set."""
    correct: np.ndarray | None = None
    loss: np.ndarray | None = None
    n = 0
    for index, (x, y) in enumerate(batches):
        iv = None if interventions is None else interventions.for_batch(index)
        logits = adapter.run(x, iv).logits
        check_labels_fit(y, logits.shape[-1], batches.func)
        hits = (logits.argmax(axis=-1) == y[None, :]).sum(axis=1)
        ce = cross_entropy(logits, y).sum(axis=1)
        correct = hits if correct is None else correct + hits
        loss = ce if loss is None else loss + ce
        n += y.shape[0]
    assert correct is not None and loss is not None
    return Scores(correct, loss, n)


def check_labels_fit(y: np.ndarray, n_classes: int, func: str) -> None:
    """Labels must be integer class indices below the model's number of outputs."""
    outputs = f"the model has {n_classes} outputs"
    check_labels(y, len(y), func, n_classes, classes_from=outputs, allow_empty=True)


def unit_coords(sites: Mapping[str, Site]) -> dict[str, tuple[str, np.ndarray]]:
    """The ``site`` and ``unit_index`` coordinates of the ``unit`` dim, in site order."""
    names = np.concatenate([np.full(s.n_units, n, dtype=object) for n, s in sites.items()])
    index = np.concatenate([np.arange(s.n_units) for s in sites.values()])
    return {"site": ("unit", names.astype(str)), "unit_index": ("unit", index)}


def scope_sites(sites: Mapping[str, Site], scope: str, func: str) -> list[str]:
    """The site names a scope (``"all"``, a site name, or ``"last:K"``) covers."""
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
        if not k.isdigit() or not 1 <= int(k) <= len(names):
            raise InvalidParameterError(
                f"The 'scope' parameter of {func} must be 'last:K' with 1 <= K <= {len(names)} "
                f"(the number of sites). Got {scope!r} instead."
            )
        return names[-int(k) :]
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
