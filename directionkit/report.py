"""A report of an analysis: its figures as PNG files and one self-contained HTML page.

:func:`write_report` writes a folder holding one PNG per figure of
:func:`directionkit.plots.plot_analysis` and ``report.html``, whose images are
embedded as ``data:`` URIs so that the HTML file alone is the whole report.
:func:`summary_table` is the same summary as plain text, for a terminal.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from directionkit.metrics import spearman
from directionkit.plots import as_dataset, plot_analysis, site_groups
from directionkit.store import VERSION_ATTR, Analysis, atomic_directory, check_writable
from directionkit.store import open as open_store

__all__ = ["summary_table", "write_report"]

_IMPORTANCE = ("importance_loss", "importance_accuracy")
_DPI = 100
_CAPTIONS = {
    "ablation_curves": "Accuracy as a growing fraction of each scope's units is clamped, in "
    "random orders (mean ± sd over orderings); AUC is normalised by the unablated accuracy. "
    "A network that relies less on single directions keeps its accuracy longer.",
    "noise_curve": "Accuracy as Gaussian noise scaled by each unit's sd on the training data "
    "is added to every unit (mean ± sd over repeats).",
    "selectivity_histograms": "Distributions of class selectivity and of mutual information "
    "between each unit's activity and the class.",
    "selectivity_vs_importance": "Each unit's class selectivity against the change in loss "
    "(and accuracy) when that unit alone is clamped; Spearman rho per site.",
    "selectivity_vs_weight_l1": "Each unit's class selectivity against the L1 norm of its "
    "incoming weights, a predictor of importance from the pruning literature.",
    "selectivity_by_depth": "Class selectivity per site, from input to output (mean ± sd).",
}


def _number(value: float, digits: int = 4) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _scalar(ds: xr.Dataset, name: str) -> float | None:
    if name in ds.data_vars and ds[name].ndim == 0:
        return float(ds[name].values)
    return None


def _summary_rows(ds: xr.Dataset, *, per_site: bool = True) -> list[tuple[str, str]]:
    """(label, value) rows shared by :func:`summary_table` and the HTML table."""
    rows: list[tuple[str, str]] = []
    for name in ("accuracy", "loss"):
        value = _scalar(ds, name)
        if value is not None:
            rows.append((name, _number(value)))
    if "ablation_auc" in ds.data_vars and ds["ablation_auc"].dims == ("scope",):
        auc = ds["ablation_auc"]
        scopes = auc["scope"].values if "scope" in auc.coords else range(auc.sizes["scope"])
        for scope, value in zip(scopes, auc.values, strict=True):
            rows.append((f"ablation AUC [{scope}]", _number(float(value))))
    selectivity = ds["selectivity"] if "selectivity" in ds.data_vars else None
    if selectivity is not None and selectivity.dims == ("unit",):
        values = np.asarray(selectivity.values, dtype=np.float64)
        groups = [("all", np.ones(values.size, dtype=bool))]
        if per_site and "site" in selectivity.coords:
            groups += site_groups(selectivity)
        for group, mask in groups:
            part = values[mask][np.isfinite(values[mask])]
            mean = float(part.mean()) if part.size else math.nan
            rows.append((f"mean selectivity [{group}]", _number(mean)))
        for measure in _IMPORTANCE:
            if measure not in ds.data_vars or ds[measure].dims != ("unit",):
                continue
            result = spearman(selectivity, ds[measure], by="site" if per_site else None)
            for scope, rho, p, n in zip(
                result["scope"].values, result["rho"].values,
                result["p_value"].values, result["n"].values, strict=True,
            ):  # fmt: skip
                text = f"{rho:+.3f} (p={p:.2g}, n={int(n)})" if not math.isnan(rho) else "nan"
                rows.append((f"Spearman(selectivity, {measure}) [{scope}]", text))
    return rows


def summary_table(analysis: Analysis | xr.Dataset, *, per_site: bool = True) -> str:
    """A short plain-text summary of an analysis, one measure per line.

    Accuracy and loss, the ablation AUC of each scope, the mean selectivity over all
    units and per site, and the Spearman correlation of selectivity with each
    importance measure, overall and per site; rows whose variables are missing are
    left out.

    Parameters
    ----------
    analysis : Analysis or xarray.Dataset
    per_site : bool
        Also give the mean selectivity and the correlations of each site (a deep
        network has many; pass False for the overall values only).

    Returns
    -------
    str
        Lines of ``label  value``, labels padded to one width.

    Examples
    --------
    >>> import directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["ablation"], orderings=2, fractions=5,
    ...                     progress=False)
    >>> print(summary_table(result))  # doctest: +ELLIPSIS
    accuracy            1.0000
    loss                0...
    ablation AUC [all]  0...
    """
    rows = _summary_rows(as_dataset(analysis, "summary_table"), per_site=per_site)
    if not rows:
        return "(no summary measures in this analysis)"
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _attr_rows(attrs: dict[str, Any]) -> list[tuple[str, str]]:
    """Attrs flattened one level (``parameters.seed``), values as text."""

    def text(value: Any) -> str:
        if isinstance(value, str):
            return value
        try:
            return json.dumps(value, default=str)
        except (TypeError, ValueError):
            return repr(value)

    rows: list[tuple[str, str]] = []
    for key, value in attrs.items():
        if isinstance(value, dict):
            rows += [(f"{key}.{k}", text(v)) for k, v in value.items()]
        else:
            rows.append((str(key), text(value)))
    return rows


def _table(rows: list[tuple[str, str]], css_class: str) -> str:
    cells = "\n".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in rows
    )
    return f'<table class="{css_class}">\n{cells}\n</table>'


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f4f4f4; font-weight: normal; }
td { font-family: ui-monospace, monospace; word-break: break-all; }
figure { margin: 1.5em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _html(ds: xr.Dataset, images: dict[str, bytes]) -> str:
    model = ds.attrs.get("model")
    title = "directionkit report" + (f": {model}" if isinstance(model, str) else "")
    figures = "\n".join(
        f'<figure id="{html.escape(name)}">\n<h3>{html.escape(name)}</h3>\n'
        f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode("ascii")}">\n'
        f"<figcaption>{html.escape(_CAPTIONS.get(name, ''))}</figcaption>\n</figure>"
        for name, png in images.items()
    )
    summary = _summary_rows(ds)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Summary</h2>
{_table(summary, "summary") if summary else "<p>No summary measures in this analysis.</p>"}
<h2>Figures</h2>
{figures or "<p>No figures: the analysis has none of the variables they need.</p>"}
<h2>Provenance</h2>
{_table(_attr_rows(dict(ds.attrs)), "provenance")}
<p>Written by directionkit {html.escape(str(ds.attrs.get(VERSION_ATTR, "")))}.</p>
</body>
</html>
"""


