"""The headline numbers of an analysis, as text (terminal, ``repr``) and as HTML (notebooks).

One place formats them, so ``directionkit show``, ``directionkit analyze``,
``Analysis.__repr__``, ``Analysis._repr_html_`` and the HTML report agree.  matplotlib is
not imported here: a ``repr`` must stay cheap.
"""

from __future__ import annotations

import html
import math
import re

import numpy as np
import xarray as xr

from directionkit.metrics import spearman
from directionkit.results import population_dims

__all__ = [
    "data_description",
    "html_table",
    "population_html",
    "population_table",
    "short_identity",
    "site_text",
    "summary_html",
    "summary_rows",
    "summary_text",
]

_IMPORTANCE = ("importance_loss", "importance_accuracy")
#: The marker of a model whose clean accuracy is not clearly above chance.
NEAR_CHANCE = "(near chance: the AUC says little)"


def _number(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _scalar(ds: xr.Dataset, name: str) -> float | None:
    if name in ds.data_vars and ds[name].ndim == 0:
        return float(ds[name].values)
    return None


def site_text(ds: xr.Dataset, site: str) -> str:
    """A site's label for a reader: name, layer type and width (``features.4 · ReLU ·
    128 ch``), from ``attrs["site_info"]``; the bare name when that is not recorded.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(attrs={"site_info": {"2": {"kind": "dense", "n_units": 64,
    ...                                              "op": "ReLU"}}})
    >>> site_text(ds, "2"), site_text(ds, "other")
    ('2 · ReLU · 64 units', 'other')
    """
    info = ds.attrs.get("site_info")
    entry = info.get(site) if isinstance(info, dict) else None
    if not isinstance(entry, dict) or "n_units" not in entry:
        return site
    parts = [site]
    if isinstance(entry.get("op"), str):
        parts.append(entry["op"])
    unit = "ch" if entry.get("kind") == "conv" else "units"
    parts.append(f"{entry['n_units']} {unit}")
    return " \N{MIDDLE DOT} ".join(parts)


def _site_groups(array: xr.DataArray) -> list[tuple[str, np.ndarray]]:
    """``(site, mask over unit)`` per site, in the order the units are laid out."""
    labels = np.asarray(array["site"].values).astype(str)
    return [(site, labels == site) for site in dict.fromkeys(labels.tolist())]


# a content hash in an identity ("model.onnx sha256:<64 hex>"): displays keep 12 digits
_HASH = re.compile(r"\b(sha256:|md5:|sha1:)?([0-9a-f]{12})[0-9a-f]{8,}\b")


def short_identity(text: str) -> str:
    """``text`` with each long hex digest cut to 12 digits and an ellipsis (for display).

    Examples
    --------
    >>> short_identity("model.onnx sha256:" + "ab" * 32)
    'model.onnx sha256:abababababab…'
    """
    return _HASH.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}…", text)


def data_description(ds: xr.Dataset) -> str | None:
    """What the measures were computed on: data set, split and number of examples.

    Reads the attrs ``dataset``, ``split`` (set by ``directionkit analyze``) and
    ``n_examples`` (set by :func:`directionkit.analyze`); None when none is recorded.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(attrs={"dataset": "digits", "split": "test", "n_examples": 450})
    >>> data_description(ds)
    'digits, test split, 450 examples'
    >>> data_description(xr.Dataset(attrs={"n_examples": 12})), data_description(xr.Dataset())
    ('12 examples', None)
    """
    attrs = ds.attrs
    parts = []
    if attrs.get("dataset") is not None:
        parts.append(str(attrs["dataset"]))
    if attrs.get("split") is not None:
        parts.append(f"{attrs['split']} split")
    if attrs.get("n_examples") is not None:
        parts.append(f"{int(attrs['n_examples'])} examples")
    return ", ".join(parts) or None


