"""Model selection from a sweep: rank models by a measure, and score the measure as a selector.

The paper (section 3.2) trains 96 CIFAR-10 hyperparameter settings and asks how well the
ablation AUC, measured on training data only, picks the model with the best test accuracy:
the Spearman correlation of AUC with test accuracy over all models, and over random
sub-selections of 48 settings how often the AUC-selected model is among the top 1, 5 and
10 by test accuracy, and the test-accuracy gap between it and the best model (mean ± sd).
:func:`selection_report` computes exactly these statistics for any measure in a sweep
store, so AUC can be compared side by side with weight norms, training loss or the
noise-curve area.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.errors import DirectionKitWarning, InvalidDataError
from directionkit.experiments import BASELINES
from directionkit.metrics import RANKING_SCORES, ranking_scores

__all__ = [
    "HIGHER_IS_BETTER",
    "NEAR_CHANCE_CHOICES",
    "measure_values",
    "near_chance_models",
    "select",
    "selection_report",
]

#: Whether a larger value of a measure predicts better generalisation (the selection
#: direction), where the paper says so: a measure not listed (e.g. ``weight_l1_mean``, on
#: which the paper makes no claim) is taken as "larger is better"; pass
#: ``higher_is_better`` to choose.
HIGHER_IS_BETTER: dict[str, bool] = {
    "ablation_auc": True,
    "ablation_auc_corrected": True,
    "noise_auc": True,
    "accuracy": True,
    "train_accuracy": True,
    "test_accuracy": True,
    "loss": False,
    "train_loss": False,
    "test_loss": False,
    "selectivity_mean": False,
    # the field's other measures (analyze's "baselines"), as their definitions orient them
    **{name: baseline.higher_is_better for name, baseline in BASELINES.items()},
}


def _dataset(result: Any) -> xr.Dataset:
    dataset = getattr(result, "dataset", result)
    if not isinstance(dataset, xr.Dataset) or "model" not in dataset.dims:
        raise parameter_error(
            "sweep_result", "select", "a SweepResult or an xarray.Dataset with a 'model' dim",
            type(result).__name__,
        )  # fmt: skip
    return dataset


def _candidates(dataset: xr.Dataset) -> list[str]:
    return sorted(
        str(name)
        for name, var in dataset.data_vars.items()
        if var.dims in (("model",), ("model", "scope"))
        and np.issubdtype(var.dtype, np.number)
        and not np.issubdtype(var.dtype, np.bool_)
        and name not in ("done", "finished_at", "seconds", "n_units", "peak_rss_mb",
                         "chance_accuracy")
    )  # fmt: skip


#: Config fields that vary between models but are not hyperparameters: the scores
#: against the gap never condition on them (seeds are what replicates differ in).
NOT_HYPERPARAMETERS = frozenset({"config_seed", "config_label_seed"})

#: Fewest models with a measure and the target that selection_report scores.
_MIN_MODELS = 4

#: What :func:`select` does with models whose clean accuracy is not clearly above chance.
NEAR_CHANCE_CHOICES = ("last", "leave-out", "keep")


def near_chance_models(result: Any) -> list[str]:
    """The finished models of a sweep flagged ``near_chance`` (none for an older store).

    A model whose clean accuracy is not clearly above chance stays at chance when
    ablated, so its ablation AUC is near 1 whatever it learned
    (:func:`directionkit.metrics.near_chance`): a selector must not prefer it.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"near_chance": ("model", [False, True])}, coords={"model": ["a", "b"]})
    >>> near_chance_models(ds)
    ['b']
    """
    dataset = _dataset(result)
    if "near_chance" not in dataset:
        return []
    flagged = dataset["near_chance"].astype(bool)
    if "done" in dataset:
        flagged = flagged & dataset["done"].astype(bool)
    return [str(m) for m in dataset["model"].values[np.asarray(flagged.values)]]


def _warn_near_chance(models: Sequence[str], what: str) -> None:
    shown = ", ".join(repr(m) for m in models[:10]) + (" ..." if len(models) > 10 else "")
    warnings.warn(
        f"directionkit: {len(models)} model(s) are not clearly above chance accuracy "
        f"({shown}): their ablation AUC says little (a model at chance stays at chance when "
        f"ablated); {what}.",
        DirectionKitWarning,
        stacklevel=3,
    )


def generalization_gap(dataset: xr.Dataset) -> np.ndarray:
    """Each model's generalization gap: ``train_accuracy - test_accuracy``."""
    return (dataset["train_accuracy"] - dataset["test_accuracy"]).values.astype(np.float64)


