"""Progress within each experiment: it advances per batch and intervention chunk, to a known
total, and never changes a result."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.errors import InvalidParameterError
from directionkit.experiments import (
    ablation_curve,
    activation_statistics,
    noise_curve,
    unit_importance,
)
from directionkit.experiments._data import Batches
from directionkit.testing import NumpyMLPAdapter

N = 60


@pytest.fixture(scope="module")
def problem() -> tuple[NumpyMLPAdapter, np.ndarray, np.ndarray]:
    net = NumpyMLPAdapter.random(n_in=5, hidden=(12, 9), n_classes=3, seed=0)
    X = np.random.default_rng(1).normal(size=(N, 5))
    return net, X, np.arange(N) % 3  # every class present, for the class means


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        self.calls.append((done, total))

    def check(self, total: int, min_steps: int) -> None:
        done = [d for d, _ in self.calls]
        assert done == sorted(done), "progress went backwards"
        assert self.calls[-1] == (total, total)
        assert all(t == total for _, t in self.calls[-min_steps:])  # the total was known
        assert len({d for d in done if 0 < d < total}) >= min_steps - 1, self.calls


@pytest.mark.parametrize("method", ["general", "incremental"])
def test_ablation_curve_advances_within_one_batch(problem, method: str) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    recorder = Recorder()
    kwargs = {"orderings": 4, "fractions": 11, "method": method, "batch_size": 1000}
    with_progress = ablation_curve(net, (X, y), progress=recorder, **kwargs)
    recorder.check(total=N * 4 * 11, min_steps=4)  # one batch, still at least four steps
    xr.testing.assert_identical(with_progress, ablation_curve(net, (X, y), **kwargs))


def test_mean_ablation_counts_the_pass_for_the_means(problem) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    recorder = Recorder()
    ablation_curve(net, (X, y), orderings=2, fractions=5, ablate_to="mean", method="general",
                   batch_size=25, progress=recorder, train_data=(X, y))  # fmt: skip
    recorder.check(total=N * 2 * 5 + N, min_steps=3)


def test_noise_is_the_same_when_its_rows_run_in_chunks(problem) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    recorder = Recorder()
    scales, repeats = [0.0, 0.5, 1.0, 2.0, 4.0], 8
    curve = noise_curve(net, (X, y), (X, y), scales, repeats, seed=3, batch_size=40,
                        progress=recorder)  # fmt: skip
    recorder.check(total=N + N * len(scales) * repeats, min_steps=6)
    xr.testing.assert_identical(
        curve, noise_curve(net, (X, y), (X, y), scales, repeats, seed=3, batch_size=40)
    )


@pytest.mark.parametrize("method", ["general", "incremental"])
def test_unit_importance_counts_every_unit(problem, method: str) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    recorder = Recorder()
    result = unit_importance(net, (X, y), method=method, batch_size=30, progress=recorder)
    clean = N if method == "general" else 0  # the incremental method has no separate pass
    recorder.check(total=clean + N * (12 + 9), min_steps=4)
    xr.testing.assert_identical(result, unit_importance(net, (X, y), method=method, batch_size=30))


def test_statistics_count_both_passes(problem) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    recorder = Recorder()
    activation_statistics(net, (X, y), batch_size=20, progress=recorder)
    recorder.check(total=2 * N, min_steps=6)


def test_an_iterable_of_unknown_length_reports_no_total(problem) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    batches = [(X[i : i + 20], y[i : i + 20]) for i in range(0, N, 20)]
    recorder = Recorder()
    activation_statistics(net, iter_once(batches), progress=recorder)
    assert recorder.calls[0] == (0, None) and recorder.calls[-1][0] == 2 * N
    assert Batches(batches).n_examples is None
    counted = Batches(batches)
    list(counted)
    assert counted.n_examples == N


class iter_once:
    """A re-iterable list of batches that hides its length."""

    def __init__(self, items: list) -> None:  # type: ignore[type-arg]
        self.items = items

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)


def test_analyze_reports_every_stage_and_a_bar_per_stage(problem, capsys) -> None:  # type: ignore[no-untyped-def]
    net, X, y = problem
    seen: dict[str, list[tuple[int, int | None]]] = {}

    def report(stage: str, done: int, total: int | None) -> None:
        seen.setdefault(stage, []).append((done, total))

    result = dk.analyze(
        net, (X, y), train_data=(X, y), scopes=["all", "hidden1"], orderings=2, fractions=4,
        noise_repeats=2, batch_size=30, progress=report,
    )  # fmt: skip
    assert list(seen) == [
        "accuracy", "statistics", "ablation [all]", "ablation [hidden1]", "importance", "noise",
    ]  # fmt: skip
    assert seen["ablation [all]"][-1] == (N * 2 * 4, N * 2 * 4)
    assert all(calls[-1][0] == calls[-1][1] for calls in seen.values())
    quiet = dk.analyze(
        net, (X, y), train_data=(X, y), scopes=["all", "hidden1"], orderings=2, fractions=4,
        noise_repeats=2, batch_size=30, progress=False,
    )  # fmt: skip
    xr.testing.assert_identical(result.dataset, quiet.dataset)
    assert capsys.readouterr().err == ""

    dk.analyze(net, (X, y), orderings=2, fractions=4, batch_size=30, progress=True)
    err = capsys.readouterr().err
    for i, stage in enumerate(["accuracy", "statistics", "ablation [all]", "importance"], 1):
        assert f"directionkit [{i}/5] {stage}" in err  # weight_l1 is the fifth, instant
    # each bar shows elapsed time and an estimate of what is left: [mm:ss<mm:ss] (a "?"
    # until the first refresh, which this small run does not reach)
    assert re.search(r"ablation \[all\]:.*\| \[\d\d:\d\d<(\?|\d\d:\d\d)\]", err), err
    with pytest.raises(InvalidParameterError, match="'progress' parameter of analyze"):
        dk.analyze(net, (X, y), progress="yes")  # type: ignore[arg-type]
