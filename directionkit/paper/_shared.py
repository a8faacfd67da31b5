"""What several of the paper's experiments share: numbers and intervals as text, the
analyses they ask of a :class:`~._workspace.Workspace`, masks and arrays read from a stored
dataset, and analyses stacked into one store."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from directionkit.paper._figures import text_values
from directionkit.paper._workspace import Workspace

__all__ = [
    "AUC_MARGIN",
    "CONV_SCOPE",
    "CONV_SCOPES",
    "MLP_SCOPE",
    "MLP_SCOPES",
    "ablation_analysis",
    "estimate_text",
    "every",
    "floats",
    "live_units",
    "model_groups",
    "n_seeds",
    "num",
    "p_text",
    "size_text",
    "span",
    "stack_models",
    "stack_units",
    "unit_mask",
    "unit_measures",
]

#: Ablation scopes: every unit of an MLP (Fig. 1a); the feature maps of a ConvNet's last
#: three layers (Fig. 1b, 3, 5b: "only feature maps in the last three layers").
MLP_SCOPES, CONV_SCOPES = ("all",), ("all", "last:3")
MLP_SCOPE, CONV_SCOPE = "all", "last:3"
#: Two normalised AUCs (or mean selectivities, or MIs in bits) closer than this are the
#: same for the purpose of a verdict.
AUC_MARGIN = 0.02


# ------------------------------------------------------------------------------ text
def num(value: Any, digits: int = 3) -> str:
    """``value`` at ``digits`` decimals, or ``'n/a'`` (not a number, or NaN)."""
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def span(low: float, high: float, digits: int = 2) -> str:
    """``low-high`` at ``digits`` decimals, or one number when they print the same.

    Examples
    --------
    >>> span(0.991, 0.994), span(0.1, 0.25), span(-0.02, 0.027, 3)
    ('0.99', '0.10-0.25', '-0.020 to 0.027')
    """
    a, b = f"{low:.{digits}f}", f"{high:.{digits}f}"
    if a == b:
        return a
    return f"{a} to {b}" if low < 0 or high < 0 else f"{a}-{b}"


def every(n: int, what: str) -> str:
    """``"every epoch"``, ``"every 2nd epoch"``, ``"every 3rd epoch"``, ``"every 11th ..."``.

    Examples
    --------
    >>> every(1, "epoch"), every(2, "epoch"), every(13, "epoch"), every(22, "epoch")
    ('every epoch', 'every 2nd epoch', 'every 13th epoch', 'every 22nd epoch')
    """
    if n == 1:
        return f"every {what}"
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} {what}"


def p_text(p: Any) -> str:
    """``'p = 0.012'``, ``'p = 1.0e-04'`` or ``'p n/a'``."""
    if not isinstance(p, int | float) or math.isnan(p):
        return "p n/a"
    return f"p = {p:.3f}" if p >= 1e-3 else f"p = {p:.1e}"


def estimate_text(s: Mapping[str, Any], key: str, digits: int = 3) -> str:
    """``"0.412 [95% CI 0.101 to 0.700], p = 0.004, n = 12"`` for a stored statistic."""
    ci = s.get(f"{key}_ci") or [math.nan, math.nan]
    text = f"{num(s.get(key), digits)} [95% CI {num(ci[0], digits)} to {num(ci[1], digits)}]"
    if f"{key}_p" in s:
        text += f", {p_text(s[f'{key}_p'])}"
    return text + f", n = {s.get(f'{key}_n', 'n/a')}"


# -------------------------------------------------------------------------- analyses
def ablation_analysis(
    ws: Workspace,
    run: Any,
    *,
    conv: bool = False,
    epoch: int | None = None,
    ablate_to: str = "zero",
    noise: bool = False,
) -> xr.Dataset:
    """Ablation (and noise) curves of a run on its training data (the paper's protocol):
    every unit of an MLP, the feature maps of a ConvNet's last three layers."""
    scale = ws.scale
    metrics = ["ablation", "noise"] if noise else ["ablation"]
    parameters: dict[str, Any] = {
        "scopes": CONV_SCOPES if conv else MLP_SCOPES,
        "orderings": scale.conv_orderings if conv else scale.orderings,
        "fractions": scale.conv_fractions if conv else scale.fractions,
    }
    if ablate_to != "zero":
        parameters["ablate_to"] = ablate_to
    if noise:
        parameters["noise_scales"] = scale.noise_scales
        parameters["noise_repeats"] = scale.noise_repeats
    dataset = ws.analyze(run, split="train", metrics=metrics, epoch=epoch, **parameters)
    return dataset.sel(scope=CONV_SCOPE if conv else MLP_SCOPE)


def unit_measures(ws: Workspace, run: Any, *, l1: bool = True) -> xr.Dataset:
    """Per-unit measures of a run on the true test labels (selectivity, MI, importance)."""
    metrics = ["statistics", "importance", *(["weight_l1"] if l1 else [])]
    return ws.analyze(run, split="test", metrics=metrics)


# --------------------------------------------------------------- what a store holds
def model_groups(stored: xr.Dataset, coord: str, fmt: str) -> dict[str, np.ndarray]:
    """A mask over ``model`` for each value of ``coord``, labelled by ``fmt``."""
    values = np.asarray(stored[coord].values)
    return {fmt.format(v): values == v for v in sorted(set(values.tolist()))}


def unit_mask(stored: xr.Dataset, prefix: str) -> np.ndarray:
    """The units of the networks whose name starts with ``prefix``."""
    models = text_values(stored["unit_model"].values)
    return np.char.startswith(models, prefix)


def live_units(stored: xr.Dataset) -> np.ndarray:
    """Units whose activity varies on the test data (a dead unit is constant, often 0)."""
    return np.asarray(stored["unit_std"].values, dtype=np.float64) > 0


def floats(stored: xr.Dataset, name: str) -> np.ndarray:
    """The variable ``name`` of ``stored`` as float64 numbers."""
    return np.asarray(stored[name].values, dtype=np.float64)


def n_seeds(values: Sequence[Any]) -> str:
    """``'1 seed'``, ``'3 seeds'``."""
    return f"{len(values)} seed{'s' if len(values) != 1 else ''}"


def size_text(limit: int | None) -> str:
    """A data limit as text: ``'all'`` or ``'5,000'``."""
    return "all" if limit is None else f"{limit:,}"


def stack_models(
    datasets: Mapping[str, xr.Dataset], variables: Iterable[str], by: Sequence[str] = ()
) -> xr.Dataset:
    """Variables of several analyses along a new ``model`` dim (same shapes required).

    The ``by`` keys of each analysis's ``attrs["run_config"]`` become coordinates along
    ``model``.  (``directionkit.compare`` does the same for whole analyses.)
    """
    names = list(datasets)
    chosen = list(variables)
    if "accuracy" in chosen:  # chance beside it, so that a model at chance is flagged
        chosen += [
            v for v in ("chance_accuracy", "near_chance")
            if v not in chosen and all(v in datasets[n] for n in names)
        ]  # fmt: skip
    parts = [datasets[n][chosen].drop_attrs().reset_coords(drop=True) for n in names]
    stacked = xr.concat(parts, dim="model", join="outer", coords="minimal", compat="override")
    coords: dict[str, Any] = {"model": names}
    for key in by:
        coords[key] = ("model", [datasets[n].attrs["run_config"].get(key) for n in names])
    splits = {datasets[n].attrs.get("split") for n in names}
    if len(splits) == 1 and None not in splits:  # which labels `accuracy` was measured on
        stacked.attrs["split"] = splits.pop()
    return stacked.assign_coords(coords)


def stack_units(datasets: Mapping[str, xr.Dataset], variables: Iterable[str]) -> xr.Dataset:
    """Per-unit variables of several analyses, their units laid end to end along ``unit``.

    Coordinates along ``unit``: ``unit_model`` (the analysis's key), ``site``, ``unit_index``
    and ``depth`` (the position of the unit's site among its analysis's sites).
    """
    chosen = list(variables)
    parts = []
    for name, ds in datasets.items():
        part = ds[chosen].drop_attrs()
        sites = np.asarray(part["site"].values).astype(str)
        order = {site: i for i, site in enumerate(dict.fromkeys(sites.tolist()))}
        part = part.assign_coords(
            unit_model=("unit", np.full(sites.size, name, dtype=object)),
            depth=("unit", np.array([order[s] for s in sites], dtype=np.int64)),
            site=("unit", sites.astype(object)),
        )
        parts.append(part)
    return xr.concat(parts, dim="unit", coords="different", compat="equals")