def oriented(values: np.ndarray, measure: str,
             higher_is_better: Mapping[str, bool] = HIGHER_IS_BETTER) -> np.ndarray:  # fmt: skip
    """A measure's values turned to grow with the gap: a better value predicts a smaller
    gap (negated where higher is better; a measure not listed is taken as higher better)."""
    return -values if higher_is_better.get(measure, True) else values


def finished(dataset: xr.Dataset) -> xr.Dataset:
    """The models of ``dataset`` that are done (every model when it has no ``done``)."""
    if "done" not in dataset:
        return dataset
    return dataset.sel(model=np.asarray(dataset["done"].values, dtype=bool))


def measure_values(result: Any, by: str, *, scope: str = "all") -> xr.DataArray:
    """One value per model of the measure ``by`` (a variable of the sweep store).

    Parameters
    ----------
    result : SweepResult or xarray.Dataset
        With a ``model`` dim (and ``done``, when present, to keep finished models only).
    by : str
        A numeric variable with dims ``(model,)`` or ``(model, scope)``.
    scope : str, default "all"
        The scope of a ``(model, scope)`` variable such as ``ablation_auc``.

    Returns
    -------
    xarray.DataArray
        Dim ``model``: the finished models.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"ablation_auc": (("model", "scope"), [[0.5], [0.7]])},
    ...                 coords={"model": ["a", "b"], "scope": ["all"]})
    >>> measure_values(ds, "ablation_auc").values.tolist()
    [0.5, 0.7]
    """
    dataset = _dataset(result)
    choices = _candidates(dataset)
    if by not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise parameter_error("by", "select", f"a measure of the store, one of {{{listed}}}", by)
    values = dataset[by]
    if "scope" in values.dims:
        scopes = [str(s) for s in dataset["scope"].values]
        if scope not in scopes:
            raise parameter_error("scope", "select", f"one of the store's scopes {scopes}", scope)
        values = values.sel(scope=scope, drop=True)
    if "done" in dataset:
        values = values.where(dataset["done"], drop=True)
    return values.astype(np.float64)


def select(
    sweep_result: Any,
    by: str = "ablation_auc",
    k: int | None = None,
    *,
    scope: str = "all",
    higher_is_better: bool | None = None,
    near_chance: str = "last",
) -> xr.DataArray:
    """The models ranked by a measure, best first; models near chance ranked last.

    Parameters
    ----------
    sweep_result : SweepResult or xarray.Dataset
        The output of :func:`directionkit.sweep` (or :func:`directionkit.open_sweep`).
    by : str, default "ablation_auc"
        The measure (see :func:`measure_values`).
    k : int, optional
        Keep the best ``k`` (default: every finished model with a finite value).
    scope : str, default "all"
        The ablation scope, for ``(model, scope)`` measures.
    higher_is_better : bool, optional
        The ranking direction; default from :data:`HIGHER_IS_BETTER` (larger is better
        for a measure not listed there).
    near_chance : {"last", "leave-out", "keep"}, default "last"
        Models flagged ``near_chance`` (clean accuracy not clearly above chance: their
        ablation AUC is near 1 whatever they learned) are ranked after every other model
        (``"last"``, with a warning naming them), left out (``"leave-out"``), or ranked
        by their value like the others (``"keep"``).

    Returns
    -------
    xarray.DataArray
        The measure along ``model``, sorted best first; models whose value is NaN (not
        finished, or the measure does not apply to them) are left out.  Coordinate
        ``near_chance`` (bool, along ``model``) says which models are flagged.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"ablation_auc": (("model", "scope"), [[0.5], [0.7], [0.6]])},
    ...                 coords={"model": ["a", "b", "c"], "scope": ["all"]})
    >>> select(ds, k=2)["model"].values.tolist()
    ['b', 'c']
    >>> select(ds, by="ablation_auc", higher_is_better=False)["model"].values.tolist()
    ['a', 'c', 'b']
    >>> ds["near_chance"] = ("model", [False, True, False])  # 'b' learned nothing
    >>> select(ds, near_chance="leave-out")["model"].values.tolist()
    ['c', 'a']
    """
    check_choice(near_chance, "near_chance", "select", NEAR_CHANCE_CHOICES)
    values = measure_values(sweep_result, by, scope=scope)
    values = values.where(np.isfinite(values), drop=True)
    flagged_models = set(near_chance_models(sweep_result))
    flagged = np.array([str(m) in flagged_models for m in values["model"].values], dtype=bool)
    values = values.assign_coords(near_chance=("model", flagged))
    if near_chance == "leave-out":
        values = values.isel(model=np.flatnonzero(~flagged))
        flagged = flagged[~flagged]
    higher = HIGHER_IS_BETTER.get(by, True) if higher_is_better is None else higher_is_better
    # a stable sort, so ties keep the sweep's order; flagged models after the others
    key = -values.values if higher else values.values
    order = np.lexsort((key, flagged)) if near_chance == "last" else np.argsort(key, kind="stable")
    if near_chance == "last" and flagged.any():
        _warn_near_chance(
            [str(m) for m in values["model"].values[flagged]], "select ranks them last"
        )
    ranked = values.isel(model=order)
    if k is not None:
        ranked = ranked.isel(model=slice(0, check_int(k, "k", "select", minimum=1)))
    return ranked.rename(by)


