"""Several analyses side by side: one labelled dataset along ``model``, overlaid figures.

The paper's findings are comparisons: ablation curves of networks trained on more
or less corrupted labels (Fig. 1), noise curves of the same networks (Fig. 2),
selectivity distributions with and without batch norm (Fig. 6).  :func:`compare`
lines analyses up along a new ``model`` dimension; :class:`Comparison` draws the
overlays and tabulates the AUCs.

Model-level variables (``accuracy``, ``loss``, ``ablation_accuracy``,
``ablation_auc``, ``noise_accuracy``) are joined along ``model`` (an outer join on
``scope``, ``fraction`` and ``noise_scale``: a point one analysis lacks is NaN).
Per-unit variables cannot share one ``unit`` axis when the models differ in width,
so :attr:`Comparison.dataset` holds their per-model means
(``mean_selectivity``, ``mean_mutual_info``) and :attr:`Comparison.analyses` keeps
every analysis whole for the distribution figures.

Examples
--------
>>> import directionkit as dk
>>> from directionkit.testing import example_model
>>> net, X, y = example_model()
>>> a = dk.analyze(net, (X, y), orderings=2, fractions=5, progress=False)
>>> b = dk.analyze(net, (X, y), orderings=2, fractions=5, seed=1, progress=False)
>>> comparison = dk.compare({"seed 0": a, "seed 1": b})
>>> comparison.dataset["ablation_auc"].dims
('model', 'scope')
>>> sorted(comparison.figures())
['ablation_curves', 'mutual_info', 'selectivity']
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from directionkit._utils.validation import parameter_error
from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.report._drawing import is_analysis
from directionkit.results import read_analysis

if TYPE_CHECKING:
    from typing import TypeAlias

    from matplotlib.figure import Figure

    from directionkit.results import HoldsDataset

    AnalysisLike: TypeAlias = HoldsDataset | xr.Dataset | str | os.PathLike[str]

__all__ = ["Comparison", "compare", "model_labels"]

#: Variables joined along ``model`` (none of them has a ``unit`` dim).
MODEL_LEVEL = ("accuracy", "loss", "ablation_accuracy", "ablation_auc", "noise_accuracy")
#: Per-unit variables summarised by their mean over units, and drawn as distributions.
PER_UNIT = ("selectivity", "mutual_info")



def _as_dataset(item: AnalysisLike, label: str) -> xr.Dataset:
    if isinstance(item, xr.Dataset):
        return item
    if is_analysis(item):
        return item.dataset
    if isinstance(item, str | os.PathLike):
        return read_analysis(item)
    raise InvalidParameterError(
        f"The analysis {label!r} given to compare must be a directionkit.Analysis, an "
        f"xarray.Dataset or the path of a saved analysis. Got {type(item).__name__} instead."
    )


def model_labels(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Short, unique labels for store paths: the names without ``.zarr``.

    Where two stores share a name, their parent folders are prefixed until the
    labels differ.

    Examples
    --------
    >>> model_labels(["runs/a.zarr", "runs/b.zarr"])
    ['a', 'b']
    >>> model_labels(["x/run.zarr", "y/run.zarr"])
    ['x/run', 'y/run']
    """
    parts = [Path(os.fspath(p)).resolve().parts for p in paths]
    stems = [
        [*p[:-1], p[-1][: -len(".zarr")] if p[-1].endswith(".zarr") else p[-1]]
        for p in parts
    ]
    depth = 1
    while True:
        labels = ["/".join(s[-depth:]) for s in stems]
        if len(set(labels)) == len(labels) or depth >= max(len(s) for s in stems):
            return labels
        depth += 1


def _config_value(ds: xr.Dataset, by: str, label: str) -> Any:
    config = ds.attrs.get("run_config")
    if not isinstance(config, Mapping) or by not in config:
        keys = sorted(config) if isinstance(config, Mapping) else []
        raise InvalidParameterError(
            f"compare(by={by!r}): the analysis {label!r} has no {by!r} in attrs['run_config'] "
            f"(its keys: {keys or 'none, it has no run_config'}). Analyse a training run "
            "directory (its config is recorded), or set attrs['run_config'] yourself."
        )
    value = config[by]
    return value if isinstance(value, int | float | str | bool) else str(value)


