"""A finished experiment read back from what it stored: :func:`check_verdict` of a
``result.json``, and the rows (:func:`experiment_rows`) and figures
(:func:`experiment_figures`) of an experiment's store, as ``show`` and ``report`` give them."""

from __future__ import annotations

from typing import Any

import xarray as xr

from directionkit.paper._experiment import Experiment, claims_text
from directionkit.paper._registry import EXPERIMENTS
from directionkit.paper._results import ExperimentResult, json_ready

__all__ = ["check_verdict", "experiment_figures", "experiment_rows"]


def check_verdict(result: ExperimentResult) -> bool:
    """Whether ``result``'s verdict is what its experiment's rule gives on its statistics.

    Examples
    --------
    >>> from directionkit.paper import EXPERIMENTS, ExperimentResult
    >>> rule = EXPERIMENTS["depth"].rule.text
    >>> statistics = {"rho": 0.9, "rho_ci": [0.7, 0.95], "rho_n": 3, "rho_p": 0.001}
    >>> result = ExperimentResult("depth", "", "", "", statistics, "", rule, "reproduced", [],
    ...                           "", 0.0)
    >>> check_verdict(result)
    True
    >>> result.verdict = "not reproduced"
    >>> check_verdict(result)
    False
    """
    rule = EXPERIMENTS[result.name].rule
    return rule.text == result.rule and rule(result.statistics) == result.verdict


def _experiment_of(dataset: xr.Dataset) -> tuple[Experiment, dict[str, Any]] | None:
    """The experiment whose store ``dataset`` is, and its statistics read from it."""
    name = dataset.attrs.get("experiment")
    if name not in EXPERIMENTS:
        return None
    experiment = EXPERIMENTS[name]
    return experiment, json_ready(experiment.statistics(dataset))


def experiment_rows(dataset: xr.Dataset) -> list[tuple[str, str]]:
    """What an experiment's store says, as ``(label, text)`` rows: the experiment, the
    paper's claim and statistic, ours (recomputed from the store), the rule and the
    verdict it gives.  Empty for a store that is not an experiment's.

    The verdict is the rule stored with the store applied to statistics of the stored
    numbers; when today's rule differs from the stored one, a row says so.

    Examples
    --------
    >>> import xarray as xr
    >>> experiment_rows(xr.Dataset())
    []
    """
    found = _experiment_of(dataset)
    if found is None:
        return []
    experiment, statistics = found
    rows = [
        ("experiment", f"{experiment.name}: {experiment.title}"),
        ("claim", experiment.claim),
        ("paper", experiment.paper),
        ("ours", experiment.summarize(statistics)),
        *[("statistic", line) for line in claims_text(experiment.rule, statistics)],
        ("interval", str(statistics.get("interval", "n/a"))),
        ("rule", experiment.rule.text),
        ("verdict", experiment.rule(statistics)),
        *[("deviation", str(d)) for d in dataset.attrs.get("deviations", [])],
    ]
    stored_rule = dataset.attrs.get("rule")
    if stored_rule is not None and stored_rule != experiment.rule.text:
        rows.append(("note", f"this store was judged by another rule: {stored_rule}"))
    if dataset.attrs.get("population"):
        rows.insert(1, ("population", str(dataset.attrs["population"])))
    return rows


def experiment_figures(dataset: xr.Dataset) -> dict[str, Any]:
    """The experiment's figures drawn from its store (matplotlib Figures by name); empty
    for a store that is not an experiment's.

    Examples
    --------
    >>> import xarray as xr
    >>> experiment_figures(xr.Dataset({"accuracy": 0.9}))
    {}
    """
    found = _experiment_of(dataset)
    if found is None:
        return {}
    experiment, statistics = found
    return dict(experiment.figures(dataset, statistics))
