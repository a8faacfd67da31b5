"""How well a measure ranks a population of models by their generalization gap: Kendall's
tau, the granulated Psi of Jiang et al. (2020) and the conditional mutual information of
the NeurIPS 2020 PGDL competition (groundwork for issue 26)."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.errors import InvalidDataError


def _vector(values: Any, name: str, func: str, n: int | None = None) -> np.ndarray:
    array = np.asarray(getattr(values, "values", values), dtype=np.float64)
    if array.ndim != 1 or (n is not None and array.size != n):
        expected = "a 1-d array (one value per model)" + ("" if n is None else f" of {n}")
        raise parameter_error(name, func, expected, np.shape(array))
    if not np.all(np.isfinite(array)):
        raise InvalidDataError(f"The {name!r} given to {func} holds NaN or Inf.")
    return array


def _settings(hyperparameters: Mapping[str, Any], n: int, func: str) -> dict[str, np.ndarray]:
    if not isinstance(hyperparameters, Mapping) or not hyperparameters:
        raise parameter_error(
            "hyperparameters", func, "a non-empty mapping of names to one value per model",
            hyperparameters,
        )  # fmt: skip
    settings = {}
    for name, values in hyperparameters.items():
        array = np.asarray(getattr(values, "values", values))
        if array.shape != (n,):
            raise parameter_error(
                "hyperparameters", func, f"one value per model ({n}) for {name!r}", array.shape
            )
        settings[str(name)] = np.unique(array.astype(str), return_inverse=True)[1]
    return settings


def kendall_tau(measure: Any, gap: Any) -> float:
    """Kendall's rank correlation of ``measure`` and ``gap`` over models (tau-a).

    ``tau = sum_{i<j} sign(m_i - m_j) sign(g_i - g_j) / (n (n - 1) / 2)``, the form of
    Jiang et al., "Fantastic Generalization Measures and Where to Find Them" (ICLR 2020),
    Eq. 2: ties count 0 and are not corrected for (without ties, scipy's tau-b).

    Examples
    --------
    >>> kendall_tau([1.0, 2.0, 3.0], [0.1, 0.3, 0.2])
    0.3333333333333333
    """
    m = _vector(measure, "measure", "kendall_tau")
    g = _vector(gap, "gap", "kendall_tau", m.size)
    if m.size < 2:
        raise InvalidDataError("kendall_tau needs at least 2 models.")
    i, j = np.triu_indices(m.size, k=1)
    return float(np.mean(np.sign(m[i] - m[j]) * np.sign(g[i] - g[j])))


def granulated_psi(measure: Any, gap: Any, hyperparameters: Mapping[str, Any]) -> float:
    """Jiang et al.'s granulated Kendall coefficient Psi (ICLR 2020, Eq. 4).

    For each hyperparameter ``h``: the models are grouped by the values of every other
    hyperparameter, so that within a group only ``h`` varies; ``psi_h`` is the mean of
    :func:`kendall_tau` over the groups of two or more models; ``Psi`` is the mean of
    ``psi_h`` over the hyperparameters that take two or more values and have such a group
    (a hyperparameter with one value would give the tau of replicates).

    Examples
    --------
    >>> gap = [0.1, 0.2, 0.3, 0.4]
    >>> granulated_psi(gap, gap, {"lr": [1, 2, 1, 2], "depth": [1, 1, 2, 2]})
    1.0
    """
    func = "granulated_psi"
    m = _vector(measure, "measure", func)
    g = _vector(gap, "gap", func, m.size)
    settings = _settings(hyperparameters, m.size, func)
    i, j = np.triu_indices(m.size, k=1)
    concordance = np.sign(m[i] - m[j]) * np.sign(g[i] - g[j])
    psis = []
    for name in settings:
        if settings[name].max() == 0:  # one value: no group varies it, pairs are replicates
            continue
        others = [settings[o] for o in settings if o != name]
        keys = np.stack(others, axis=1) if others else np.zeros((m.size, 1), int)
        group = np.unique(keys, axis=0, return_inverse=True)[1].ravel()
        same = group[i] == group[j]  # the pairs within one group (groups of 2 or more)
        if not same.any():
            continue
        counts = np.bincount(group[i][same], minlength=int(group.max()) + 1)
        sums = np.bincount(group[i][same], weights=concordance[same], minlength=counts.size)
        taus = sums[counts > 0] / counts[counts > 0]  # kendall_tau within each group
        psis.append(float(np.mean(taus)))
    if not psis:
        raise InvalidDataError(
            "granulated_psi found no two models that differ in one hyperparameter only."
        )
    return float(np.mean(psis))


def _mutual_information_ratio(v_gap: np.ndarray, v_measure: np.ndarray, group: np.ndarray
                              ) -> float:  # fmt: skip
    """The mean over groups of MI(V_gap; V_measure) over the mean entropy of V_gap (bits)."""
    _, label = np.unique(group, return_inverse=True)
    n_groups = int(label.max()) + 1
    # joint counts per group, (group, V_gap, V_measure), in one pass
    counts = np.bincount(label * 4 + v_gap * 2 + v_measure, minlength=n_groups * 4)
    joint = counts.reshape(n_groups, 2, 2).astype(np.float64)
    joint /= joint.sum(axis=(1, 2), keepdims=True)
    rows, columns = joint.sum(axis=2), joint.sum(axis=1)
    outer = rows[:, :, None] * columns[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / outer), 0.0)
        entropy = -np.where(rows > 0, rows * np.log2(rows), 0.0).sum(axis=1)
    information = terms.sum(axis=(1, 2))
    mean_entropy = float(entropy.mean())
    return float(information.mean()) / mean_entropy if mean_entropy > 0 else float("nan")


def pgdl_score(
    measure: Any,
    gap: Any,
    hyperparameters: Mapping[str, Any] | None = None,
    *,
    conditioning: int = 2,
    self_pairs: bool = True,
) -> float:
    """The PGDL competition's score of a measure: conditional mutual information, x 100.

    The NeurIPS 2020 competition *Predicting Generalization in Deep Learning* (Jiang et
    al., 2020; its scoring program's ``conditional_mutual_information``) compares, over
    every ordered pair of models ``(i, j)`` (``i == j`` included, as the program does;
    ``self_pairs=False`` leaves those out),
    ``V_gap = [gap_i > gap_j]`` with ``V_measure = [measure_i > measure_j]``.  For a set
    ``S`` of hyperparameters the pairs are grouped by the values of ``S`` of both models
    (``(h(i), h(j))`` for each ``h`` in ``S``); the score of ``S`` is the mean over groups
    of ``MI(V_gap; V_measure)`` divided by the mean over groups of ``H(V_gap)`` (bits);
    the measure's score is the minimum over every ``S`` of ``conditioning`` distinct
    hyperparameters, times 100 (PGDL's 2, the competition's; 1 and 0, unconditioned, are
    the variants of Jiang et al. 2020).  PGDL averages over every combination of values,
    all present in a full grid; on an incomplete grid the combinations no pair has are
    left out (the competition's program would give NaN).  100 for a measure that orders
    every pair as the gap does, about 0 for one unrelated to it.  A measure must grow with
    the gap (negate one that falls, such as the ablation AUC): since every model is also
    paired with itself (both signs 0), a measure ordering every pair against the gap does
    not score 100.

    Examples
    --------
    A 3 x 3 grid, 8 seeds each, whose gap grows with both hyperparameters: the gap
    itself scores 100, a random measure about 8 (the plug-in estimate is biased upward on
    small groups: read a score against a random measure's on the same population), the
    negated gap 76 (100 without the self pairs):

    >>> rng = np.random.default_rng(0)
    >>> lr, depth, seed = np.meshgrid(range(3), range(3), range(8), indexing="ij")
    >>> grid = {"lr": lr.ravel(), "depth": depth.ravel()}
    >>> gap = 0.1 * grid["lr"] + 0.05 * grid["depth"] + 0.02 * rng.normal(size=72)
    >>> pgdl_score(gap, gap, grid), round(pgdl_score(rng.normal(size=72), gap, grid), 1)
    (100.0, 8.2)
    >>> round(pgdl_score(-gap, gap, grid), 1), pgdl_score(-gap, gap, grid, self_pairs=False)
    (76.1, 100.0)
    """
    func = "pgdl_score"
    m = _vector(measure, "measure", func)
    g = _vector(gap, "gap", func, m.size)
    check_choice(conditioning, "conditioning", func, (0, 1, 2))
    settings = _settings(hyperparameters or {"": np.zeros(m.size)}, m.size, func)
    if conditioning > len(settings) or (conditioning > 0 and not hyperparameters):
        raise parameter_error(
            "conditioning", func, f"at most the number of hyperparameters ({len(settings)})",
            conditioning,
        )  # fmt: skip
    i, j = (index.ravel() for index in np.meshgrid(np.arange(m.size), np.arange(m.size),
                                                   indexing="ij"))  # fmt: skip
    if not self_pairs:
        i, j = i[i != j], j[i != j]
    v_gap = (g[i] > g[j]).astype(int)
    v_measure = (m[i] > m[j]).astype(int)
    scores = []
    for subset in itertools.combinations(sorted(settings), conditioning):
        group = np.zeros(i.size, dtype=np.int64)
        for name in subset:
            levels = int(settings[name].max()) + 1
            group = (group * levels + settings[name][i]) * levels + settings[name][j]
        scores.append(_mutual_information_ratio(v_gap, v_measure, group))
    return 100.0 * float(np.nanmin(scores)) if np.any(np.isfinite(scores)) else float("nan")


#: The scores :func:`ranking_scores` gives each measure, in its order.
RANKING_SCORES = ("pgdl_score", "kendall_tau", "granulated_psi")


def _scores(m: np.ndarray, g: np.ndarray, settings: Mapping[str, np.ndarray],
            conditioning: int) -> list[float]:  # fmt: skip
    try:
        psi = granulated_psi(m, g, settings)
    except InvalidDataError:  # no two models differ in one hyperparameter only
        psi = float("nan")
    return [pgdl_score(m, g, settings, conditioning=conditioning), kendall_tau(m, g), psi]


def ranking_scores(
    measures: Mapping[str, Any],
    gap: Any,
    hyperparameters: Mapping[str, Any],
    *,
    conditioning: int | None = None,
    resamples: int = 500,
    seed: int = 0,
) -> xr.Dataset:
    """Every measure's PGDL score, Kendall tau and Psi against ``gap``, with paired
    bootstrap intervals over models.

    Each resample draws the models with replacement, once for every measure (paired: the
    difference of two measures' scores has an interval too, from ``draws``).  A model
    drawn twice is paired with its copy, a pair that the gap and every measure call a tie:
    Kendall's tau shrinks toward 0 and the PGDL score grows (such pairs agree on every
    measure), so a percentile interval need not contain its estimate, most of all for a
    low PGDL score.  Compare measures by their paired differences over the same resamples
    rather than by one interval against another's estimate.

    Parameters
    ----------
    measures : mapping of str to array
        One value per model for each measure, oriented to grow with the gap.
    gap : array
        Each model's generalization gap.
    hyperparameters : mapping of str to array
        Each model's value of each hyperparameter; those with one value are left out.
    conditioning : {0, 1, 2}, optional
        The PGDL score's (default: 2, or the number of hyperparameters if fewer).
    resamples : int
        Bootstrap resamples (0: the scores alone, no interval).
    seed : int
        Seed of the resamples.

    Returns
    -------
    xarray.Dataset
        Dim ``measure``: ``pgdl_score``, ``kendall_tau``, ``granulated_psi`` and their
        2.5% / 97.5% percentiles ``<score>_low`` / ``<score>_high``; ``draws``
        ``(score, measure, resample)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lr, depth, seed = np.meshgrid(range(3), range(3), range(6), indexing="ij")
    >>> grid = {"lr": lr.ravel(), "depth": depth.ravel()}
    >>> gap = 0.1 * grid["lr"] + 0.05 * grid["depth"] + 0.02 * rng.normal(size=54)
    >>> noisy = gap + 0.05 * rng.normal(size=54)
    >>> scores = ranking_scores({"gap": gap, "noisy": noisy}, gap, grid, resamples=100)
    >>> float(scores["pgdl_score"].sel(measure="gap"))
    100.0
    >>> bool(scores["pgdl_score_low"].sel(measure="noisy") < 100)
    True
    """
    func = "ranking_scores"
    if not isinstance(measures, Mapping) or not measures:
        raise parameter_error("measures", func, "a non-empty mapping of names to values",
                              measures)  # fmt: skip
    g = _vector(gap, "gap", func)
    values = {str(k): _vector(v, f"measures[{k!r}]", func, g.size) for k, v in measures.items()}
    given = _settings(hyperparameters, g.size, func)
    settings = {k: v for k, v in given.items() if v.max() > 0}  # those that vary
    if not settings:
        raise InvalidDataError(f"{func}: no hyperparameter takes two or more values.")
    depth = min(2, len(settings)) if conditioning is None else conditioning
    resamples = check_int(resamples, "resamples", func, minimum=0)
    rng = np.random.default_rng(seed)
    draws = np.full((len(RANKING_SCORES), len(values), resamples), np.nan)
    for r in range(resamples):
        pick = rng.integers(0, g.size, g.size)
        picked = {k: v[pick] for k, v in settings.items()}
        for index, m in enumerate(values.values()):
            draws[:, index, r] = _scores(m[pick], g[pick], picked, depth)
    point = np.array([_scores(m, g, settings, depth) for m in values.values()]).T
    variables: dict[str, Any] = {}
    for s, score in enumerate(RANKING_SCORES):
        variables[score] = ("measure", point[s])
        with warnings.catch_warnings():  # a measure with no defined draw: NaN interval
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(draws[s], [2.5, 97.5], axis=1) if resamples else (
                np.full(len(values), np.nan), np.full(len(values), np.nan))  # fmt: skip
        variables[f"{score}_low"] = ("measure", low)
        variables[f"{score}_high"] = ("measure", high)
    variables["draws"] = (("score", "measure", "resample"), draws)
    return xr.Dataset(
        variables,
        coords={"measure": list(values), "score": list(RANKING_SCORES),
                "resample": np.arange(resamples)},
        attrs={"conditioning": depth, "resamples": resamples, "seed": seed,
               "n_models": int(g.size)},
    )
