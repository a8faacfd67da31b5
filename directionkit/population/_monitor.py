"""A cheap estimate of the ablation AUC, and a monitor a training loop calls each epoch.

The paper (sections 3.2 and 4) suggests single-direction reliance as an early-stopping
signal "by sparsely sampling the ablation curve".  :func:`estimate_auc` measures the
curve at a few fractions only, with a few orderings, all in one pass over the data (the
M interventions ride on the batch axis), and integrates it with the trapezoid rule over
``0, fractions..., 1``; :class:`AUCMonitor` records that estimate each epoch and flags
the epoch where it starts to fall.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_int, parameter_error
from directionkit.api import as_adapter
from directionkit.errors import DirectionKitWarning
from directionkit.experiments import ablation_curve
from directionkit.experiments._data import Batches
from directionkit.metrics import ablation_auc, chance_note

__all__ = ["AUCMonitor", "estimate_auc"]


def _grid(fractions: Sequence[float], func: str) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64) if not isinstance(fractions, str) else None
    if (
        values is None
        or values.ndim != 1
        or values.size == 0
        or not np.all(np.isfinite(values))
        or np.any((values <= 0) | (values >= 1))
    ):
        raise parameter_error(
            "fractions", func, "a non-empty sequence of fractions in (0, 1)", fractions
        )
    return np.unique(np.concatenate([[0.0], values, [1.0]]))


def estimate_auc(
    model: Any,
    data: Any,
    fractions: Sequence[float] = (0.25, 0.5),
    orderings: int = 3,
    *,
    scope: str = "all",
    seed: int = 0,
    sites: Sequence[str] | None = None,
    device: str | None = None,
    batch_size: int | None = None,
) -> float:
    """A cheap estimate of the normalised ablation AUC (zero ablation).

    The ablation curve is measured at ``0, *fractions, 1`` only, averaged over
    ``orderings`` random orderings, and integrated with the trapezoid rule, as
    :func:`directionkit.ablation_auc` does for the full curve.  Fraction 0 is the clean
    accuracy and fraction 1 (every unit clamped) one constant output, so the cost is about
    ``1 + orderings * len(fractions)`` evaluations of the model on ``data``, in one pass.

    Parameters
    ----------
    model : torch.nn.Module, ONNX model or ModelAdapter
        As for :func:`directionkit.analyze`; a torch module is evaluated in eval mode and
        handed back in the mode it came in.
    data : (X, y), DataLoader or iterable of batches
        The paper measures the curve on training data; a fixed subset of it keeps the
        estimate cheap.
    fractions : sequence of float in (0, 1), default (0.25, 0.5)
    orderings : int, default 3
    scope : str, default "all"
    seed : int, default 0
        Seed of the orderings; the same seed gives the same orderings every call, which
        makes estimates over epochs of one run comparable.
    sites, device, batch_size :
        As for :func:`directionkit.analyze`.

    Returns
    -------
    float
        NaN, with a :class:`~directionkit.DirectionKitWarning`, when the clean accuracy
        is not clearly above chance (the best constant prediction's accuracy on the
        labels, plus :func:`directionkit.metrics.chance_margin`): such a model stays at
        chance when ablated, so its AUC would be near 1 and read as maximally robust.

    Notes
    -----
    The estimate is biased low (the chord from the last fraction to 1 cuts under a concave
    curve), which does not matter for comparing models or epochs, but it sees only the
    fractions it samples: on 16 digits MLPs (64-256-256) it ranked the models like the full
    21-fraction AUC (Spearman 0.95, and 0.98 with ``fractions=(0.5, 0.75, 0.9)``); on
    narrower ones (64-128) whose full AUCs lay within 0.83-0.90 it did not (-0.2).  Where
    a population's curves differ late, sample late fractions (benchmarks/RESULTS.md,
    issue 13).

    Examples
    --------
    >>> import numpy as np, directionkit as dk
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=4, hidden=(16, 16), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(200, 4)); y = net.predict(X)
    >>> cheap = dk.estimate_auc(net, (X, y))
    >>> full = float(dk.analyze(net, (X, y), metrics=["ablation"], progress=False)["ablation_auc"][0])
    >>> 0 < cheap <= 1.0, abs(cheap - full) < 0.1
    (True, True)
    """  # noqa: E501
    func = "estimate_auc"
    grid = _grid(fractions, func)
    orderings = check_int(orderings, "orderings", func, minimum=1)
    adapter = as_adapter(model, sites=sites, device=device, data=data)
    batches = Batches(data, batch_size, func)
    curve = ablation_curve(adapter, batches, scope, orderings, grid, "zero", seed)
    clean = float(curve["ablation_accuracy"].sel(fraction=0.0).mean())
    counts = np.bincount(np.concatenate([np.asarray(y).ravel() for _, y in batches]))
    _, note = chance_note(clean, counts)
    if note is not None:
        warnings.warn(
            f"directionkit: {note}: a model at chance stays at chance when ablated, so "
            "estimate_auc gives NaN, not an AUC near 1.",
            DirectionKitWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(ablation_auc(curve["ablation_accuracy"]).mean())


class AUCMonitor:
    """Track the estimated ablation AUC over training and flag where it starts to fall.

    Call it once per epoch with the model (``monitor(model, epoch)``); it stores the
    estimate (:func:`estimate_auc`) and returns it.  Nothing framework-specific: any model
    :func:`directionkit.analyze` takes works, so a PyTorch loop passes its module.

    **When the AUC "starts to fall".**  Epoch-to-epoch estimates wobble (a few orderings,
    few fractions), so a single lower value means nothing.  The monitor keeps the best
    estimate so far (the *peak*).  The AUC has started to fall once ``patience``
    consecutive estimates after the peak are all below ``peak - min_drop``; then
    :attr:`fell_at` is the peak's epoch (where the fall starts: the early-stopping
    candidate) and :attr:`flagged_at` the epoch at which the fall became certain.  A new
    peak before that resets the count.  Once flagged, the flag stays (later recoveries are
    recorded but do not unflag it).  An epoch whose model is not clearly above chance
    (:func:`estimate_auc` gives NaN, with a warning) is recorded as NaN and never counts
    as a peak: an untrained network's flat curve cannot be the best AUC.

    Parameters
    ----------
    data : (X, y), DataLoader or iterable of batches
        What the estimate is computed on (use the same fixed subset every epoch).
    fractions, orderings, scope, seed, sites, device, batch_size :
        Passed to :func:`estimate_auc`.
    patience : int, default 2
        Consecutive estimates below the peak needed to flag a fall.
    min_drop : float, default 0.01
        How far below the peak (in AUC units) an estimate must be to count.

    Attributes
    ----------
    history : xarray.DataArray
        The estimates, dim ``epoch``.
    fell_at : int or None
        The epoch where the AUC started to fall (its peak), once flagged.
    flagged_at : int or None
        The epoch at which the fall was flagged.

    Examples
    --------
    >>> import numpy as np
    >>> from directionkit import AUCMonitor
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=4, hidden=(8,), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(60, 4))
    >>> monitor = AUCMonitor((X, net.predict(X)))
    >>> 0 < monitor(net) <= 1, monitor.history.dims     # in the loop: after each epoch
    (True, ('epoch',))
    >>> monitor = AUCMonitor((X, net.predict(X)))
    >>> for epoch, value in enumerate([0.6, 0.7, 0.65, 0.66, 0.6], start=1):
    ...     monitor.record(epoch, value)   # estimates computed elsewhere
    >>> monitor.fell_at, monitor.flagged_at, monitor.should_stop
    (2, 4, True)
    """

    def __init__(
        self,
        data: Any,
        *,
        fractions: Sequence[float] = (0.25, 0.5),
        orderings: int = 3,
        scope: str = "all",
        seed: int = 0,
        sites: Sequence[str] | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        patience: int = 2,
        min_drop: float = 0.01,
    ) -> None:
        func = "AUCMonitor"
        _grid(fractions, func)
        self.data = data
        self._options: dict[str, Any] = {
            "fractions": tuple(float(f) for f in fractions),
            "orderings": check_int(orderings, "orderings", func, minimum=1),
            "scope": scope, "seed": seed, "sites": sites, "device": device,
            "batch_size": batch_size,
        }  # fmt: skip
        self.patience = check_int(patience, "patience", func, minimum=1)
        if isinstance(min_drop, bool) or not isinstance(min_drop, int | float) or min_drop < 0:
            raise parameter_error("min_drop", func, "a float >= 0", min_drop)
        self.min_drop = float(min_drop)
        self._epochs: list[int] = []
        self._values: list[float] = []
        self.fell_at: int | None = None
        self.flagged_at: int | None = None

    def __call__(self, model: Any, epoch: int | None = None) -> float:
        """Estimate the AUC of ``model`` now, record it for ``epoch`` and return it.

        ``epoch`` defaults to one more than the last recorded (1 first).
        """
        value = estimate_auc(model, self.data, **self._options)
        self.record(self._next(epoch), value)
        return value

    def _next(self, epoch: int | None) -> int:
        if epoch is None:
            return self._epochs[-1] + 1 if self._epochs else 1
        return check_int(epoch, "epoch", "AUCMonitor", minimum=0)

    def record(self, epoch: int, value: float) -> None:
        """Record an estimate computed elsewhere (epochs must increase)."""
        epoch = check_int(epoch, "epoch", "AUCMonitor.record", minimum=0)
        if self._epochs and epoch <= self._epochs[-1]:
            raise parameter_error(
                "epoch", "AUCMonitor.record", f"greater than the last one ({self._epochs[-1]})",
                epoch,
            )  # fmt: skip
        self._epochs.append(epoch)
        self._values.append(float(value))
        if self.flagged_at is None:
            self._update()

    def _update(self) -> None:
        values = np.asarray(self._values)
        if not np.isfinite(values).any():  # every epoch so far near chance: no peak yet
            return
        peak = int(np.nanargmax(values))  # the first of equal peaks
        after = values[peak + 1 :]
        # a NaN (near chance) after the peak counts as a fall: the model unlearned
        if after.size >= self.patience and np.all(
            ~(after[-self.patience :] >= values[peak] - self.min_drop)
        ):
            # every estimate since the peak is lower (else a new peak would have replaced
            # it), and the latest `patience` of them clearly so
            self.fell_at = self._epochs[peak]
            self.flagged_at = self._epochs[-1]

    @property
    def should_stop(self) -> bool:
        """True once a fall has been flagged."""
        return self.flagged_at is not None

    @property
    def history(self) -> xr.DataArray:
        """The recorded estimates, dim ``epoch``."""
        return xr.DataArray(
            np.asarray(self._values, dtype=np.float64),
            dims="epoch",
            coords={"epoch": np.asarray(self._epochs, dtype=np.int64)},
            name="auc_estimate",
            attrs={k: v for k, v in self._options.items() if isinstance(v, int | float | str)},
        )