def selection_report(
    sweep_result: Any,
    measures: Sequence[str] | None = None,
    *,
    target: str = "test_accuracy",
    subset_size: int | None = None,
    n_subsets: int = 1000,
    top: Sequence[int] = (1, 5, 10),
    scope: str = "all",
    higher_is_better: Mapping[str, bool] | None = None,
    seed: int = 0,
    near_chance: str = "leave-out",
    resamples: int = 0,
) -> xr.Dataset:
    """The paper's hyperparameter-selection statistics for each measure of a sweep.

    For each measure: the Spearman correlation with ``target`` over every model that has
    both; then over ``n_subsets`` random sub-selections of ``subset_size`` models
    (without replacement), the model the measure selects (its best value) is ranked by
    ``target`` within the sub-selection (rank 1 = the best; ties share the better rank),
    giving the fraction of sub-selections in which it is in the top ``k`` for each ``k``
    of ``top``, and the ``target`` gap between the sub-selection's best model and it.

    Parameters
    ----------
    sweep_result : SweepResult or xarray.Dataset
    measures : sequence of str, optional
        Default: every numeric ``(model,)`` / ``(model, scope)`` variable that varies
        across models and that at least 4 models have, except ``target``, the other
        ``test_*`` ones, the hyperparameters (``config_*``) and the bookkeeping ones
        (``done``, ``seconds``, ...).
    target : str, default "test_accuracy"
        What a good selection maximises.
    subset_size : int, optional
        Default 48 (the paper's), or half the models when there are fewer than 96.
    n_subsets : int, default 1000
    top : sequence of int, default (1, 5, 10)
    scope : str, default "all"
    higher_is_better : mapping of str to bool, optional
        Selection direction per measure; default :data:`HIGHER_IS_BETTER`.
    seed : int, default 0
        Seed of the sub-selections.
    near_chance : {"leave-out", "keep"}, default "leave-out"
        Models flagged ``near_chance`` (clean accuracy not clearly above chance, so their
        ablation AUC is near 1 whatever they learned) are left out of every measure's
        statistics, with a warning naming them; ``"keep"`` scores them like the others.
    resamples : int, default 0
        Bootstrap resamples over models of the generalization-gap scores below: with
        ``resamples > 0``, each score has its 95% interval ``<score>_low`` /
        ``<score>_high`` (see :func:`directionkit.metrics.ranking_scores`).

    Returns
    -------
    xarray.Dataset
        Dim ``measure`` (and ``top``): ``spearman``, ``spearman_pvalue``, ``n_models``,
        ``subset_size``, ``top_hit_rate`` ``(measure, top)``, ``gap_mean``, ``gap_sd``
        (sample sd over the sub-selections); attrs ``target``, ``n_subsets``, ``seed``,
        ``near_chance_left_out`` (the models left out).  When the store holds
        ``train_accuracy`` and ``test_accuracy`` and hyperparameters (``config_*`` that
        vary), also how well each measure ranks the generalization gap (train minus test
        accuracy), the measure oriented so that a better value predicts a smaller gap:
        ``kendall_tau``, ``granulated_psi`` and ``pgdl_score`` (see
        :func:`directionkit.metrics.pgdl_score`; conditioned on two hyperparameters, or
        on the one there is), with attrs ``generalization_gap`` and ``hyperparameters``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> acc = rng.uniform(0.5, 0.9, 40)
    >>> ds = xr.Dataset({"test_accuracy": ("model", acc),
    ...                  "ablation_auc": (("model", "scope"), (acc + rng.normal(0, .01, 40))[:, None]),
    ...                  "train_loss": ("model", rng.uniform(size=40))},
    ...                 coords={"model": np.arange(40), "scope": ["all"]})
    >>> report = selection_report(ds, n_subsets=200)
    >>> report["measure"].values.tolist(), report["subset_size"].values.tolist()
    (['ablation_auc', 'train_loss'], [20, 20])
    >>> bool(report["spearman"].sel(measure="ablation_auc") > 0.9)
    True
    """  # noqa: E501
    func = "selection_report"
    dataset = _dataset(sweep_result)
    check_choice(near_chance, "near_chance", func, ("leave-out", "keep"))
    left_out = near_chance_models(dataset) if near_chance == "leave-out" else []
    if left_out:
        dataset = dataset.sel(model=~dataset["model"].isin(left_out))
        _warn_near_chance(left_out, "selection_report leaves them out")
    goal = measure_values(dataset, target, scope=scope)
    if measures is None:  # test-set measures would select with the answer in hand
        present = {
            m: measure_values(dataset, m, scope=scope).dropna("model").values
            for m in _candidates(dataset)
            if m != target and not m.startswith(("test_", "config_"))
        }
        # a measure most models lack (the corrected AUC of models at chance) is left out
        chosen: Sequence[str] = [
            m for m, v in present.items() if np.unique(v).size > 1 and v.size >= _MIN_MODELS
        ]
        if not chosen and goal.dropna("model").size < _MIN_MODELS:
            raise InvalidDataError(
                f"selection_report needs at least {_MIN_MODELS} finished models with "
                f"{target!r}; the store has {goal.dropna('model').size}"
                + (f" once the {len(left_out)} near chance are left out." if left_out else ".")
            )
    else:
        chosen = measures
    if isinstance(chosen, str) or not chosen:
        raise parameter_error("measures", func, "a non-empty sequence of measure names", chosen)
    n_subsets = check_int(n_subsets, "n_subsets", func, minimum=1)
    tops = [check_int(k, "top", func, minimum=1) for k in top]
    directions = dict(HIGHER_IS_BETTER) | dict(higher_is_better or {})
    rng = np.random.default_rng(check_int(seed, "seed", func, minimum=0))
    rows = [
        _selection_row(
            measure_values(dataset, measure, scope=scope), goal, measure, target,
            subset_size=subset_size, higher=directions.get(measure, True), tops=tops,
            n_subsets=n_subsets, rng=rng,
        )
        for measure in chosen
    ]  # fmt: skip
    resamples = check_int(resamples, "resamples", func, minimum=0)
    scores = _gap_scores(dataset, chosen, directions, scope, resamples, seed)
    return xr.Dataset(
        {
            **scores.pop("variables"),
            "spearman": ("measure", [r["spearman"] for r in rows]),
            "spearman_pvalue": ("measure", [r["spearman_pvalue"] for r in rows]),
            "n_models": ("measure", [r["n_models"] for r in rows]),
            "subset_size": ("measure", [r["subset_size"] for r in rows]),
            "top_hit_rate": (("measure", "top"), np.array([r["top_hit_rate"] for r in rows])),
            "gap_mean": ("measure", [r["gap_mean"] for r in rows]),
            "gap_sd": ("measure", [r["gap_sd"] for r in rows]),
        },
        coords={"measure": list(chosen), "top": tops},
        attrs={
            "target": target,
            "n_subsets": n_subsets,
            "seed": seed,
            "near_chance_left_out": left_out,
            **scores,
        },
    )