def summary_rows(ds: xr.Dataset, *, per_site: bool = True) -> list[tuple[str, str]]:
    """``(label, value)`` rows: accuracy, loss, AUC per scope, selectivity, Spearman.

    Accuracy and loss, the ablation AUC of each scope, the mean selectivity over all
    units (and per site), and the Spearman correlation of selectivity with each
    importance measure (overall, and per site); rows whose variables are missing are
    left out.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"accuracy": 0.5, "selectivity": ("unit", [0.2, 0.4])})
    >>> summary_rows(ds)
    [('accuracy', '0.5000'), ('mean selectivity [all]', '0.3000')]
    """
    rows: list[tuple[str, str]] = []
    flagged = "near_chance" in ds.data_vars and ds["near_chance"].ndim == 0 and bool(
        ds["near_chance"].values
    )
    for name in ("accuracy", "loss"):
        value = _scalar(ds, name)
        if value is not None:  # top-5 (the paper's ImageNet accuracy) is named; top-1 is plain
            top5 = name == "accuracy" and ds.attrs.get("accuracy") == "top5"
            text = _number(value) + (f"  {NEAR_CHANCE}" if flagged and name == "accuracy" else "")
            rows.append(("accuracy (top5)" if top5 else name, text))
        chance = _scalar(ds, "chance_accuracy")
        if name == "accuracy" and chance is not None:
            rows.append(("chance accuracy", _number(chance)))
    if "ablation_auc" in ds.data_vars and ds["ablation_auc"].dims == ("scope",):
        auc = ds["ablation_auc"]
        scopes = auc["scope"].values if "scope" in auc.coords else range(auc.sizes["scope"])
        corrected = ds.get("ablation_auc_corrected")
        for i, (scope, value) in enumerate(zip(scopes, auc.values, strict=True)):
            mark = f"  {NEAR_CHANCE}" if flagged else ""
            label = site_text(ds, str(scope))
            rows.append((f"ablation AUC [{label}]", _number(float(value)) + mark))
            if corrected is not None and corrected.dims == ("scope",):
                rows.append((f"AUC above chance [{label}]",
                             _number(float(corrected.values[i])) + mark))  # fmt: skip
    selectivity = ds["selectivity"] if "selectivity" in ds.data_vars else None
    if selectivity is not None and selectivity.dims == ("unit",):
        values = np.asarray(selectivity.values, dtype=np.float64)
        groups = [("all", np.ones(values.size, dtype=bool))]
        if per_site and "site" in selectivity.coords:
            groups += _site_groups(selectivity)
        for group, mask in groups:
            part = values[mask][np.isfinite(values[mask])]
            mean = float(part.mean()) if part.size else math.nan
            rows.append((f"mean selectivity [{site_text(ds, group)}]", _number(mean)))
        for measure in _IMPORTANCE:
            if measure not in ds.data_vars or ds[measure].dims != ("unit",):
                continue
            result = spearman(selectivity, ds[measure], by="site" if per_site else None)
            for scope, rho, p, n in zip(
                result["scope"].values, result["rho"].values,
                result["p_value"].values, result["n"].values, strict=True,
            ):  # fmt: skip
                text = f"{rho:+.3f} (p={p:.2g}, n={int(n)})" if not math.isnan(rho) else "nan"
                label = site_text(ds, str(scope))
                rows.append((f"Spearman(selectivity, {measure}) [{label}]", text))
    return rows


#: The per-member columns of a population's table: (variable, heading).
_POPULATION_COLUMNS = (
    ("accuracy", "accuracy"),
    ("train_accuracy", "train acc"),
    ("test_accuracy", "test acc"),
    ("test_loss", "test loss"),
    ("chance_accuracy", "chance"),
    ("ablation_auc", "AUC"),
    ("ablation_auc_corrected", "AUC above chance"),
)


def population_table(ds: xr.Dataset, *, scope: str = "all") -> list[list[str]]:
    """One row per member of a population (a sweep's or an experiment's models, a run's
    epochs): its label, accuracy, chance accuracy and AUCs; a header row first.

    ``(member, scope)`` variables give the ``scope`` column (the first scope when there
    is no ``scope``); a member flagged ``near_chance`` is marked.  Empty when ``ds`` has
    no population dim.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"accuracy": ("model", [0.9, 0.1]),
    ...                  "near_chance": ("model", [False, True])}, coords={"model": ["a", "b"]})
    >>> for row in population_table(ds):
    ...     print(row)
    ['model', 'accuracy', '']
    ['a', '0.9000', '']
    ['b', '0.1000', 'near chance']
    """

    dims = population_dims(ds)
    if not dims:
        return []
    stacked = ds.stack(member=dims) if len(dims) > 1 else ds.rename({dims[0]: "member"})
    columns: list[tuple[str, np.ndarray]] = []
    split = ds.attrs.get("split")
    for name, heading in _POPULATION_COLUMNS:
        if name not in stacked.variables:  # a variable, or a coordinate along the members
            continue
        if name == "accuracy" and isinstance(split, str):
            heading = f"accuracy ({split} split)"
        var = stacked[name]
        if "scope" in var.dims and var.ndim == 2:
            scopes = [str(s) for s in var["scope"].values] if "scope" in var.coords else []
            var = var.isel(scope=scopes.index(scope) if scope in scopes else 0)
            heading = f"{heading} [{scope if scope in scopes else (scopes or ['0'])[0]}]"
        values = np.asarray(var.values, dtype=np.float64)
        if var.dims == ("member",) and not np.all(np.isnan(values)):  # unrecorded: no column
            columns.append((heading, values))
    if columns and columns[0][0].startswith("accuracy"):  # a training run's own record of
        analysed = columns[0][1]  # the same accuracy is not shown twice
        columns = columns[:1] + [
            (h, v) for h, v in columns[1:]
            if not (h.endswith(" acc") and np.allclose(v, analysed, equal_nan=True))
        ]  # fmt: skip
    flags = (
        np.asarray(stacked["near_chance"].values, dtype=bool)
        if "near_chance" in stacked.data_vars and stacked["near_chance"].dims == ("member",)
        else np.zeros(stacked.sizes["member"], dtype=bool)
    )
    done = (
        np.asarray(stacked["done"].values, dtype=bool)
        if "done" in stacked.data_vars and stacked["done"].dims == ("member",)
        else np.ones(stacked.sizes["member"], dtype=bool)
    )
    members = stacked["member"].values if "member" in stacked.coords else range(flags.size)
    rows = [[" · ".join(dims), *(h for h, _ in columns), ""]]
    for i, member in enumerate(members):
        label = ", ".join(f"{d}={v}" for d, v in zip(dims, member, strict=True)) if len(
            dims
        ) > 1 else str(member)
        mark = "near chance" if flags[i] else ("" if done[i] else "not finished")
        rows.append([label, *(_number(float(v[i])) for _, v in columns), mark])
    return rows