def _model_level(ds: xr.Dataset) -> xr.Dataset:
    keep = [name for name in MODEL_LEVEL if name in ds.data_vars]
    out = ds[keep].drop_attrs()
    out = out.drop_vars([c for c in out.coords if "unit" in out[c].dims])
    for name in PER_UNIT:
        if name in ds.data_vars:
            out[f"mean_{name}"] = float(ds[name].mean(skipna=True))
    return out


class Comparison:
    """Analyses lined up along ``model`` (made by :func:`compare`).

    Attributes
    ----------
    dataset : xarray.Dataset
        Model-level variables with a leading ``model`` dim (coordinate ``model``:
        the labels; with ``by``, a coordinate of that name too).
    analyses : dict of str to xarray.Dataset
        Every analysis whole, by label, in order.
    by : str or None
        The ``run_config`` key the models are compared by.
    """

    def __init__(self, analyses: dict[str, xr.Dataset], by: str | None) -> None:
        self.analyses = analyses
        self.by = by
        parts = [_model_level(ds) for ds in analyses.values()]
        dataset = xr.concat(
            parts, dim="model", join="outer", coords="minimal", compat="override",
            data_vars="all",
        )  # fmt: skip
        dataset = dataset.assign_coords(model=list(analyses))
        if by is not None:
            values = [_config_value(ds, by, label) for label, ds in analyses.items()]
            dataset = dataset.assign_coords({by: ("model", values)})
        dataset.attrs = {"by": by} if by is not None else {}
        self.dataset = dataset

    def __repr__(self) -> str:
        return f"<directionkit.Comparison> {len(self.analyses)} models\n" + self.auc_table()

    def labels(self) -> list[str]:
        """Legend label of each model: its name, and its ``by`` value when set."""
        if self.by is None:
            return list(self.analyses)
        values = self.dataset[self.by].values
        return [
            name if str(value) == name else f"{name} ({self.by} = {value})"
            for name, value in zip(self.analyses, values, strict=True)
        ]

    def auc_table(self) -> str:
        """The headline numbers as a markdown table: one row per model.

        Columns: model, the ``by`` value, accuracy, ablation AUC per scope (mean over
        orderings), and the mean selectivity when present.

        Examples
        --------
        >>> import xarray as xr
        >>> a = xr.Dataset({"accuracy": 0.9, "ablation_auc": ("scope", [0.5])},
        ...                coords={"scope": ["all"]})
        >>> print(compare({"a": a}).auc_table())
        | model | accuracy | AUC (all) |
        |---|---|---|
        | a | 0.9000 | 0.5000 |
        """
        ds = self.dataset
        header = ["model"] + ([self.by] if self.by else [])
        columns: list[tuple[str, Any]] = []
        if "accuracy" in ds:
            columns.append(("accuracy", ds["accuracy"]))
        if "ablation_auc" in ds:
            for scope in ds["scope"].values:
                columns.append((f"AUC ({scope})", ds["ablation_auc"].sel(scope=scope)))
        if "mean_selectivity" in ds:
            columns.append(("mean selectivity", ds["mean_selectivity"]))
        header += [name for name, _ in columns]
        rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for i, name in enumerate(self.analyses):
            cells = [name] + ([str(ds[self.by].values[i])] if self.by else [])
            for _, values in columns:
                value = float(values.values[i])
                cells.append("—" if math.isnan(value) else f"{value:.4f}")
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def order(self) -> np.ndarray:
        """Model indices in the ``by`` order (numbers ascending), else as given."""
        n = len(self.analyses)
        if self.by is None:
            return np.arange(n)
        values = self.dataset[self.by].values
        try:
            return np.argsort(values.astype(np.float64), kind="stable")
        except (TypeError, ValueError):
            return np.arange(n)

    def figures(self) -> dict[str, Figure]:
        """Every overlay the analyses allow, by name.

        ``"ablation_curves"`` (scope ``all``, else the first scope; further scopes
        as ``"ablation_curves_<scope>"``), ``"noise_curves"``, ``"selectivity"``,
        ``"mutual_info"``; an overlay no analysis has the variable for is left out.
        """
        from directionkit.report._comparison_figures import (  # matplotlib: only to draw
            compare_ablation_curves,
            compare_distributions,
            compare_noise_curves,
        )

        out: dict[str, Figure] = {}
        if "ablation_accuracy" in self.dataset:
            scopes = [str(s) for s in self.dataset["scope"].values]
            first = "all" if "all" in scopes else scopes[0]
            out["ablation_curves"] = compare_ablation_curves(self, scope=first)
            for scope in scopes:
                if scope != first:
                    key = "ablation_curves_" + "".join(
                        c if c.isalnum() else "_" for c in scope
                    )
                    out[key] = compare_ablation_curves(self, scope=scope)
        if "noise_accuracy" in self.dataset:
            out["noise_curves"] = compare_noise_curves(self)
        for name in PER_UNIT:
            if any(name in ds for ds in self.analyses.values()):
                out[name] = compare_distributions(self, name)
        return out