def write_report(
    analysis_or_path: Analysis | xr.Dataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write the figures of an analysis as PNG files and a self-contained ``report.html``.

    The folder is built under a temporary name beside ``out_dir`` and renamed into
    place when complete, so ``out_dir`` never holds a half-written report; on any
    error nothing is left behind and an existing ``out_dir`` is untouched.

    Parameters
    ----------
    analysis_or_path : Analysis, xarray.Dataset, str or path-like
        The analysis, or the path of a store written by :meth:`Analysis.save`.
    out_dir : str or path-like
        The folder to create; its parent must exist.  It holds ``<figure>.png`` for
        each figure of :func:`directionkit.plots.plot_analysis` and ``report.html``
        (summary table, figures embedded as base64 ``data:`` URIs, and the
        provenance: model and data fingerprints and every parameter from the attrs).
    overwrite : bool
        Replace an existing ``out_dir`` (the whole folder) once the new report is
        complete.  Without it an existing ``out_dir`` is a :class:`StoreError`.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    directionkit.errors.StoreError
        ``out_dir`` exists and ``overwrite`` is false, its parent folder is missing,
        or ``analysis_or_path`` is not a readable store.

    Examples
    --------
    >>> import tempfile, directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_report(result, f"{tmp}/report")
    ...     sorted(p.name for p in out.iterdir())
    ['report.html', 'selectivity_by_depth.png', 'selectivity_histograms.png']
    """
    check_writable(out_dir, overwrite=overwrite)  # fail before reading or drawing anything
    if isinstance(analysis_or_path, str | os.PathLike):
        ds = open_store(analysis_or_path).dataset
    else:
        ds = as_dataset(analysis_or_path, "write_report")
    with atomic_directory(out_dir, overwrite=overwrite) as temporary:
        temporary.mkdir()
        images: dict[str, bytes] = {}
        for name, figure in plot_analysis(ds).items():
            path = temporary / f"{name}.png"
            figure.savefig(path, format="png", dpi=_DPI)
            images[name] = path.read_bytes()
        (temporary / "report.html").write_text(_html(ds, images), encoding="utf-8")
    return Path(out_dir)