def _gap_scores(
    dataset: xr.Dataset, chosen: Sequence[str], directions: Mapping[str, bool], scope: str,
    resamples: int, seed: int,
) -> dict[str, Any]:
    """Kendall's tau, granulated Psi and the PGDL score of each measure against the
    generalization gap, where the store holds the gap and varying hyperparameters."""
    if "train_accuracy" not in dataset or "test_accuracy" not in dataset:
        return {"variables": {}}
    dataset = finished(dataset)  # the models measure_values reads
    gap = generalization_gap(dataset)
    names = [
        str(name) for name in dataset.data_vars
        if str(name).startswith("config_") and dataset[name].dims == ("model",)
        and str(name) not in NOT_HYPERPARAMETERS
        and np.unique(dataset[name].values.astype(str)).size > 1
    ]  # fmt: skip
    if not names:
        return {"variables": {}}
    columns: dict[str, list[float]] = {
        f"{score}{end}": [] for score in RANKING_SCORES for end in ("", "_low", "_high")
    }
    for measure in chosen:
        values = measure_values(dataset, measure, scope=scope).values.astype(np.float64)
        keep = np.isfinite(values) & np.isfinite(gap)
        if keep.sum() < 2:
            for column in columns.values():
                column.append(float("nan"))
            continue
        settings = {n.removeprefix("config_"): dataset[n].values[keep] for n in names}
        turned = oriented(values[keep], measure, directions)
        scores = ranking_scores({measure: turned}, gap[keep], settings,
                                resamples=resamples, seed=seed)  # fmt: skip
        for name, kept in columns.items():
            kept.append(float(scores[name].values[0]))
    return {
        "variables": {
            name: ("measure", values) for name, values in columns.items()
            if resamples or name in RANKING_SCORES
        },
        "generalization_gap": "train_accuracy - test_accuracy",
        "hyperparameters": [n.removeprefix("config_") for n in names],
    }


