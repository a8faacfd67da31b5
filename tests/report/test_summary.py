"""Results at a glance: the headline numbers of an analysis, checked against plain numpy/scipy."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import spearmanr

import directionkit as dk
from directionkit.report._summary import data_description, short_identity, summary_text
from tests.report.test_plots import digits_analysis


@pytest.fixture(scope="module")
def result() -> dk.Analysis:
    return digits_analysis()


def _value(text: str, label: str) -> str:
    """The value printed after ``label`` (labels are padded; values follow two spaces)."""
    match = re.search(rf"^\s*{re.escape(label)}\s\s+(\S.*)$", text, re.MULTILINE)
    assert match is not None, f"{label!r} not in:\n{text}"
    return match.group(1)


def _check_headline(text: str, result: dk.Analysis) -> None:
    ds = result.dataset
    assert float(_value(text, "accuracy")) == pytest.approx(float(ds["accuracy"]), abs=5e-5)
    for scope in ds["scope"].values:
        label = {"hidden0": "hidden0 · 16 units"}.get(scope, scope)  # sites are described
        # the AUC, recomputed by hand: trapezoid over [0, 1] of the mean curve / accuracy
        curve = ds["ablation_accuracy"].sel(scope=scope).values  # (ordering, fraction)
        f = ds["fraction"].values
        per_ordering = [
            np.sum((c[1:] + c[:-1]) / 2 * np.diff(f)) / float(ds["accuracy"]) for c in curve
        ]
        printed = float(_value(text, f"ablation AUC [{label}]"))
        assert printed == pytest.approx(np.mean(per_ordering), abs=5e-5), scope
    selectivity = ds["selectivity"].values
    printed = float(_value(text, "mean selectivity [all]"))
    assert printed == pytest.approx(sum(selectivity) / len(selectivity), abs=5e-5)
    rho = spearmanr(selectivity, ds["importance_loss"].values).statistic
    printed_rho = _value(text, "Spearman(selectivity, importance_loss) [all]").split()[0]
    assert float(printed_rho) == pytest.approx(rho, abs=5e-4)


def test_repr_gives_the_headline_numbers(result: dk.Analysis) -> None:
    text = repr(result)
    assert text.startswith("<directionkit.Analysis>")
    _check_headline(text, result)
    assert result.attrs["n_examples"] == 300 and "300 examples" in text
    assert "selectivity" in text and "dims:" in text  # the variables are still listed


def test_repr_html_is_a_table_of_the_headline_numbers(result: dk.Analysis) -> None:
    page = result._repr_html_()
    accuracy = float(result["accuracy"])
    assert f"<tr><th>accuracy</th><td>{accuracy:.4f}</td></tr>" in page
    assert "<th>ablation AUC [hidden0 · 16 units]</th>" in page
    assert "<th>Spearman(selectivity, importance_loss) [all]</th>" in page
    assert "<script" not in page


def test_summary_text_of_a_saved_store_matches(result: dk.Analysis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    back = dk.open(result.save(tmp_path / "run.zarr"))
    _check_headline(summary_text(back.dataset, per_site=True), back)
    text = summary_text(back.dataset, per_site=True)
    per_site = _value(text, "mean selectivity [hidden1 · 12 units]")
    hidden1 = back["selectivity"].values[back["site"].values == "hidden1"]
    assert float(per_site) == pytest.approx(hidden1.mean(), abs=5e-5)


def test_data_description_and_short_identity() -> None:
    import xarray as xr

    ds = xr.Dataset(attrs={"dataset": "runs/x", "split": "train", "n_examples": 7})
    assert data_description(ds) == "runs/x, train split, 7 examples"
    digest = "0123456789abcdef" * 4
    assert short_identity(f"model.onnx sha256:{digest}") == "model.onnx sha256:0123456789ab…"
    assert short_identity("no digest here 1234") == "no digest here 1234"
