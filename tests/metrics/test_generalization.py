"""Kendall's tau, granulated Psi and the PGDL score against brute-force loops, scipy, and
populations with a known answer."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from directionkit.errors import DirectionKitError
from directionkit.metrics import granulated_psi, kendall_tau, pgdl_score


def _grid(levels: int = 3, seeds: int = 6) -> dict[str, np.ndarray]:
    lr, depth, _ = np.meshgrid(range(levels), range(levels), range(seeds), indexing="ij")
    return {"lr": lr.ravel(), "depth": depth.ravel()}


def _brute_pgdl(measure, gap, hyper, conditioning=2, self_pairs=True) -> float:  # type: ignore[no-untyped-def]
    """The definition by dictionaries: counts of (V_gap, V_measure) per group key."""
    n = len(gap)
    best = math.inf
    for subset in itertools.combinations(sorted(hyper), conditioning):
        counts: dict[tuple, Counter] = defaultdict(Counter)
        for i in range(n):
            for j in range(n):
                if i == j and not self_pairs:
                    continue
                key = tuple((hyper[h][i], hyper[h][j]) for h in subset)
                counts[key][(gap[i] > gap[j], measure[i] > measure[j])] += 1
        mis, hs = [], []
        for table in counts.values():
            total = sum(table.values())
            p = {k: v / total for k, v in table.items()}
            pg = {a: sum(v for (x, _), v in p.items() if x == a) for a in (False, True)}
            pm = {b: sum(v for (_, y), v in p.items() if y == b) for b in (False, True)}
            mis.append(sum(v * math.log2(v / (pg[a] * pm[b])) for (a, b), v in p.items()))
            hs.append(-sum(v * math.log2(v) for v in pg.values() if v > 0))
        best = min(best, (sum(mis) / len(mis)) / (sum(hs) / len(hs)))
    return 100 * best


@pytest.mark.parametrize(("conditioning", "self_pairs"), [(0, True), (1, True), (2, True),
                                                           (2, False), (1, False)])  # fmt: skip
def test_pgdl_score_is_the_definition_computed_by_loops(
    conditioning: int, self_pairs: bool
) -> None:
    rng = np.random.default_rng(1)
    hyper = {**_grid(3, 4), "wd": rng.integers(0, 2, 36)}
    gap = rng.normal(size=36)
    measure = gap + rng.normal(size=36)
    got = pgdl_score(measure, gap, hyper, conditioning=conditioning, self_pairs=self_pairs)
    assert got == pytest.approx(
        _brute_pgdl(measure, gap, hyper, conditioning, self_pairs), rel=1e-12
    )


def test_the_gap_itself_scores_100_and_a_random_measure_little() -> None:
    rng = np.random.default_rng(2)
    hyper = _grid(3, 10)
    gap = 0.1 * hyper["lr"] + 0.05 * hyper["depth"] + 0.02 * rng.normal(size=90)
    assert pgdl_score(gap, gap, hyper) == 100.0
    assert pgdl_score(2 * gap + 1, gap, hyper) == 100.0  # only the order counts
    randoms = [pgdl_score(rng.normal(size=90), gap, hyper, conditioning=0) for _ in range(20)]
    assert np.mean(randoms) < 2  # unconditioned, the estimate's bias is small at n = 90
    assert pgdl_score(-gap, gap, hyper, self_pairs=False) == 100.0
    assert pgdl_score(-gap, gap, hyper) < 100.0  # a model against itself: both signs 0


def test_kendall_tau_is_scipys_without_ties_and_counts_ties_as_zero() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=30), rng.normal(size=30)
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 3)  # the tie counts 0
    assert kendall_tau(a, a) == 1.0 and kendall_tau(-a, a) == -1.0


def test_granulated_psi_averages_the_tau_within_one_hyperparameter_groups() -> None:
    rng = np.random.default_rng(4)
    hyper = _grid(3, 1)  # 9 models, one per setting
    gap = rng.normal(size=9)
    measure = rng.normal(size=9)
    expected = []
    for other in ("depth", "lr"):  # lr varies within depth's groups, and the reverse
        taus = [kendall_tau(measure[hyper[other] == v], gap[hyper[other] == v])
                for v in range(3)]  # fmt: skip
        expected.append(np.mean(taus))
    assert granulated_psi(measure, gap, hyper) == pytest.approx(np.mean(expected))
    assert granulated_psi(gap, gap, hyper) == 1.0


def test_bad_input_is_refused_naming_it() -> None:
    with pytest.raises(DirectionKitError, match="'gap'"):
        kendall_tau([1.0, 2.0], [1.0])
    with pytest.raises(DirectionKitError, match="NaN"):
        pgdl_score([1.0, np.nan], [1.0, 2.0], {"a": [0, 1]})
    with pytest.raises(DirectionKitError, match="'hyperparameters'"):
        pgdl_score([1.0, 2.0], [1.0, 2.0], {"a": [0, 1, 2]})
    with pytest.raises(DirectionKitError, match="'conditioning'"):
        pgdl_score([1.0, 2.0], [1.0, 2.0], {"a": [0, 1]}, conditioning=2)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2]))
def test_scores_depend_on_the_measures_order_only(seed: int, conditioning: int) -> None:
    rng = np.random.default_rng(seed)
    hyper = {**_grid(2, 3), "bs": rng.integers(0, 2, 12)}
    gap, measure = rng.normal(size=12), rng.normal(size=12)
    same = np.exp(measure)  # a monotone transform: the same order
    assert pgdl_score(same, gap, hyper, conditioning=conditioning) == pytest.approx(
        pgdl_score(measure, gap, hyper, conditioning=conditioning), nan_ok=True
    )
    assert kendall_tau(same, gap) == kendall_tau(measure, gap)


def test_ranking_scores_are_each_score_and_a_paired_bootstrap_by_hand() -> None:
    from directionkit.metrics import ranking_scores

    rng = np.random.default_rng(4)
    hyper = _grid(3, 4)
    gap = 0.1 * hyper["lr"] + 0.05 * hyper["depth"] + 0.03 * rng.normal(size=36)
    measures = {"close": gap + 0.02 * rng.normal(size=36), "far": rng.normal(size=36)}
    scores = ranking_scores(measures, gap, hyper, resamples=30, seed=7)
    for name, values in measures.items():
        row = scores.sel(measure=name)
        assert float(row["pgdl_score"]) == pgdl_score(values, gap, hyper)
        assert float(row["kendall_tau"]) == kendall_tau(values, gap)
        assert float(row["granulated_psi"]) == granulated_psi(values, gap, hyper)
    # the draws: the same resampled models for every measure, in order
    again = np.random.default_rng(7)
    for r in range(30):
        pick = again.integers(0, 36, 36)
        picked = {k: v[pick] for k, v in hyper.items()}
        for name, values in measures.items():
            draws = scores["draws"].sel(measure=name, resample=r)
            assert float(draws.sel(score="pgdl_score")) == pgdl_score(values[pick], gap[pick],
                                                                      picked)  # fmt: skip
            assert float(draws.sel(score="kendall_tau")) == kendall_tau(values[pick], gap[pick])
    low = np.percentile(scores["draws"].sel(score="kendall_tau", measure="far"), 2.5)
    assert float(scores["kendall_tau_low"].sel(measure="far")) == pytest.approx(low)
    assert float(scores["pgdl_score_low"].sel(measure="close")) > float(
        scores["pgdl_score_high"].sel(measure="far")
    )  # the measure that follows the gap is told apart from the one that does not


def test_ranking_scores_without_resamples_and_bad_input() -> None:
    from directionkit.metrics import ranking_scores

    hyper = _grid(2, 3)
    gap = np.arange(12.0)
    scores = ranking_scores({"gap": gap}, gap, hyper, resamples=0).sel(measure="gap")
    assert float(scores["pgdl_score"]) == pytest.approx(100.0)
    assert np.isnan(float(scores["pgdl_score_low"]))
    with pytest.raises(DirectionKitError, match="resamples"):
        ranking_scores({"gap": gap}, gap, hyper, resamples=-1)
    with pytest.raises(DirectionKitError, match="measures"):
        ranking_scores({}, gap, hyper)
    with pytest.raises(DirectionKitError, match=r"measures\['short'\]"):
        ranking_scores({"short": gap[:5]}, gap, hyper)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4), st.integers(1, 3))
def test_granulated_psi_is_the_mean_of_group_taus_by_loops(seed: int, n_hyper: int,
                                                            seeds: int) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    n = 2**n_hyper * seeds
    hyper = {f"h{k}": rng.integers(0, 2, n) for k in range(n_hyper)}
    measure, gap = rng.normal(size=n).round(1), rng.normal(size=n)
    psis = []
    for name in hyper:
        if len(set(hyper[name].tolist())) < 2:  # a hyperparameter with one value: left out
            continue
        groups: dict[tuple, list[int]] = defaultdict(list)
        for model in range(n):
            groups[tuple(hyper[o][model] for o in hyper if o != name)].append(model)
        taus = []
        for members in groups.values():
            if len(members) >= 2:
                pairs = list(itertools.combinations(members, 2))
                taus.append(sum(np.sign(measure[a] - measure[b]) * np.sign(gap[a] - gap[b])
                                for a, b in pairs) / len(pairs))  # fmt: skip
        if taus:
            psis.append(sum(taus) / len(taus))
    if not psis:
        with pytest.raises(DirectionKitError):
            granulated_psi(measure, gap, hyper)
        return
    assert granulated_psi(measure, gap, hyper) == pytest.approx(sum(psis) / len(psis),
                                                                abs=1e-12)  # fmt: skip
