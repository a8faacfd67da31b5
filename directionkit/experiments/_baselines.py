"""The generalization measures of the field beside the paper's, one number per model: the
weight-based and data-dependent baselines of Jiang et al. (2020), "Fantastic
Generalization Measures and Where to Find Them" (ICLR), that cost one pass over the data
or a few, and WeightWatcher's power-law exponent (Martin & Mahoney, 2021) where the
``weightwatcher`` package is installed.

Every measure is a scalar variable whose attrs give its definition and source and whether
a larger value predicts a *smaller* generalization gap (``higher_is_better``).  The
weight-based measures and the flatness need the model as a :class:`LinearChain` (a plain
ReLU MLP, from a torch or an ONNX model alike); where the adapter cannot describe one
they are left out and the notes say why, never estimated from a different model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from directionkit.adapter import LinearChain, ModelAdapter, SupportsLinearChain
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import check_labels_fit

__all__ = ["BASELINES", "FLATNESS_DROP", "FLATNESS_EPSILON", "Baseline", "baseline_measures"]


@dataclass(frozen=True)
class Baseline:
    """One baseline measure: its definition (with its source) and its orientation."""

    definition: str
    higher_is_better: bool


#: The baselines :func:`baseline_measures` computes, by variable name.
BASELINES: dict[str, Baseline] = {
    "parameter_count": Baseline(
        "number of weights and biases (Jiang et al. 2020, 'params')", False
    ),
    "log_frobenius_product": Baseline(
        "sum over layers of log ||W_i||_F^2 (Jiang et al. 2020, 'log.prod.of.fro')", False
    ),
    "log_spectral_product": Baseline(
        "sum over layers of log ||W_i||_2^2, the largest singular value squared (Jiang et "
        "al. 2020, 'log.prod.of.spec')", False,
    ),
    "log_path_norm": Baseline(
        "log of sum_j f_{w^2}(1)_j: the network with every weight and bias squared, run "
        "on an input of ones, its outputs summed (Jiang et al. 2020, 'path.norm'; "
        "Neyshabur et al. 2015)", False,
    ),
    "output_margin": Baseline(
        "10th percentile over the analysed examples of the output margin f(x)_y - "
        "max_{j != y} f(x)_j on the class scores the adapter reads (Jiang et al. 2020 "
        "score 1/gamma^2 of this gamma)", True,
    ),
    "spectral_margin": Baseline(
        "output_margin divided by the product of the layers' spectral norms prod_i "
        "||W_i||_2 (the spectrally normalised margin of Bartlett, Foster & Telgarsky "
        "2017, without its (sum_i ||W_i||_{2,1}^{2/3} / ||W_i||_2^{2/3})^{3/2} factor)", True,
    ),
    "pacbayes_mag_flatness": Baseline(
        "1 / sigma'^2, sigma' the largest sigma such that Gaussian weight noise of sd "
        "sqrt(sigma^2 w^2 + eps^2) per weight and bias (eps = 1e-3) lowers the accuracy "
        "on the analysed examples by at most 0.1 on average over the draws; sigma' by "
        "bisection, the same draws at every sigma (Jiang et al. 2020, "
        "'pacbayes.mag.flatness')", False,
    ),
    "weightwatcher_alpha": Baseline(
        "the mean over layers of the power-law exponent alpha fitted to the tail of each "
        "weight matrix's eigenvalue spectrum, by the weightwatcher package's "
        "WeightWatcher.analyze() with its defaults (Martin & Mahoney 2021, Nature "
        "Communications 12:4122)", False,
    ),
}

#: The flatness' largest accuracy drop, and the noise floor added to every weight.
FLATNESS_DROP = 0.1
FLATNESS_EPSILON = 1e-3
#: Draws of weight noise averaged at every sigma of the flatness search.
FLATNESS_DRAWS = 5
#: The flatness reads at most this many of the analysed examples (the first ones).
FLATNESS_EXAMPLES = 10_000
#: Bisection steps of the flatness search (after bracketing): sigma' to 2**-30 of its bracket.
_BISECTION_STEPS = 30
_MAX_DOUBLINGS = 60


def _chain_logits(weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray
                  ) -> np.ndarray:  # fmt: skip
    h = x
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w + b
        if i < last:
            h = np.maximum(h, 0.0)
    return h


def _margins(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``f(x)_y - max_{j != y} f(x)_j`` per example."""
    rows = np.arange(y.size)
    true = logits[rows, y]
    others = logits.copy()
    others[rows, y] = -np.inf
    return np.asarray(true - others.max(axis=1), np.float64)


@dataclass
class _Read:
    """What one pass over the data gives the measures."""

    margins: np.ndarray  # every example's output margin
    x: np.ndarray  # the first FLATNESS_EXAMPLES examples, flattened
    y: np.ndarray
    reference: np.ndarray  # the model's logits of the first examples of x


