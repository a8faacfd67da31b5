"""A report of an analysis: its figures (PNG at print resolution and/or SVG) and one HTML page.

:func:`write_report` writes a folder holding one PNG (and/or SVG) per figure of
:func:`directionkit.report.plots.plot_analysis` and ``report.html``, whose images are
embedded as ``data:`` URIs so that the HTML file alone is the whole report.
:func:`summary_table` is the same summary as plain text, for a terminal.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xarray as xr

from directionkit._utils.choices import FORMATS
from directionkit._utils.validation import check_choice, parameter_error
from directionkit.report._compare import compare
from directionkit.report._drawing import as_dataset
from directionkit.report._figures import plot_analysis, population_ablation_curves
from directionkit.report._summary import (
    data_description,
    html_table,
    population_html,
    short_identity,
    summary_rows,
    summary_text,
)
from directionkit.results import (
    VERSION_ATTR,
    atomic_directory,
    check_writable,
    population_dims,
    read_analysis,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from directionkit.report._compare import Comparison
    from directionkit.results import HoldsDataset

#: What a report of a store of one experiment of the paper adds: ``(label, text)`` rows
#: (the claim, the statistic, the rule and its verdict) and the experiment's figures.
#: :func:`directionkit.paper.describe_experiment` is one; the CLI's ``report`` passes it.
Describe = Callable[[xr.Dataset], tuple[list[tuple[str, str]], dict[str, "Figure"]]]

__all__ = ["FORMATS", "PRINT_DPI", "summary_table", "write_comparison_report", "write_report"]

#: Resolution of the PNG figures (print quality); the HTML page shows them at screen size.
PRINT_DPI = 300
_SCREEN_DPI = 100
#: What ``write_report(..., format=...)`` accepts.
_CAPTIONS = {
    "ablation_curves_per_model": "Each model's cumulative ablation curve (mean over "
    "orderings); a model not clearly above chance is dashed grey: its flat curve is no sign "
    "of robustness.",
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


def summary_table(analysis: HoldsDataset | xr.Dataset, *, per_site: bool = True) -> str:
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
    accuracy                1.0000
    chance accuracy         0.4833
    loss                    0...
    ablation AUC [all]      0...
    AUC above chance [all]  -0...
    """
    ds = as_dataset(analysis, "summary_table")
    return summary_text(ds, per_site=per_site, identity=False)


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


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f4f4f4; font-weight: normal; }
td { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
td, th { white-space: normal; } .wide { overflow-x: auto; }
figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _figure_html(name: str, mime: str, data: bytes, width: float, caption: str) -> str:
    """One figure of a report page: the image embedded as a ``data:`` URI, and its caption."""
    return (
        f'<figure id="{html.escape(name)}">\n<h3>{html.escape(name)}</h3>\n'
        f'<img alt="{html.escape(name)}" width="{round(width)}" src="data:{mime};base64,'
        f'{base64.b64encode(data).decode("ascii")}">\n'
        f"<figcaption>{html.escape(caption)}</figcaption>\n</figure>"
    )


def _page(title: str, body: str) -> str:
    """A self-contained HTML page: ``title`` as its title and first heading, then ``body``."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
{body}
</body>
</html>
"""


def _html(
    ds: xr.Dataset, images: dict[str, tuple[str, bytes, float]], rows: list[tuple[str, str]]
) -> str:
    model = ds.attrs.get("model")
    experiment = ds.attrs.get("experiment")
    title = "directionkit report" + (
        f": {short_identity(model)}" if isinstance(model, str)
        else f": experiment {experiment}" if isinstance(experiment, str) else ""
    )  # fmt: skip
    figures = "\n".join(
        _figure_html(name, mime, data, width, _CAPTIONS.get(name, ""))
        for name, (mime, data, width) in images.items()
    )
    described = data_description(ds)
    summary = ([("data", described)] if described is not None else []) + summary_rows(ds)
    summary = rows + summary
    return _page(title, f"""<h2>Summary</h2>
{html_table(summary, "summary") if summary else "<p>No summary measures in this analysis.</p>"}
{population_html(ds)}
<h2>Figures</h2>
{figures or "<p>No figures: the analysis has none of the variables they need.</p>"}
<h2>Provenance</h2>
{html_table(_attr_rows(dict(ds.attrs)), "provenance")}
<p>Written by directionkit {html.escape(str(ds.attrs.get(VERSION_ATTR, "")))}.</p>""")


def write_report(
    analysis_or_path: HoldsDataset | xr.Dataset | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    format: str = "png",
    describe: Describe | None = None,
) -> Path:
    """Write the figures of an analysis (PNG and/or SVG) and a self-contained ``report.html``.

    The folder is built under a temporary name beside ``out_dir`` and renamed into
    place when complete, so ``out_dir`` never holds a half-written report; on any
    error nothing is left behind and an existing ``out_dir`` is untouched.

    Parameters
    ----------
    analysis_or_path : Analysis, xarray.Dataset, str or path-like
        The analysis, or the path of a store written by :meth:`Analysis.save`.
    out_dir : str or path-like
        The folder to create; its parent must exist.  It holds ``<figure>.png`` (at
        :data:`PRINT_DPI`) and/or ``<figure>.svg`` for each figure of
        :func:`directionkit.report.plots.plot_analysis`, and ``report.html`` (summary table
        naming the data set, split and number of examples; figures embedded as base64
        ``data:`` URIs; and the provenance: model and data fingerprints and every
        parameter from the attrs).
    overwrite : bool
        Replace an existing ``out_dir`` (the whole folder) once the new report is
        complete.  Without it an existing ``out_dir`` is a :class:`StoreError`.
    format : {"png", "svg", "both"}
        The figure files to write.  The HTML page embeds the PNG, or the SVG when only
        SVG is written.
    describe : callable, optional
        For the store of one experiment of the paper (attrs ``experiment``): what the
        report shows instead of an analysis' figures, ``describe(dataset) -> (rows,
        figures)`` (:func:`directionkit.paper.describe_experiment`, which ``directionkit
        report`` passes).  Required for such a store.  For a population (a sweep's
        root) it is optional and adds its rows and figures to the per-model curves
        (``directionkit report`` passes :func:`directionkit.population.describe_sweep`:
        the measures ranked by how well they predict the generalization gap); ignored
        for an analysis.

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Raises
    ------
    directionkit.errors.StoreError
        ``out_dir`` exists and ``overwrite`` is false, its parent folder is missing,
        or ``analysis_or_path`` is not a readable store.
    directionkit.errors.InvalidParameterError
        ``format`` is not one of :data:`FORMATS`, or the store is an experiment's and
        ``describe`` is not given.

    Examples
    --------
    >>> import tempfile, directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> result = dk.analyze(net, (X, y), metrics=["statistics"], progress=False)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     out = write_report(result, f"{tmp}/report")
    ...     sorted(p.name for p in out.iterdir())  # and .directionkit, its owner's mark
    ['.directionkit', 'report.html', 'selectivity_by_depth.png', 'selectivity_histograms.png']
    """
    check_choice(format, "format", "write_report", FORMATS)
    check_writable(out_dir, overwrite=overwrite)  # fail before reading or drawing anything
    if isinstance(analysis_or_path, str | os.PathLike):
        ds = read_analysis(analysis_or_path)
    else:
        ds = as_dataset(analysis_or_path, "write_report")
    rows, figures = _described(ds, describe)
    with atomic_directory(out_dir, overwrite=overwrite, kind="report") as temporary:
        images = {
            name: _save_figure(figure, temporary / name, format)
            for name, figure in figures.items()
        }
        (temporary / "report.html").write_text(_html(ds, images, rows), encoding="utf-8")
    return Path(out_dir)


def _described(
    ds: xr.Dataset, describe: Describe | None
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The rows and figures of a report of ``ds``: an experiment's own (``describe``);
    none for another population (a sweep's root: its models' analyses are in its
    ``units`` groups) but each model's ablation curve; else the analysis' figures."""
    experiment = ds.attrs.get("experiment")
    if experiment is not None:
        if describe is None:
            raise parameter_error(
                "describe", "write_report",
                "a callable giving the rows and figures of a store of the paper's "
                f"experiment {experiment!r} (directionkit.paper.describe_experiment; the "
                "command line's report passes it)", describe,
            )  # fmt: skip
        return describe(ds)
    if population_dims(ds):
        rows, figures = ([], {}) if describe is None else describe(ds)
        if "ablation_accuracy" in ds.data_vars and ds["ablation_accuracy"].dims == (
            "model", "scope", "ordering", "fraction"
        ):
            figures = {"ablation_curves_per_model": population_ablation_curves(ds), **figures}
        return rows, figures
    return [], plot_analysis(ds)


def _save_figure(figure: Any, stem: Path, format: str) -> tuple[str, bytes, float]:
    """Save ``figure`` as ``stem.png`` and/or ``stem.svg``; what the page embeds.

    Returns the MIME type and bytes of the file to embed (the PNG, or the SVG when only
    SVG is written) and the figure's width in screen pixels.
    """
    suffixes = ("png", "svg") if format == "both" else (format,)
    for suffix in suffixes:
        figure.savefig(stem.with_name(f"{stem.name}.{suffix}"), format=suffix, dpi=PRINT_DPI)
    mime = "image/png" if "png" in suffixes else "image/svg+xml"
    embedded = stem.with_name(f"{stem.name}.{suffixes[0]}").read_bytes()
    return mime, embedded, figure.get_figwidth() * _SCREEN_DPI  # shown at screen size


# -- several analyses: directionkit report A.zarr B.zarr ... ------------------------------
_COMPARISON_CAPTIONS = {
    "ablation_curves": "Cumulative ablation curves of every model (mean ± sd over orderings); "
    "the legend gives each model's normalised AUC.",
    "noise_curves": "Accuracy as noise scaled by each unit's training-set sd is added to every "
    "unit (mean ± sd over repeats).",
    "selectivity": "Class selectivity over all units of each model (density, shared bins).",
    "mutual_info": "Mutual information between unit activity and class, over all units of "
    "each model (density, shared bins).",
}


def _markdown_table_html(markdown: str) -> str:
    """A markdown table (as :meth:`Comparison.auc_table` writes it) as an HTML table."""
    lines = [line.strip().strip("|").split("|") for line in markdown.splitlines()]
    header, body = lines[0], lines[2:]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in header)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>"
        for row in body
    )
    return f'<table class="comparison">\n<tr>{head}</tr>\n{rows}\n</table>'


#: Training-config fields that only one kind of reference model uses (TrainConfig's docs).
_MODEL_FIELDS = {
    "mlp": ("hidden", "dropout", "standardize"),
    "convnet": ("batch_norm", "width"),
    "resnet": ("width", "blocks"),
}


def _relevant(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the fields of the other kinds of model (an MLP has no ``width``)."""
    kind = config.get("model")
    if kind not in _MODEL_FIELDS:
        return config
    others = {f for k, fields in _MODEL_FIELDS.items() if k != kind for f in fields}
    return {k: v for k, v in config.items() if k not in others or k in _MODEL_FIELDS[kind]}


def _config_table(comparison: Comparison) -> str:
    """The models' training configs (``attrs["run_config"]``): the settings they share as
    one line, then a table of the settings that differ, one row per setting, one column
    per model (so that the page stays as wide as the number of models, not of fields)."""
    configs = {
        label: _relevant(ds.attrs["run_config"])
        for label, ds in comparison.analyses.items()
        if isinstance(ds.attrs.get("run_config"), dict)
    }
    if not configs:
        return "<p>No training configs recorded (analyses of run directories record them).</p>"

    def text(config: dict[str, Any], key: str) -> str:
        return json.dumps(config[key], default=str) if key in config else "—"

    keys = list(dict.fromkeys(k for c in configs.values() for k in c))
    differ = [k for k in keys if len({text(c, k) for c in configs.values()}) > 1]
    shared = ", ".join(
        f"{k} = {text(next(iter(configs.values())), k)}" for k in keys if k not in differ
    )
    parts = []
    if shared:
        parts.append(f'<p class="shared">Shared by every model: {html.escape(shared)}.</p>')
    if differ:
        head = "<th>setting</th>" + "".join(f"<th>{html.escape(m)}</th>" for m in configs)
        rows = "\n".join(
            f"<tr><th>{html.escape(k)}</th>"
            + "".join(f"<td>{html.escape(text(c, k))}</td>" for c in configs.values())
            + "</tr>"
            for k in differ
        )
        parts.append(
            f'<div class="wide"><table class="configs">\n<tr>{head}</tr>\n{rows}\n</table></div>'
        )
    return "\n".join(parts)


def write_comparison_report(
    analyses: Mapping[str, HoldsDataset | xr.Dataset | str | os.PathLike[str]]
    | Sequence[HoldsDataset | xr.Dataset | str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    by: str | None = None,
    overwrite: bool = False,
    format: str = "png",
) -> Path:
    """Write overlaid figures of several analyses (PNG and/or SVG) and one ``report.html``.

    The comparison of :func:`directionkit.compare`: ablation curves with bands, noise
    curves, selectivity and mutual-information distributions, a table of accuracy
    and AUC per model, and each model's training config.  Written atomically, as
    :func:`write_report`.

    Parameters
    ----------
    analyses : mapping or sequence
        As for :func:`directionkit.compare` (analyses, datasets or store paths).
    out_dir : str or path-like
        The folder to create (its parent must exist).
    by : str, optional
        The ``run_config`` key to label and order the models by (e.g. ``"corruption"``).
    overwrite : bool
        Replace an existing ``out_dir``.
    format : {"png", "svg", "both"}
        The figure files to write, as for :func:`write_report`.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Examples
    --------
    >>> import tempfile, directionkit as dk
    >>> from directionkit.testing import example_model
    >>> net, X, y = example_model()
    >>> runs = {f"seed {s}": dk.analyze(net, (X, y), orderings=2, fractions=5, seed=s,
    ...                                 progress=False) for s in (0, 1)}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     page = write_comparison_report(runs, f"{tmp}/report")
    ...     sorted(p.name for p in page.parent.iterdir())  # .directionkit: directionkit's
    ['.directionkit', 'ablation_curves.png', 'mutual_info.png', 'report.html', 'selectivity.png']
    """
    check_choice(format, "format", "write_comparison_report", FORMATS)
    check_writable(out_dir, overwrite=overwrite)
    comparison = compare(analyses, by=by)
    with atomic_directory(out_dir, overwrite=overwrite, kind="report") as temporary:
        figures = []
        for name, figure in comparison.figures().items():
            mime, embedded, width = _save_figure(figure, temporary / name, format)
            caption = _COMPARISON_CAPTIONS.get(name.split("_curves_")[0] + "_curves"
                                               if "_curves_" in name else name, "")
            figures.append(_figure_html(name, mime, embedded, width, caption))
        title = f"directionkit comparison of {len(comparison.analyses)} models" + (
            f" by {by}" if by else ""
        )
        page = _page(title, f"""<h2>Summary</h2>
{_markdown_table_html(comparison.auc_table())}
<h2>Figures</h2>
{chr(10).join(figures) or "<p>No figures: the analyses have none of the variables.</p>"}
<h2>Training configs</h2>
{_config_table(comparison)}""")
        (temporary / "report.html").write_text(page, encoding="utf-8")
    return Path(out_dir) / "report.html"
