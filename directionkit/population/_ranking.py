"""What a report shows of a sweep store: its measures ranked by how well they predict the
generalization gap, and each against the gap."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from directionkit.errors import DirectionKitWarning, InvalidDataError, InvalidParameterError
from directionkit.population._selection import (
    finished,
    generalization_gap,
    measure_values,
    near_chance_models,
    selection_report,
)

__all__ = ["describe_sweep"]

#: The paper's measures, drawn in red beside the others.
_PAPERS = ("ablation_auc", "ablation_auc_corrected")


def _interval(report: xr.Dataset, score: str, digits: int) -> str:
    value = float(report[score])
    low, high = float(report[f"{score}_low"]), float(report[f"{score}_high"])
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def describe_sweep(
    dataset: xr.Dataset, *, resamples: int = 200
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The rows and figures ``directionkit report SWEEP.zarr`` shows of a sweep's root.

    Every measure of :func:`selection_report` ranked by its PGDL score against the
    generalization gap (best first), each row giving the PGDL score, Kendall's tau and
    Psi with 95% bootstrap intervals over models (``resamples``); and one scatter per
    measure against the gap (:func:`directionkit.report.plots.measures_against_gap`).
    A store without train and test accuracy and varying hyperparameters gets a row saying
    so and no figure.  Models near chance are left out, as :func:`selection_report` does.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> lr = np.repeat([0, 1, 2], 8)
    >>> test = rng.uniform(0.6, 0.8, 24)
    >>> gap = 0.05 * lr + 0.02 * rng.normal(size=24)
    >>> ds = xr.Dataset({"train_accuracy": ("model", test + gap), "test_accuracy": ("model", test),
    ...                  "noise_auc": ("model", 1 - gap), "config_lr": ("model", lr)},
    ...                 coords={"model": np.arange(24)})
    >>> rows, figures = describe_sweep(ds, resamples=20)
    >>> rows[0][0], sorted(figures)
    ('#1 noise_auc', ['measures_vs_gap'])
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DirectionKitWarning)  # near chance: said below
        try:
            report = selection_report(dataset, n_subsets=100, resamples=resamples)
        except (InvalidDataError, InvalidParameterError) as err:
            return [("generalization measures", f"not scored: {err}")], {}
    if "pgdl_score" not in report:
        return [("generalization measures", "not scored: the store needs train_accuracy, "
                 "test_accuracy and hyperparameters (config_*) that vary")], {}  # fmt: skip
    order = report.sortby(-report["pgdl_score"].fillna(-np.inf))
    rows = [
        (f"#{rank} {measure}", f"PGDL score {_interval(row, 'pgdl_score', 2)}; Kendall tau "
         f"{_interval(row, 'kendall_tau', 3)}; Psi {_interval(row, 'granulated_psi', 3)}")
        for rank, (measure, row) in enumerate(
            ((str(m), order.sel(measure=m)) for m in order["measure"].values), start=1
        )
    ]  # fmt: skip
    left_out = near_chance_models(dataset)
    kept = finished(dataset.sel(model=~dataset["model"].isin(left_out)) if left_out else dataset)
    gap = generalization_gap(kept)
    names = [str(m) for m in order["measure"].values]
    from directionkit.report.plots import measures_against_gap

    figure = measures_against_gap(
        {name: measure_values(kept, name).values.astype(np.float64) for name in names}, gap,
        taus={name: float(order["kendall_tau"].sel(measure=name)) for name in names},
        highlight=set(_PAPERS),
    )  # fmt: skip
    note = (f"{len(left_out)} models near chance left out" if left_out else "none left out")
    rows.append(("scored against", f"the gap train_accuracy - test_accuracy over "
                 f"{kept.sizes['model']} models ({note}); conditioned on "
                 f"{', '.join(report.attrs['hyperparameters'])}; {resamples} bootstrap "
                 "resamples over models; each measure oriented so that a better value "
                 "predicts a smaller gap"))  # fmt: skip
    return rows, {"measures_vs_gap": figure}