def _selection_row(
    values: xr.DataArray, goal: xr.DataArray, measure: str, target: str, *,
    subset_size: int | None, higher: bool, tops: list[int], n_subsets: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One measure's row of :func:`selection_report`: its Spearman correlation with the
    target, and how often choosing by it in random subsets finds a top model."""
    func = "selection_report"
    both = np.isfinite(values.values) & np.isfinite(goal.values)
    x = values.values[both]
    y = goal.values[both]
    n = int(x.size)
    if n < _MIN_MODELS:
        raise InvalidDataError(
            f"selection_report needs at least 4 finished models with both {measure!r} and "
            f"{target!r}; the store has {n}."
        )
    size = min(48, n // 2) if subset_size is None else subset_size
    size = check_int(size, "subset_size", func, minimum=2)
    if size > n:
        raise parameter_error("subset_size", func, f"at most the {n} models", size)
    sign = 1.0 if higher else -1.0
    from scipy.stats import spearmanr  # slow to import: only where it is used

    rho, pvalue = spearmanr(x, y)
    hits = np.zeros(len(tops))
    gaps = np.empty(n_subsets)
    for s in range(n_subsets):
        pick = rng.choice(n, size=size, replace=False)
        chosen_one = pick[np.argmax(sign * x[pick])]
        rank = 1 + int(np.sum(y[pick] > y[chosen_one]))
        hits += [rank <= k for k in tops]
        gaps[s] = y[pick].max() - y[chosen_one]
    return {
        "spearman": float(rho),
        "spearman_pvalue": float(pvalue),
        "n_models": n,
        "subset_size": size,
        "top_hit_rate": hits / n_subsets,
        "gap_mean": float(gaps.mean()),
        "gap_sd": float(gaps.std(ddof=1)) if n_subsets > 1 else 0.0,
    }