def population_html(ds: xr.Dataset) -> str:
    """A population's table (:func:`population_table`) as an HTML fragment; empty for
    one model.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"accuracy": ("model", [0.9])}, coords={"model": ["a"]})
    >>> "<tr><td>a</td><td>0.9000</td><td></td></tr>" in population_html(ds)
    True
    >>> population_html(xr.Dataset({"accuracy": 0.9}))
    ''
    """
    rows = population_table(ds)
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:]
    )
    return f'<h2>Population</h2>\n<table class="population">\n<tr>{head}</tr>\n{body}\n</table>'


def _aligned(rows: list[list[str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _identity_rows(ds: xr.Dataset) -> list[tuple[str, str]]:
    rows = []
    described = data_description(ds)
    if described is not None:
        rows.append(("data", described))
    model = ds.attrs.get("model")
    if isinstance(model, str):
        rows.append(("model", short_identity(model)))
    parameters = ds.attrs.get("parameters")
    directions = parameters.get("directions") if isinstance(parameters, dict) else None
    if isinstance(directions, str) and directions != "units":
        # every "unit" below is a direction of this basis
        rows.append(("single directions", f"along {directions} bases (units are directions)"))
    if isinstance(ds.attrs.get("device_note"), str):
        rows.append(("device", ds.attrs["device_note"]))
    return rows


def summary_text(ds: xr.Dataset, *, per_site: bool = False, identity: bool = True) -> str:
    """The headline numbers as aligned ``label  value`` lines.

    Parameters
    ----------
    ds : xarray.Dataset
        An analysis' dataset.
    per_site : bool
        Also give the per-site selectivity and correlations.
    identity : bool
        Start with what was measured: the data (see :func:`data_description`) and model.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"accuracy": 0.9, "ablation_auc": ("scope", [0.61])},
    ...                 coords={"scope": ["all"]}, attrs={"n_examples": 100})
    >>> print(summary_text(ds))
    data                100 examples
    accuracy            0.9000
    ablation AUC [all]  0.6100
    """
    rows = (_identity_rows(ds) if identity else []) + summary_rows(ds, per_site=per_site)
    table = population_table(ds)
    if not rows and not table:
        return "(no summary measures in this analysis)"
    width = max((len(label) for label, _ in rows), default=0)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines + _aligned(table))


def html_table(rows: list[tuple[str, str]], css_class: str) -> str:
    """Rows as an HTML table, every cell escaped."""
    cells = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f'<table class="{css_class}">\n{cells}\n</table>'


def summary_html(ds: xr.Dataset) -> str:
    """The headline numbers as an HTML fragment (for ``Analysis._repr_html_``).

    Examples
    --------
    >>> import xarray as xr
    >>> print(summary_html(xr.Dataset({"accuracy": 0.25})))  # doctest: +ELLIPSIS
    <div class="directionkit-analysis"><strong>directionkit.Analysis</strong>
    <table class="summary">
    <tr><th>accuracy</th><td>0.2500</td></tr>
    </table>...
    """
    rows = _identity_rows(ds) + summary_rows(ds, per_site=False)
    names = ", ".join(str(n) for n in ds.data_vars)
    table = html_table(rows, "summary") if rows else "<p>(no summary measures)</p>"
    table += population_html(ds)
    return (
        f'<div class="directionkit-analysis"><strong>directionkit.Analysis</strong>\n{table}\n'
        f"<p>variables: {html.escape(names)}</p></div>"
    )