def _read(adapter: ModelAdapter, batches: Batches, limit: int) -> _Read:
    """One pass: each example's margin, and the first ``limit`` examples with their labels
    (the same examples as the model's logits they are checked against: a shuffling loader
    gives other batches on another pass)."""
    margins, xs, ys, reference, n = [], [], [], None, 0
    for x, y in batches:
        logits = np.asarray(adapter.run(x).logits[0], np.float64)
        labels = np.asarray(y)
        check_labels_fit(labels, logits.shape[-1], batches.func)
        margins.append(_margins(logits, labels))
        if n < limit:
            x_np = np.asarray(x)
            xs.append(x_np.reshape(x_np.shape[0], -1))
            ys.append(labels)
            n += labels.size
            if reference is None:
                reference = logits[:64]
    assert reference is not None
    return _Read(np.concatenate(margins), np.concatenate(xs)[:limit],
                 np.concatenate(ys)[:limit], reference)  # fmt: skip


def _flatness(chain: LinearChain, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """``1 / sigma'^2`` (see :data:`BASELINES`); inf when even ``eps`` noise drops more, 0
    when no noise does.

    The drop need not grow with sigma: sigma' is where it crosses the allowed drop between
    the doubling bracket's ends (the largest such sigma when it grows steadily)."""
    weights = [np.asarray(w, np.float64) for w in chain.weights]
    biases = [np.asarray(b, np.float64) for b in chain.biases]
    x = x.astype(np.float64)
    clean = float((_chain_logits(weights, biases, x).argmax(axis=1) == y).mean())
    rng = np.random.default_rng(seed)
    draws = [
        [rng.standard_normal(p.shape) for p in (*weights, *biases)] for _ in range(FLATNESS_DRAWS)
    ]
    params = [*weights, *biases]

    def drop(sigma: float) -> float:
        accuracies = []
        for z in draws:
            noisy = [p + np.sqrt((sigma * p) ** 2 + FLATNESS_EPSILON**2) * e
                     for p, e in zip(params, z, strict=True)]  # fmt: skip
            logits = _chain_logits(noisy[: len(weights)], noisy[len(weights):], x)
            accuracies.append(float((logits.argmax(axis=1) == y).mean()))
        return clean - float(np.mean(accuracies))

    if drop(0.0) > FLATNESS_DROP:
        return float("inf")
    low, high = 0.0, 1e-3
    for _ in range(_MAX_DOUBLINGS):
        if drop(high) > FLATNESS_DROP:
            break
        low, high = high, high * 2
    else:
        return 0.0  # no noise costs 0.1: the accuracy is within 0.1 of a random network's
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if drop(middle) > FLATNESS_DROP:
            high = middle
        else:
            low = middle
    return 1.0 / low**2 if low > 0 else float("inf")


def _flatness_value(chain: LinearChain, x: np.ndarray, y: np.ndarray, seed: int,
                    notes: list[str]) -> dict[str, float]:  # fmt: skip
    """The flatness, or nothing and a note where it has no finite value."""
    value = _flatness(chain, x, y, seed)
    if value == 0.0:
        notes.append(f"pacbayes_mag_flatness left out: no weight noise lowers the accuracy by "
                     f"{FLATNESS_DROP} (it is within that of a random network's)")  # fmt: skip
        return {}
    if math.isinf(value):
        notes.append(f"pacbayes_mag_flatness left out: noise of sd {FLATNESS_EPSILON} alone "
                     f"lowers the accuracy by more than {FLATNESS_DROP}")  # fmt: skip
        return {}
    return {"pacbayes_mag_flatness": value}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """weightwatcher prints to stdout and logs at INFO: kept out of the user's output."""
    logger = logging.getLogger("weightwatcher")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
            io.StringIO()
        ), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its pandas deprecations, not the user's concern
            yield
    finally:
        logger.setLevel(level)


def _weightwatcher_alpha(adapter: ModelAdapter, notes: list[str]) -> float | None:
    module = getattr(adapter, "module", None)  # a torch module, or an ONNX ModelProto
    if module is None or not hasattr(module, "named_parameters"):
        module = getattr(adapter, "onnx_model", None)
    if module is None:
        notes.append(f"weightwatcher_alpha needs a torch module or an ONNX model "
                     f"({type(adapter).__name__} has neither)")  # fmt: skip
        return None
    with _quiet():  # weightwatcher prints as it is imported
        try:
            import weightwatcher
        except ImportError:
            weightwatcher = None
    if weightwatcher is None:
        notes.append("weightwatcher_alpha needs the weightwatcher package "
                     "(pip install 'directionkit[weightwatcher]')")  # fmt: skip
        return None
    with _quiet():
        watcher = weightwatcher.WeightWatcher(model=module)
        details = watcher.analyze()
    alphas = np.asarray(details["alpha"], np.float64) if "alpha" in details else np.array([])
    alphas = alphas[np.isfinite(alphas) & (alphas > 0)]  # a failed fit is -1
    if alphas.size == 0:
        notes.append("weightwatcher_alpha left out: weightwatcher fitted no layer")
        return None
    return float(alphas.mean())