def compare(
    analyses: Mapping[str, AnalysisLike] | Sequence[AnalysisLike],
    *,
    by: str | None = None,
) -> Comparison:
    """Line several analyses up along a ``model`` dimension.

    Parameters
    ----------
    analyses : mapping of str to analysis, or sequence of analyses
        Each an :class:`~directionkit.Analysis`, an :class:`xarray.Dataset` or the path
        of a saved analysis.  Mapping keys are the model labels; a sequence of paths
        is labelled by the store names (:func:`model_labels`), any other sequence
        ``model0``, ``model1``, ...
    by : str, optional
        A key of every analysis's ``attrs["run_config"]`` (the training config that
        ``directionkit analyze`` records for a run directory, e.g. ``"corruption"``,
        ``"dropout"``, ``"seed"``): it becomes a coordinate along ``model``, labels the
        legends, and colours the curves in its order.

    Returns
    -------
    Comparison

    Raises
    ------
    InvalidParameterError
        Fewer than one analysis, duplicate labels, or ``by`` missing from a
        ``run_config``.

    Examples
    --------
    >>> import xarray as xr
    >>> runs = {
    ...     f"p={p}": xr.Dataset({"accuracy": 1.0}, attrs={"run_config": {"corruption": p}})
    ...     for p in (0.0, 0.5)
    ... }
    >>> comparison = compare(runs, by="corruption")
    >>> comparison.dataset["corruption"].values.tolist()
    [0.0, 0.5]
    """
    if isinstance(analyses, Mapping):
        items = [(str(k), v) for k, v in analyses.items()]
    elif isinstance(analyses, Sequence) and not isinstance(analyses, str):
        if all(isinstance(a, str | os.PathLike) for a in analyses):
            names = model_labels(analyses)  # type: ignore[arg-type]
        else:
            names = [f"model{i}" for i in range(len(analyses))]
        items = list(zip(names, analyses, strict=True))
    else:
        raise parameter_error(
            "analyses", "compare", "a mapping of label to analysis or a sequence of analyses",
            analyses,
        )  # fmt: skip
    if not items:
        raise InvalidParameterError("compare needs at least one analysis. Got none.")
    labels = [label for label, _ in items]
    if len(set(labels)) != len(labels):
        raise InvalidParameterError(f"compare needs unique model labels. Got {labels}.")
    if by is not None and not isinstance(by, str):
        raise parameter_error("by", "compare", "a run_config key (str) or None", by)
    datasets = {label: _as_dataset(item, label) for label, item in items}
    if not any(
        name in ds.data_vars for ds in datasets.values() for name in (*MODEL_LEVEL, *PER_UNIT)
    ):
        raise InvalidDataError(
            f"compare found none of {list(MODEL_LEVEL + PER_UNIT)} in the analyses {labels}."
        )
    return Comparison(datasets, by)
