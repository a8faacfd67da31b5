"""The paper's experiments at toy scale: outputs, verdicts from stored numbers, reuse.

One toy ``reproduce`` of every experiment is shared by the module (tiny networks, one or
two epochs, a few hundred digits), so each test only reads what it wrote.  The rules are
checked on hand-made numbers both ways, and the statistics against independent
computations (scipy, numpy loops) on the stored numbers.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import spearmanr

pytest.importorskip("torch")

from directionkit.cli import main
from directionkit.errors import InvalidParameterError
from directionkit.paper import (
    EXPERIMENTS,
    SCALES,
    VERDICTS,
    ExperimentResult,
    Workspace,
    check_verdict,
    reproduce,
    run_experiment,
)
from directionkit.paper._dropout import _dropout_numbers
from directionkit.paper._noise import _noise_robustness
from directionkit.paper._reproduce import _open_workspace, _run

NAMES = list(EXPERIMENTS)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ExperimentResult]]:
    out = tmp_path_factory.mktemp("paper")
    results = reproduce(None, out, scale="toy", device="cpu", progress=False)
    return out, results


def _stored(out: Path, name: str) -> xr.Dataset:
    return xr.open_zarr(out / name / f"{name}.zarr").load()


# ------------------------------------------------------------------ outputs and verdicts
@pytest.mark.parametrize("name", NAMES)
def test_each_experiment_writes_its_store_figures_and_a_verdict(
    toy: tuple[Path, list[ExperimentResult]], name: str
) -> None:
    out, results = toy
    result = {r.name: r for r in results}[name]
    folder = out / name
    assert (folder / f"{name}.zarr").is_dir()
    assert result.figures and all((folder / f).stat().st_size > 1000 for f in result.figures)
    assert result.verdict in VERDICTS
    stored = json.loads((folder / "result.json").read_text())
    assert stored["verdict"] == result.verdict
    assert stored["rule"] == EXPERIMENTS[name].rule.text  # the rule text is stored with it
    assert _stored(out, name).attrs["rule"] == EXPERIMENTS[name].rule.text


@pytest.mark.parametrize("name", NAMES)
def test_verdict_is_the_rule_applied_to_statistics_of_the_stored_numbers(
    toy: tuple[Path, list[ExperimentResult]], name: str
) -> None:
    out, _ = toy
    result = ExperimentResult.read(out / name)
    assert result is not None and check_verdict(result)
    again = json.loads(json.dumps(EXPERIMENTS[name].statistics(_stored(out, name))))
    assert json.dumps(again, sort_keys=True) == json.dumps(result.statistics, sort_keys=True)
    assert EXPERIMENTS[name].rule(again) == result.verdict


def test_a_tampered_verdict_is_caught(toy: tuple[Path, list[ExperimentResult]]) -> None:
    result = ExperimentResult.read(toy[0] / "depth")
    assert result is not None
    other = next(v for v in VERDICTS if v != result.verdict)
    result.verdict = other
    assert not check_verdict(result)


def test_summary_and_report_cover_every_experiment(
    toy: tuple[Path, list[ExperimentResult]],
) -> None:
    out, results = toy
    summary = (out / "SUMMARY.md").read_text()
    page = (out / "report.html").read_text()
    for r in results:
        assert f"| {r.name} (" in summary and f"**{r.verdict}**" in summary
        assert r.rule in summary
        assert f"id='{r.name}'" in page
        # every sub-claim with its interval, and every deviation from the paper's protocol
        assert r.claims and all(line in summary and "95% CI" in line for line in r.claims)
        assert r.deviations and all(f"  - {d}" in summary for d in r.deviations)
        assert all(html.escape(d) in page for d in r.deviations)
        assert r.deviations == EXPERIMENTS[r.name].deviations(SCALES["toy"], "digits")
    assert page.count("data:image/png;base64,") == sum(len(r.figures) for r in results)
    assert "src='http" not in page and 'src="http' not in page  # self-contained


# ------------------------------------------------------------------------------- reuse
def test_a_rerun_redoes_nothing(toy: tuple[Path, list[ExperimentResult]]) -> None:
    out, _ = toy
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    ws = Workspace(out, "toy", device="cpu", progress=False)
    for name in NAMES:
        assert _run(EXPERIMENTS[name], ws).reused
    assert ws.runs_trained == 0 and ws.analyses_computed == 0
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_an_interrupted_experiment_reuses_its_runs_and_analyses(
    toy: tuple[Path, list[ExperimentResult]],
) -> None:
    out, _ = toy
    (out / "batchnorm" / "result.json").unlink()  # as if killed before the result was written
    ws = Workspace(out, "toy", device="cpu", progress=False)
    result = _run(EXPERIMENTS["batchnorm"], ws)
    assert not result.reused
    assert ws.runs_trained == 0 and ws.analyses_computed == 0
    assert check_verdict(result)


def test_other_parameters_are_not_mistaken_for_finished_work(tmp_path: Path) -> None:
    small = SCALES["toy"]
    first = run_experiment("depth", tmp_path, scale=small, device="cpu", progress=False)
    changed = type(small)(**{**small.__dict__, "conv_epochs": 2})
    ws = Workspace(tmp_path, changed, device="cpu", progress=False)
    second = _run(EXPERIMENTS["depth"], ws)
    assert not first.reused and not second.reused
    assert ws.runs_trained == 1 and ws.analyses_computed == 1
    assert second.key != first.key


# ------------------------------------------------------------- statistics, independently
def test_corruption_statistic_matches_scipy(toy: tuple[Path, list[ExperimentResult]]) -> None:
    out, results = toy
    stored = _stored(out, "corrupted-labels")
    expected = spearmanr(stored["corruption"].values, stored["ablation_auc"].values)[0]
    result = {r.name: r for r in results}["corrupted-labels"]
    assert result.statistics["rho"] == pytest.approx(expected)
    # the AUC is the normalised trapezoid area of the mean stored curve
    curve = stored["ablation_accuracy"].mean("ordering").values
    x = stored["fraction"].values
    auc = [np.trapezoid(c / c[0], x) for c in curve]
    np.testing.assert_allclose(stored["ablation_auc"].values, auc, rtol=1e-6)


def test_ensemble_generalisation_error_comes_from_the_training_history(
    toy: tuple[Path, list[ExperimentResult]],
) -> None:
    out, _ = toy
    stored = _stored(out, "ensemble")
    configs = {
        run: json.loads((run / "config.json").read_text())
        for run in (out / "runs").glob("mlp-ensemble-*")
    }
    assert {c["corruption"] for c in configs.values()} == {0.0}  # true labels, seeds only
    assert len({c["seed"] for c in configs.values()}) == len(configs) == stored.sizes["model"]
    for gap, epoch, seed in zip(
        stored["generalisation_error"].values, stored["epoch"].values, stored["seed"].values,
        strict=True,
    ):  # fmt: skip
        (run,) = [r for r, c in configs.items() if c["seed"] == seed]
        history = xr.open_zarr(run / "history.zarr").load().sel(epoch=int(epoch))
        expected = float(history["train_accuracy"]) - float(history["test_accuracy"])
        assert gap == pytest.approx(expected)


def test_dropout_numbers_of_a_hand_made_curve() -> None:
    fractions = np.linspace(0, 1, 11)
    flat_then_linear = np.where(fractions <= 0.2, 1.0, 1.0 - (fractions - 0.2) / 0.8 * 0.9)
    stored = xr.Dataset(
        {"ablation_accuracy": (("model", "ordering", "fraction"), flat_then_linear[None, None])},
        coords={"fraction": fractions, "dropout": ("model", [0.2])},
    )
    numbers = _dropout_numbers(stored)
    assert numbers["lost"][0] == pytest.approx(0.0)
    assert numbers["beyond"][0] == pytest.approx(0.55)  # mean of a line from 1.0 down to 0.1
    assert numbers["before"][0] == pytest.approx(0.0, abs=1e-12)  # flat up to the fraction
    assert numbers["after"][0] == pytest.approx(-0.9 / 0.8)  # then the line's slope


def test_noise_robustness_is_the_mean_relative_accuracy_over_positive_scales() -> None:
    stored = xr.Dataset(
        {"noise_accuracy": (("model", "repeat", "noise_scale"),
                            [[[0.8, 0.8, 0.4], [0.8, 0.6, 0.2]]]),
         "accuracy": ("model", [0.8])},
        coords={"noise_scale": [0.0, 1.0, 10.0]},
    )  # fmt: skip
    assert _noise_robustness(stored)[0] == pytest.approx(((0.7 / 0.8) + (0.3 / 0.8)) / 2)


# ---------------------------------------------------------------------- bad input, CLI
def test_bad_arguments_name_the_value_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="'name' parameter of run_experiment"):
        run_experiment("fig1", tmp_path)
    with pytest.raises(InvalidParameterError, match=r"'scale' parameter.*Got 'huge'"):
        run_experiment("depth", tmp_path, scale="huge")
    with pytest.raises(InvalidParameterError, match=r"'dataset' parameter.*'mnist'"):
        reproduce(["depth"], tmp_path, dataset="mnist")
    with pytest.raises(InvalidParameterError, match="'experiments' parameter"):
        reproduce("depth", tmp_path)
    assert not os.listdir(tmp_path)


def test_cli_refuses_an_unknown_experiment(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["reproduce", "fig9", "--out", str(tmp_path / "out")]) == 2
    assert "'fig9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- scales
def test_cli_scale_names_are_the_presets() -> None:
    from directionkit.cli._parser import _EXPERIMENT_NAMES, _SCALE_NAMES

    assert set(_SCALE_NAMES) == set(SCALES)
    assert _EXPERIMENT_NAMES == tuple(EXPERIMENTS)  # --help names every experiment, in order


def test_cli_scale_cpu_runs_on_fashion_mnist_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import directionkit.paper as paper

    calls: list[tuple[object, dict]] = []  # type: ignore[type-arg]

    def fake(experiments: object, out: object, **options: object) -> list[ExperimentResult]:
        calls.append((experiments, options))
        return []

    monkeypatch.setattr(paper, "reproduce", fake)
    assert main(["reproduce", "depth", "--scale", "cpu", "--out", str(tmp_path)]) == 0
    assert calls[0][0] == ["depth"] and calls[0][1]["scale"] == "cpu"
    with pytest.raises(SystemExit):  # one scale at a time
        main(["reproduce", "--quick", "--scale", "cpu", "--out", str(tmp_path)])
    cpu = SCALES["cpu"]
    ws = _open_workspace(tmp_path / "ws", "cpu", None, None, "cpu", False, "reproduce")
    assert ws.dataset == "fashion-mnist" and ws.scale is cpu
    assert cpu.train_limit is not None and cpu.conv_train_limit is not None
    assert cpu.conv_train_limit <= cpu.train_limit


def test_conv_train_limit_caps_the_convnets_training_images(tmp_path: Path) -> None:
    import dataclasses

    scale = dataclasses.replace(SCALES["toy"], name="toy-conv", conv_train_limit=120)
    result = run_experiment("l1", tmp_path, scale=scale, device="cpu", progress=False)
    configs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*/config.json")]
    assert configs and all(c["model"] == "convnet" for c in configs)
    assert {c["train_limit"] for c in configs} == {120}
    assert "120 training images" in result.population


# ------------------------------------------------------------- every store opens and shows
@pytest.mark.parametrize("name", NAMES)
def test_every_experiment_store_opens_shows_its_verdict_and_reports(
    toy: tuple[Path, list[ExperimentResult]],
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import directionkit as dk

    out, _ = toy
    result = ExperimentResult.read(out / name)
    assert result is not None
    opened = dk.open(out / name)  # the experiment's folder stands for its store
    xr.testing.assert_identical(opened.dataset, dk.open(out / name / f"{name}.zarr").dataset)
    assert opened.population == tuple(d for d in ("model", "epoch") if d in opened.dataset.dims)
    assert main(["show", str(out / name)]) == 0
    shown = capsys.readouterr().out
    lines = dict(
        (line.split("  ", 1)[0], line.split("  ", 1)[1].strip())
        for line in shown.splitlines()
        if "  " in line
    )
    assert lines["verdict"] == result.verdict  # the rule applied to the stored numbers
    statistic_rows = [line for line in shown.splitlines() if line.startswith("statistic ")]
    assert [row.split(None, 1)[1] for row in statistic_rows] == result.claims
    assert sum(line.startswith("deviation ") for line in shown.splitlines()) == len(
        result.deviations
    )
    assert lines["ours"] == result.summary and lines["rule"] == result.rule
    if opened.population:  # one row per model or checkpoint
        members = opened.dataset[opened.population[0]].values
        assert all(any(line.startswith(str(m)) for line in shown.splitlines()) for m in members)
    if "accuracy" in opened and opened.population == ("model",):  # chance beside accuracy
        assert "near_chance" in opened and "chance_accuracy" in opened
        rows = {line.split()[0]: line for line in shown.splitlines() if line.strip()}
        for model, flag in zip(members, opened["near_chance"].values, strict=True):
            assert rows[str(model)].endswith("near chance") == bool(flag), rows[str(model)]
    assert main(["report", str(out / name / f"{name}.zarr"), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"<tr><th>verdict</th><td>{result.verdict}</td></tr>" in page
    assert page.count("data:image/png;base64,") == len(result.figures)


def test_show_of_the_reproduce_folder_lists_every_verdict(
    toy: tuple[Path, list[ExperimentResult]], capsys: pytest.CaptureFixture[str]
) -> None:
    out, results = toy
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    for r in results:
        (line,) = [s for s in shown if s.split()[0] == r.name]
        assert line.split(None, 1)[1].startswith(f"{r.verdict}  ")


def test_every_store_reproduce_writes_opens_and_shows(
    toy: tuple[Path, list[ExperimentResult]], capsys: pytest.CaptureFixture[str]
) -> None:
    import directionkit as dk

    out, _ = toy
    stores = sorted(out.rglob("*.zarr"))
    kinds = {p.relative_to(out).parts[0] for p in stores}
    assert {"analyses", "runs"} <= kinds and len(stores) > len(NAMES)
    for store in stores:
        dk.open(store)
        assert main(["show", str(store)]) == 0, store
    runs = sorted(p for p in (out / "runs").iterdir() if p.is_dir())
    assert main(["show", str(runs[0])]) == 0  # a run folder stands for its history
    history = xr.open_zarr(runs[0] / "history.zarr")
    shown = capsys.readouterr().out
    assert f"{float(history['train_accuracy'][-1]):.4f}" in shown
