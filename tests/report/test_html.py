"""The report: PNG figures and a self-contained, escaped HTML page, written atomically."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import InvalidDataError, InvalidParameterError, StoreError
from directionkit.report import _html, summary_table, write_report
from tests.report.test_plots import ALL_FIGURES, digits_analysis

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result() -> dk.Analysis:
    return digits_analysis()


def summary_section(page: str) -> str:
    match = re.search(r'<table class="summary">.*?</table>', page, re.DOTALL)
    assert match is not None
    return match.group(0)


def test_report_writes_a_png_per_figure_and_a_self_contained_page(
    result: dk.Analysis, tmp_path: Path
) -> None:
    out = write_report(result, tmp_path / "report")
    assert out == tmp_path / "report"
    assert sorted(p.name for p in out.iterdir() if p.name != ".directionkit") == sorted(
        [f"{name}.png" for name in ALL_FIGURES] + ["report.html"]
    )
    page = (out / "report.html").read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(ALL_FIGURES)
    for name, data in zip(ALL_FIGURES, embedded, strict=True):
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(PNG_SIGNATURE) and len(png) > 5000
        assert base64.b64decode(data) == png  # the page alone holds every figure
    accuracy = float(result["accuracy"])
    assert f"<th>accuracy</th><td>{accuracy:.4f}</td>" in page
    assert result.attrs["data"] in page  # data fingerprint
    assert "<th>parameters.orderings</th><td>3</td>" in page
    assert 'src="http' not in page and "<script" not in page


def test_summary_table_lists_the_paper_measures(result: dk.Analysis) -> None:
    table = summary_table(result)
    lines = table.splitlines()
    assert lines[0].split() == ["accuracy", f"{float(result['accuracy']):.4f}"]
    auc = float(result["ablation_auc"].sel(scope="last:1"))
    assert "ablation AUC [last:1]" in table and f"{auc:.4f}" in table
    rho = dk.spearman(result["selectivity"], result["importance_loss"])["rho"]
    row = next(line for line in lines if "importance_loss) [hidden1 · " in line)
    assert row.split()[-3] == f"{float(rho[2]):+.3f}"
    assert "mean selectivity [hidden0 · " in table
    overall = summary_table(result, per_site=False)
    assert "mean selectivity [all]" in overall and "mean selectivity [hidden0" not in overall
    assert "importance_loss) [hidden0]" not in overall
    assert summary_table(xr.Dataset()) == "(no summary measures in this analysis)"


def test_an_existing_out_dir_is_refused_and_left_untouched(
    result: dk.Analysis, tmp_path: Path
) -> None:
    result = dk.Analysis(result.dataset[["accuracy", "selectivity"]])  # two figures: fast
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match=re.escape(str(out))):
        write_report(result, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary left
    with pytest.raises(StoreError, match="Refusing to replace"):  # not a report: kept
        write_report(result, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    write_report(result, out, overwrite=True)  # an empty folder
    write_report(result, out, overwrite=True)  # a report directionkit wrote
    assert (out / "report.html").is_file()


def test_a_failure_while_drawing_leaves_nothing_behind(
    result: dk.Analysis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(_html, "plot_analysis", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_report(result, tmp_path / "report")
    assert list(tmp_path.iterdir()) == []


def test_strings_from_attrs_and_coordinates_are_escaped(
    result: dk.Analysis, tmp_path: Path
) -> None:
    ds = result.dataset[["selectivity", "weight_l1"]]  # escaping needs no more figures
    ds.attrs = dict(result.attrs)
    ds.attrs["model"] = "<script>alert('model')</script>"
    ds.attrs["parameters"] = {**ds.attrs["parameters"], "note": '"><img src=x onerror=alert(1)>'}
    ds = ds.assign_coords(site=("unit", ["<b>fc</b>"] * 16 + ["hidden1"] * 12))
    page = (write_report(ds, tmp_path / "report") / "report.html").read_text(encoding="utf-8")
    assert "<script" not in page and "<img src=x" not in page and "<b>fc" not in page
    assert "&lt;script&gt;alert(&#x27;model&#x27;)&lt;/script&gt;" in page
    assert "mean selectivity [&lt;b&gt;fc&lt;/b&gt;]" in page


def test_a_saved_store_gives_the_same_report_table(result: dk.Analysis, tmp_path: Path) -> None:
    store = result.save(tmp_path / "run.zarr")
    reopened = dk.open(store)
    assert summary_table(reopened) == summary_table(result)
    from_path = write_report(store, tmp_path / "from_path") / "report.html"
    in_memory = write_report(result, tmp_path / "in_memory") / "report.html"
    assert summary_section(from_path.read_text()) == summary_section(in_memory.read_text())
    assert sorted(p.name for p in from_path.parent.iterdir()) == sorted(
        p.name for p in in_memory.parent.iterdir()
    )


def test_a_partial_analysis_gets_a_partial_report(tmp_path: Path) -> None:
    ds = xr.Dataset(
        {"selectivity": ("unit", [0.2, 0.8, 0.5]), "accuracy": 0.9},
        coords={"site": ("unit", ["a", "a", "b"]), "unit_index": ("unit", [0, 1, 0])},
    )
    out = write_report(ds, tmp_path / "report")
    assert sorted(p.name for p in out.iterdir() if p.name != ".directionkit") == [
        "report.html", "selectivity_by_depth.png", "selectivity_histograms.png",
    ]  # fmt: skip
    assert summary_table(ds).splitlines() == [
        "accuracy                0.9000",
        "mean selectivity [all]  0.5000",
        "mean selectivity [a]    0.5000",
        "mean selectivity [b]    0.5000",
    ]
    empty = write_report(xr.Dataset(), tmp_path / "empty") / "report.html"
    assert "No figures" in empty.read_text()


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such folder"):
        write_report(tmp_path / "missing.zarr", tmp_path / "report")
    with pytest.raises(InvalidDataError, match="write_report needs"):
        write_report(42, tmp_path / "report")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="does not exist"):
        write_report(xr.Dataset(), tmp_path / "no" / "report")
    assert list(tmp_path.iterdir()) == []


def test_the_page_title_shows_a_short_digest_and_the_provenance_the_full_one(
    result: dk.Analysis, tmp_path: Path
) -> None:
    ds = result.dataset[["accuracy", "selectivity"]]
    digest = "9f" * 32
    ds.attrs = {**result.attrs, "model": f"model.onnx sha256:{digest}"}
    page = (write_report(ds, tmp_path / "report") / "report.html").read_text(encoding="utf-8")
    title = re.search(r"<h1>(.*?)</h1>", page, re.DOTALL)
    assert (
        title is not None
        and title.group(1) == "directionkit report: model.onnx sha256:9f9f9f9f9f9f…"
    )
    assert re.search(r"<title>[^<]*…</title>", page)
    assert f"<th>model</th><td>model.onnx sha256:{digest}</td>" in page  # provenance: whole


def test_the_summary_names_the_data_split_and_number_of_examples(
    result: dk.Analysis, tmp_path: Path
) -> None:
    ds = result.dataset[["accuracy", "selectivity"]]
    ds.attrs = {**result.attrs, "dataset": "digits", "split": "train"}
    page = (write_report(ds, tmp_path / "report") / "report.html").read_text(encoding="utf-8")
    assert "<tr><th>data</th><td>digits, train split, 300 examples</td></tr>" in summary_section(
        page
    )


def test_figures_are_written_at_print_resolution_and_as_svg(
    result: dk.Analysis, tmp_path: Path
) -> None:
    from xml.etree import ElementTree

    from PIL import Image

    ds = result.dataset[["accuracy", "selectivity"]]  # two figures: fast
    figures = ds.pipe(dk.Analysis).plot()
    both = write_report(ds, tmp_path / "both", format="both")
    assert sorted(p.name for p in both.iterdir() if p.name != ".directionkit") == sorted(
        [f"{n}.{s}" for n in figures for s in ("png", "svg")] + ["report.html"]
    )
    for name, figure in figures.items():
        with Image.open(both / f"{name}.png") as png:
            assert png.size == (
                round(figure.get_figwidth() * 300),
                round(figure.get_figheight() * 300),
            )
        assert ElementTree.parse(both / f"{name}.svg").getroot().tag.endswith("svg")
    svg_only = write_report(ds, tmp_path / "svg", format="svg")
    assert not list(svg_only.glob("*.png"))
    page = (svg_only / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/svg+xml;base64,') == len(figures)
    with pytest.raises(InvalidParameterError, match="'format' parameter of write_report"):
        write_report(ds, tmp_path / "pdf", format="pdf")
    assert not (tmp_path / "pdf").exists()


def _experiment_store() -> xr.Dataset:
    return xr.Dataset(
        {"ablation_auc": ("model", [0.4, 0.6])},
        coords={"model": ["a", "b"]},
        attrs={"experiment": "depth", "directionkit_version": "test"},
    )


def test_an_experiment_store_without_its_description_is_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    """The report floor does not know the paper's experiments: it is told (``describe``),
    and an experiment's store is never drawn as if it were one analysis."""
    refused = r"'describe' parameter of write_report.*'depth'"
    with pytest.raises(InvalidParameterError, match=refused):
        write_report(_experiment_store(), tmp_path / "report")
    assert list(tmp_path.iterdir()) == []


def test_an_experiment_store_is_reported_with_the_rows_and_figures_it_is_given(
    tmp_path: Path,
) -> None:
    seen = []

    def describe(ds: xr.Dataset) -> tuple[list[tuple[str, str]], dict[str, object]]:
        seen.append(ds.attrs["experiment"])
        return [("verdict", "reproduced <b>here</b>")], {}

    out = write_report(_experiment_store(), tmp_path / "report", describe=describe)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert seen == ["depth"]
    assert "reproduced &lt;b&gt;here&lt;/b&gt;" in page  # escaped, as every row
    assert sorted(p.name for p in out.iterdir()) == [".directionkit", "report.html"]


def test_the_command_lines_report_describes_a_stored_experiment(tmp_path: Path) -> None:
    """``directionkit report`` passes the paper's description: the committed depth
    experiment's report carries its claim, rule and verdict rows."""
    from directionkit.cli import main

    store = Path(__file__).resolve().parents[2] / "docs/results/fashion-mnist/depth/depth.zarr"
    assert main(["report", str(store), "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    for label in ("experiment", "claim", "rule", "verdict"):
        assert f"<th>{label}</th>" in page or f">{label}<" in page, label