def _chain_measures(
    adapter: ModelAdapter, read: _Read, margin: float, seed: int, notes: list[str]
) -> dict[str, float]:
    chain = adapter.linear_chain() if isinstance(adapter, SupportsLinearChain) else None
    if chain is None:
        notes.append(f"the weight-based measures and the flatness need a plain ReLU MLP "
                     f"(linear_chain); {type(adapter).__name__} does not describe one")  # fmt: skip
        return {}
    weights = [np.asarray(w, np.float64) for w in chain.weights]
    biases = [np.asarray(b, np.float64) for b in chain.biases]
    # the chain must be the model the adapter runs: its logits on the first examples
    x, y, reference = read.x, read.y, read.reference
    mine = _chain_logits(weights, biases, x[: len(reference)].astype(np.float64))
    scale = max(1.0, float(np.abs(reference).max()))
    if not np.allclose(mine, reference, atol=1e-3 * scale, rtol=1e-3):
        notes.append("the weight-based measures left out: the model's linear chain does not "
                     "reproduce its outputs")  # fmt: skip
        return {}
    spectral = [float(np.linalg.norm(w, 2)) for w in weights]
    squared_out = _chain_logits([w**2 for w in weights], [b**2 for b in biases],
                                np.ones((1, weights[0].shape[0])))  # fmt: skip
    return {
        "parameter_count": float(sum(w.size + b.size for w, b in zip(weights, biases,
                                                                     strict=True))),
        "log_frobenius_product": float(sum(np.log(np.sum(w**2)) for w in weights)),
        "log_spectral_product": float(sum(2 * np.log(s) for s in spectral)),
        "log_path_norm": float(np.log(squared_out.sum())),
        "spectral_margin": margin / float(np.exp(np.sum(np.log(spectral)))),
        **_flatness_value(chain, x, y, seed, notes),
    }  # fmt: skip


def label_baselines(dataset: xr.Dataset) -> xr.Dataset:
    """``dataset`` with each baseline it holds labelled by its definition and orientation
    (attrs ``definition``, ``higher_is_better``), in place; other variables untouched."""
    for name, baseline in BASELINES.items():
        if name in dataset:
            dataset[name].attrs = {"definition": baseline.definition,
                                   "higher_is_better": int(baseline.higher_is_better)}  # fmt: skip
    return dataset


def baseline_measures(
    adapter: ModelAdapter,
    data: Any,
    *,
    batch_size: int | None = None,
    seed: int = 0,
    weightwatcher: bool = True,
) -> xr.Dataset:
    """The baseline generalization measures of one model (:data:`BASELINES`).

    Parameters
    ----------
    adapter : ModelAdapter
        The model.  The weight-based measures and the flatness need it to describe itself
        as a :class:`~directionkit.adapter.LinearChain` (a plain ReLU MLP, torch or ONNX).
    data : tuple (X, y) or iterable of (x, y) batches
        The examples of the margin and the flatness (the training data, as in Jiang et
        al.); the flatness reads at most the first :data:`FLATNESS_EXAMPLES`.
    batch_size : int, optional
        Batch size for ``(X, y)`` arrays.
    seed : int
        Seed of the flatness' weight noise.
    weightwatcher : bool
        Compute ``weightwatcher_alpha`` when the package is installed and the adapter
        holds a torch module or an ONNX model.

    Returns
    -------
    xarray.Dataset
        One scalar variable per measure the model allows, each with attrs
        ``definition`` and ``higher_is_better``; attrs ``baselines_note`` says which were
        left out and why.

    Examples
    --------
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> adapter = NumpyMLPAdapter.random(n_in=3, hidden=(4, 2), n_classes=2, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(50, 3))
    >>> y = adapter.predict(X)  # labels the model gets right: every margin is positive
    >>> measures = baseline_measures(adapter, (X, y), weightwatcher=False)
    >>> int(measures["parameter_count"]), bool(measures["output_margin"] > 0)
    (32, True)
    """
    batches = Batches(data, batch_size, "baseline_measures")
    notes: list[str] = []
    read = _read(adapter, batches, FLATNESS_EXAMPLES)
    margin = float(np.percentile(read.margins, 10))
    values: dict[str, float] = {"output_margin": margin}
    values |= _chain_measures(adapter, read, margin, seed, notes)
    if weightwatcher:
        alpha = _weightwatcher_alpha(adapter, notes)
        if alpha is not None:
            values["weightwatcher_alpha"] = alpha
    dataset = label_baselines(xr.Dataset({name: ((), v) for name, v in values.items()}))
    if notes:
        dataset.attrs["baselines_note"] = "; ".join(notes)
    return dataset
