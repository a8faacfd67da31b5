"""Each experiment's statistics and rule on constructed stores with a known answer.

For every experiment a store is built by hand in the shape the experiment writes: one
where the paper's effect is planted (the rule must say *reproduced*), one where it is
absent or opposite in a population large enough to tell (*not reproduced*), and one too
small to decide (*inconclusive*).  The statistics are the experiment's own functions, run
on the constructed store exactly as on a stored one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr

from directionkit.paper import EXPERIMENTS
from directionkit.paper._rules import (
    INCONCLUSIVE,
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    Claim,
    all_of,
)

FRACTIONS = np.linspace(0, 1, 11)


def _verdict(name: str, stored: xr.Dataset) -> str:
    experiment = EXPERIMENTS[name]
    return experiment.rule(experiment.statistics(stored))


def _models(n: int, prefix: str = "m") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


# -------------------------------------------------------------- populations of networks
def _corrupted(auc_of: Callable[[np.ndarray, np.random.Generator], np.ndarray], seeds: int,
               levels: int = 6) -> xr.Dataset:  # fmt: skip
    rng = np.random.default_rng(0)
    corruption = np.tile(np.linspace(0, 1, levels), seeds)
    auc = auc_of(corruption, rng)
    curves = np.clip(auc[:, None, None] * np.ones((1, 2, FRACTIONS.size)), 0, 1)
    n = corruption.size
    return xr.Dataset(
        {"ablation_auc": ("model", auc), "ablation_accuracy": (("model", "ordering", "fraction"),
                                                               curves)},
        coords={"model": _models(n), "corruption": ("model", corruption),
                "seed": ("model", np.repeat(np.arange(seeds), levels)),
                "train_accuracy": ("model", np.ones(n)), "fraction": FRACTIONS},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("auc_of", "seeds", "expected"),
    [
        (lambda c, r: 0.8 - 0.4 * c + 0.02 * r.normal(size=c.size), 3, REPRODUCED),
        (lambda c, r: 0.6 + 0.1 * r.normal(size=c.size), 80, NOT_REPRODUCED),
        (lambda c, r: 0.4 + 0.4 * c + 0.02 * r.normal(size=c.size), 3, NOT_REPRODUCED),
        (lambda c, r: 0.8 - 0.4 * c, 1, INCONCLUSIVE),  # one seed of 3 levels: n = 3 < 6
    ],
)  # fmt: skip
def test_corrupted_labels_planted_absent_opposite_and_too_small(auc_of, seeds, expected) -> None:  # type: ignore[no-untyped-def]
    levels = 3 if seeds == 1 else 6
    assert _verdict("corrupted-labels", _corrupted(auc_of, seeds, levels)) == expected


def _along_bases(slopes: dict[str, float], seeds: int, levels: int = 6) -> xr.Dataset:
    """A ``directions`` store: per basis, AUC falling with corruption at its slope."""
    rng = np.random.default_rng(0)
    corruption = np.tile(np.linspace(0, 1, levels), seeds)
    bases = ["units", "random", "pca"]
    auc = np.stack([0.8 + slopes[b] * corruption + 0.02 * rng.normal(size=corruption.size)
                    for b in bases], axis=1)  # (model, basis)  # fmt: skip
    curves = np.clip(auc[:, :, None, None] * np.ones((1, 1, 2, FRACTIONS.size)), 0, 1)
    n = corruption.size
    return xr.Dataset(
        {"ablation_auc": (("model", "basis"), auc),
         "ablation_accuracy": (("model", "basis", "ordering", "fraction"), curves),
         "accuracy": ("model", np.ones(n))},
        coords={"model": _models(n), "basis": bases, "corruption": ("model", corruption),
                "seed": ("model", np.repeat(np.arange(seeds), levels)),
                "train_accuracy": ("model", np.ones(n)), "fraction": FRACTIONS},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("slopes", "seeds", "expected"),
    [
        ({"units": -0.4, "random": -0.4, "pca": -0.4}, 3, REPRODUCED),  # every basis
        ({"units": -0.4, "random": 0.0, "pca": 0.0}, 40, NOT_REPRODUCED),  # units only
        ({"units": -0.4, "random": -0.4, "pca": 0.0}, 40, PARTLY),  # 2 hold, 1 fails
        ({"units": 0.0, "random": 0.0, "pca": 0.0}, 40, NOT_REPRODUCED),
        ({"units": -0.4, "random": -0.4, "pca": -0.4}, 1, INCONCLUSIVE),  # n = 3 < 6
    ],
)  # fmt: skip
def test_directions_planted_in_every_basis_some_none_and_too_small(slopes, seeds, expected) -> None:  # type: ignore[no-untyped-def]
    levels = 3 if seeds == 1 else 6
    stored = _along_bases(slopes, seeds, levels)
    assert _verdict("directions", stored) == expected
    stats = EXPERIMENTS["directions"].statistics(stored)
    for basis, slope in slopes.items():  # each basis judged on its own numbers
        assert (stats[f"rho_{basis}"] < -0.5) == (slope < 0)


def _ensemble(n: int, slope: float, noise: float = 0.01) -> xr.Dataset:
    rng = np.random.default_rng(1)
    gap = np.linspace(0.02, 0.12, n)
    auc = 0.7 + slope * gap + noise * rng.normal(size=n)
    curves = np.clip(auc[:, None, None] * np.ones((1, 2, FRACTIONS.size)), 0, 1)
    return xr.Dataset(
        {"generalisation_error": ("model", gap), "ablation_auc": ("model", auc),
         "ablation_accuracy": (("model", "ordering", "fraction"), curves)},
        coords={"model": _models(n), "test_accuracy": ("model", 0.9 - gap),
                "fraction": FRACTIONS},
        attrs={"test_images": 1000},
    )  # fmt: skip


def test_ensemble_planted_none_and_too_small() -> None:
    assert _verdict("ensemble", _ensemble(20, slope=-3.0)) == REPRODUCED
    # no relation in 200 networks: rho's interval is narrow around 0, best = worst
    assert _verdict("ensemble", _ensemble(200, slope=0.0, noise=0.01)) == NOT_REPRODUCED
    assert _verdict("ensemble", _ensemble(6, slope=-3.0)) == INCONCLUSIVE  # n < 10


def _grid(test: np.ndarray, auc: np.ndarray, near: np.ndarray | None = None) -> xr.Dataset:
    n = test.size
    return xr.Dataset(
        {"ablation_auc": ("model", auc),
         "near_chance": ("model", np.zeros(n, bool) if near is None else near)},
        coords={"model": _models(n), "lr": ("model", np.repeat(np.arange(n // 2.0), 2)),
                "batch_size": ("model", np.full(n, 32)), "test_accuracy": ("model", test)},
        attrs={"subsets": 200},
    )  # fmt: skip


def test_hyperparameters_planted_none_and_too_small() -> None:
    rng = np.random.default_rng(2)
    test = np.repeat(np.linspace(0.6, 0.9, 20), 2) + 0.002 * rng.normal(size=40)
    assert _verdict("hyperparameters", _grid(test, test + 0.001 * rng.normal(size=40))) == (
        REPRODUCED
    )
    assert _verdict("hyperparameters", _grid(test, -test)) == NOT_REPRODUCED
    assert _verdict("hyperparameters", _grid(test[:8], test[:8])) == INCONCLUSIVE  # n < 10


def test_networks_at_chance_are_left_out_before_any_statistic() -> None:
    test = np.repeat(np.linspace(0.6, 0.9, 10), 2)
    near = np.zeros(22, bool)
    near[-2:] = True  # two diverged networks: at chance, flat curves, AUC near 1
    stored = _grid(np.r_[test, [0.1, 0.1]], np.r_[test, [1.0, 1.0]], near)
    stats = EXPERIMENTS["hyperparameters"].statistics(stored)
    assert stats["n_models"] == 20 and len(stats["left_out"]) == 2
    assert stats["rho"] == pytest.approx(1.0) and stats["gap"] == 0.0
    # global ranks: AUC picks each subset's best, which is the population's best only when
    # the subset holds it (5 of 10 settings: half the time)
    assert stats["top1"] == pytest.approx(0.5, abs=0.1) and stats["top5"] >= 0.98


def test_top_k_ranks_are_global_not_within_the_subset() -> None:
    from directionkit.paper._hyperparameters import _selection

    test = np.linspace(0.5, 0.9, 30)
    reversed_pick = _selection(-test, test, subsets=300)  # AUC picks each subset's worst
    assert reversed_pick["subset_size"] == 15
    # the worst of 15 of 30 settings has a global rank >= 15: never top 10
    assert reversed_pick["top10"] == 0.0 and reversed_pick["gap"] > 0.1


def _dropout(shuffled_curve: Callable[[float], np.ndarray], seeds: int,
             train: float = 1.0) -> xr.Dataset:  # fmt: skip
    rows, dropout, corruption = [], [], []
    for d in (0.1, 0.2, 0.3):
        for p in (0.0, 1.0):
            for _ in range(seeds):
                true = np.where(FRACTIONS <= d, 1.0, 1.0 - 0.3 * (FRACTIONS - d))
                rows.append(true if p == 0 else shuffled_curve(d))
                dropout.append(d)
                corruption.append(p)
    n = len(rows)
    curves = np.asarray(rows)[:, None, :] * 0.95
    return xr.Dataset(
        {"ablation_accuracy": (("model", "ordering", "fraction"), curves)},
        coords={"model": _models(n), "dropout": ("model", dropout),
                "corruption": ("model", corruption), "train_accuracy": ("model", [train] * n),
                "fraction": FRACTIONS},
        attrs={"target": 0.99},
    )  # fmt: skip


def _flat_then_falls(d: float) -> np.ndarray:
    return np.where(FRACTIONS <= d, 1.0, np.maximum(0.1, 1.0 - 3.0 * (FRACTIONS - d)))


def test_dropout_planted_absent_and_unmemorised() -> None:
    assert _verdict("dropout", _dropout(_flat_then_falls, seeds=3)) == REPRODUCED
    def straight(d: float) -> np.ndarray:  # falls from the start: no plateau, no turn
        return 1.0 - 0.9 * FRACTIONS

    assert _verdict("dropout", _dropout(straight, seeds=3)) == NOT_REPRODUCED
    # no network reached the training-accuracy target: nothing to decide on
    stats = EXPERIMENTS["dropout"].statistics(_dropout(_flat_then_falls, 3, train=0.9))
    assert len(stats["left_out"]) == 18
    assert EXPERIMENTS["dropout"].rule(stats) == INCONCLUSIVE


# -------------------------------------------------------------- per-unit populations
def _units(networks: int, layers: int, per_layer: int, relation: float, *, prefix: str,
           x: str, y: str, extra: dict[str, float] | None = None,
           dead: int = 0) -> xr.Dataset:  # fmt: skip
    rng = np.random.default_rng(3)
    parts = {name: [] for name in ("unit_model", "depth", x, y, "unit_std")}
    for net in range(networks):
        for layer in range(layers):
            a = rng.uniform(0, 1, per_layer)
            b = relation * a + rng.normal(size=per_layer) * (1 - abs(relation)) + layer
            std = np.ones(per_layer)
            std[:dead] = 0.0  # dead units carry a value that must not count
            a[:dead] = 5.0
            parts["unit_model"] += [f"{prefix}s{net}"] * per_layer
            parts["depth"] += [layer] * per_layer
            parts[x] += a.tolist()
            parts[y] += b.tolist()
            parts["unit_std"] += std.tolist()
    data = {k: ("unit", np.asarray(v)) for k, v in parts.items() if k not in ("unit_model",
                                                                           "depth")}  # fmt: skip
    for name, value in (extra or {}).items():
        data[name] = ("unit", np.full(len(parts["depth"]), value))
    return xr.Dataset(
        data, coords={"unit_model": ("unit", parts["unit_model"]),
                      "depth": ("unit", parts["depth"])},
    )  # fmt: skip


def _selectivity(relation: float, networks: int) -> xr.Dataset:
    parts = []
    for prefix in ("mlp-", "conv-"):
        for measure in ("selectivity",):
            parts.append(_units(networks, 3, 40, relation, prefix=prefix, x=measure,
                                y="importance_loss"))  # fmt: skip
    stored = xr.concat(parts, dim="unit")
    stored["mutual_info"] = stored["selectivity"]
    return stored


def test_selectivity_importance_none_planted_and_too_small() -> None:
    # the paper's claim is "no positive relation within layers"
    assert _verdict("selectivity-importance", _selectivity(0.0, 3)) == REPRODUCED
    assert _verdict("selectivity-importance", _selectivity(0.9, 3)) == NOT_REPRODUCED
    assert _verdict("selectivity-importance", _selectivity(0.0, 1)) == INCONCLUSIVE


def test_a_between_layer_trend_is_not_a_within_layer_relation() -> None:
    # importance and selectivity both rise with the layer, unrelated within each layer:
    # pooled over layers they correlate, the within-layer statistic says no relation
    stored = _selectivity(0.0, 3)
    stored["selectivity"] = stored["selectivity"] + stored["depth"] * 2.0
    stored["mutual_info"] = stored["selectivity"]
    stats = EXPERIMENTS["selectivity-importance"].statistics(stored)
    assert stats["pooled_sel_mlp"] > 0.5
    assert abs(stats["sel_mlp"]) < 0.2
    assert EXPERIMENTS["selectivity-importance"].rule(stats) == REPRODUCED


def _l1(relation: float, networks: int) -> xr.Dataset:
    return xr.concat([_units(networks, 3, 40, relation, prefix=p, x="selectivity",
                             y="weight_l1") for p in ("bn-", "nobn-")], dim="unit")  # fmt: skip


def test_l1_none_planted_and_too_small() -> None:
    assert _verdict("l1", _l1(-0.5, 3)) == REPRODUCED  # negative: the paper's CIFAR-10 reading
    assert _verdict("l1", _l1(0.9, 3)) == NOT_REPRODUCED
    assert _verdict("l1", _l1(0.0, 2)) == INCONCLUSIVE


def test_dead_units_are_left_out_of_within_layer_statistics() -> None:
    clean = EXPERIMENTS["l1"].statistics(_l1(0.0, 3))
    # 10 dead units per layer, with selectivity 5 and any L1: ignored, same statistic
    dead = _units(3, 3, 50, 0.0, prefix="bn-", x="selectivity", y="weight_l1", dead=10)
    stats = EXPERIMENTS["l1"].statistics(xr.concat([dead, _l1(0.0, 3).isel(
        unit=slice(360, None))], dim="unit"))  # fmt: skip
    assert stats["bn_layers"] == clean["bn_layers"] == 9
    assert abs(stats["bn"]) < 0.3


def _depth(slope: float, networks: int) -> xr.Dataset:
    stored = _units(networks, 8, 30, 0.0, prefix="bn-", x="selectivity", y="other")
    stored["selectivity"] = stored["selectivity"] + slope * stored["depth"]
    return stored


def test_depth_planted_none_and_too_small() -> None:
    assert _verdict("depth", _depth(0.3, 3)) == REPRODUCED
    assert _verdict("depth", _depth(-0.3, 3)) == NOT_REPRODUCED
    assert _verdict("depth", _depth(0.3, 2)) == INCONCLUSIVE


def _batchnorm(auc_gap: float, sel_gap: float, mi_gap: float, per_arm: int) -> xr.Dataset:
    rng = np.random.default_rng(4)
    bn = np.repeat([True, False], per_arm)
    auc = np.where(bn, 0.6 + auc_gap, 0.6) + 0.005 * rng.normal(size=bn.size)
    names = [f"{'bn' if b else 'nobn'}-s{i % per_arm}" for i, b in enumerate(bn)]
    units = []
    for name, b in zip(names, bn, strict=True):
        sel = np.full(50, 0.3 + (sel_gap if b else 0.0)) + 0.01 * rng.normal(size=50)
        mi = np.full(50, 0.8 + (mi_gap if b else 0.0)) + 0.01 * rng.normal(size=50)
        std = np.ones(50)
        std[:5] = 0.0
        units.append(xr.Dataset(
            {"selectivity": ("unit_all", sel), "mutual_info": ("unit_all", mi),
             "unit_std": ("unit_all", std)},
            coords={"unit_model": ("unit_all", [name] * 50)},
        ))  # fmt: skip
    curves = np.clip(auc[:, None, None] * np.ones((1, 2, FRACTIONS.size)), 0, 1)
    models = xr.Dataset(
        {"ablation_auc": ("model", auc), "ablation_accuracy": (("model", "ordering", "fraction"),
                                                               curves)},
        coords={"model": names, "batch_norm": ("model", bn),
                "test_accuracy": ("model", np.full(bn.size, 0.8)), "fraction": FRACTIONS},
    )  # fmt: skip
    return xr.merge([models, xr.concat(units, dim="unit_all")])


def test_batchnorm_all_three_some_none_and_too_small() -> None:
    assert _verdict("batchnorm", _batchnorm(0.1, -0.1, 0.1, 3)) == REPRODUCED
    assert _verdict("batchnorm", _batchnorm(0.1, -0.1, -0.1, 3)) == PARTLY  # 2 hold, 1 fails
    assert _verdict("batchnorm", _batchnorm(0.1, 0.1, -0.1, 3)) == NOT_REPRODUCED  # 1 of 3
    assert _verdict("batchnorm", _batchnorm(0.1, -0.1, 0.1, 2)) == INCONCLUSIVE


def _method(difference: float, networks: int) -> xr.Dataset:
    rng = np.random.default_rng(5)
    zero = 0.6 + 0.05 * rng.normal(size=networks)
    mean = zero - difference + 0.002 * rng.normal(size=networks)
    return xr.Dataset(
        {"ablation_auc": (("ablate_to", "model"), [zero, mean])},
        coords={"ablate_to": ["zero", "mean"], "model": _models(networks)},
    )


def test_ablation_method_planted_opposite_and_too_small() -> None:
    assert _verdict("ablation-method", _method(0.1, 6)) == REPRODUCED
    assert _verdict("ablation-method", _method(-0.1, 6)) == NOT_REPRODUCED
    assert _verdict("ablation-method", _method(0.1, 2)) == INCONCLUSIVE  # n = 2: never partly


def _early(turn: int | None, seeds: int) -> xr.Dataset:
    epochs = np.arange(2, 42, 2)
    rng = np.random.default_rng(6)
    parts = []
    for _ in range(seeds):
        at = epochs[-1] if turn is None else turn
        loss = 0.5 + 0.01 * np.abs(epochs - at) * np.where(epochs > at, 1.0, 2.0)
        if turn is None:
            loss = 1.0 / epochs
        auc = 0.9 - 0.5 * (loss - loss.min()) + 0.001 * rng.normal(size=epochs.size)
        parts.append(xr.Dataset({"test_loss": ("epoch", loss), "ablation_auc": ("epoch", auc)},
                                coords={"epoch": epochs}))  # fmt: skip
    return xr.concat(parts, dim="seed").assign_coords(seed=list(range(seeds))).assign_attrs(
        epochs=40
    )


def test_early_stopping_planted_untestable_and_too_small() -> None:
    assert _verdict("early-stopping", _early(turn=12, seeds=3)) == REPRODUCED
    # test loss never turns: the timing claim cannot be tested
    assert _verdict("early-stopping", _early(turn=None, seeds=3)) == INCONCLUSIVE
    assert _verdict("early-stopping", _early(turn=12, seeds=1)) == INCONCLUSIVE


# -------------------------------------------------------------------------- the combinator
@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ((REPRODUCED, REPRODUCED, REPRODUCED), REPRODUCED),
        ((REPRODUCED, REPRODUCED, NOT_REPRODUCED), PARTLY),
        ((REPRODUCED, NOT_REPRODUCED, NOT_REPRODUCED), NOT_REPRODUCED),
        ((REPRODUCED, NOT_REPRODUCED), NOT_REPRODUCED),  # one sub-claim never makes "partly"
        ((REPRODUCED, INCONCLUSIVE), INCONCLUSIVE),
        ((INCONCLUSIVE, NOT_REPRODUCED), NOT_REPRODUCED),
        ((REPRODUCED, PARTLY), PARTLY),
    ],
)
def test_all_of_combines_sub_claims(verdicts: tuple[str, ...], expected: str) -> None:
    intervals = {REPRODUCED: [0.5, 0.9], NOT_REPRODUCED: [-0.9, -0.5],
                 INCONCLUSIVE: [-0.5, 0.5], PARTLY: [0.1, 0.2]}  # fmt: skip
    claims, stats = [], {}
    for i, v in enumerate(verdicts):
        claims.append(Claim(f"c{i}", f"claim {i}", min_n=1, needs_p=False, paper=1.0))
        stats[f"c{i}_ci"], stats[f"c{i}_n"] = intervals[v], 5
    assert [c(stats) for c in claims] == list(verdicts)
    assert all_of(claims)(stats) == expected


def test_a_verdict_holds_across_the_interval_not_at_the_point() -> None:
    claim = Claim("r", "r", direction=-1, min_n=3)
    # a strong point estimate with an interval crossing zero is not a reproduction
    assert claim({"r": -0.8, "r_ci": [-0.95, 0.1], "r_n": 5, "r_p": 0.01}) == INCONCLUSIVE
    assert claim({"r": -0.8, "r_ci": [-0.95, -0.3], "r_n": 5, "r_p": 0.2}) == INCONCLUSIVE
    assert claim({"r": math.nan, "r_ci": [math.nan, math.nan], "r_n": 5}) == INCONCLUSIVE
    assert claim({}) == INCONCLUSIVE  # nothing stored is never a success


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_rule_states_its_claims_and_gives_inconclusive_on_nothing(name: str) -> None:
    rule = EXPERIMENTS[name].rule
    assert rule.claims and all(c.what in rule.text for c in rule.claims)
    assert rule({}) == INCONCLUSIVE


def test_a_network_with_a_dead_layer_keeps_the_other_layers_in_place() -> None:
    from directionkit.paper._statistics import depth_trend, within_layer

    rng = np.random.default_rng(7)
    net = np.repeat([0, 1, 2], 30)
    layer = np.tile(np.repeat([0, 1, 2], 10), 3)
    x = layer + rng.normal(size=90) * 0.1
    y = np.where(layer == 2, -x, x)  # +1 in layers 0 and 1, -1 in layer 2
    x[(net == 0) & (layer == 0)] = np.nan  # network 0's first layer: all dead
    s = within_layer("r", x, y, net, layer, resamples=50)
    assert s["r_layers"] == 8 and len(s["r_by_layer"]) == 3
    assert s["r_by_layer"] == pytest.approx([1.0, 1.0, -1.0])
    d = depth_trend("d", x, net, layer, resamples=50)
    assert len(d["d_means"]) == 3 and d["d"] == pytest.approx(1.0)


# ------------------------------------------------------------------------ measures
def _measures_store(auc_of: Callable[[np.ndarray, np.random.Generator], np.ndarray],
                    seeds: int) -> xr.Dataset:  # fmt: skip
    """A ``measures`` store: a 4-hyperparameter grid whose gap grows with lr and dropout;
    the AUC as ``auc_of(gap)`` makes it, the output margin a noisy reading of the gap, the
    other measures unrelated."""
    from directionkit.experiments import BASELINES

    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], [0, 1], range(seeds),
                                indexing="ij")).reshape(5, -1)  # fmt: skip
    n = grid.shape[1]
    gap = 0.05 * grid[1] + 0.03 * grid[3] + 0.01 * rng.normal(size=n)
    test = rng.uniform(0.8, 0.85, n)
    values = {name: rng.normal(size=n) for name in BASELINES}
    values["output_margin"] = -gap + 0.002 * rng.normal(size=n)  # higher is better
    auc = auc_of(gap, rng)
    return xr.Dataset(
        {"accuracy": ("model", test + gap), "chance_accuracy": ("model", np.full(n, 0.1)),
         "near_chance": ("model", np.zeros(n, bool)), "ablation_auc": ("model", auc),
         "ablation_auc_corrected": ("model", auc), "noise_auc": ("model", rng.normal(size=n)),
         "selectivity_mean": ("model", rng.normal(size=n)),
         **{k: ("model", v) for k, v in values.items()}},
        coords={"model": _models(n), "hidden": ("model", grid[0].astype(str)),
                "lr": ("model", grid[1]), "batch_size": ("model", grid[2]),
                "dropout": ("model", grid[3]), "seed": ("model", grid[4]),
                "train_accuracy": ("model", test + gap), "test_accuracy": ("model", test)},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("auc_of", "seeds", "expected"),
    [
        (lambda g, r: 0.8 - g + 0.001 * r.normal(size=g.size), 3, REPRODUCED),
        (lambda g, r: 0.6 + 0.1 * r.normal(size=g.size), 3, NOT_REPRODUCED),  # unrelated
        (lambda g, r: 0.8 - g + 0.001 * r.normal(size=g.size), 1, INCONCLUSIVE),  # n = 16
    ],
)  # fmt: skip
def test_measures_planted_absent_and_too_small(auc_of, seeds, expected, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import directionkit.paper._measures as measures

    monkeypatch.setattr(measures, "RESAMPLES", 100)  # the rule's logic, at a tenth the cost
    stored = _measures_store(auc_of, seeds)
    stats = EXPERIMENTS["measures"].statistics(stored)
    assert EXPERIMENTS["measures"].rule(stats) == expected
    assert stats["best_measure"] == "output_margin"  # the only other measure of the gap
    assert any("**ablation_auc**" in line for line in stats["table"])
    ranked = [line.split("|")[2].strip().strip("*") for line in stats["table"][2:]]
    assert ranked[0] in ("ablation_auc", "ablation_auc_corrected", "output_margin")
    beaten = stats["auc_minus_best_ci"][1] < 0  # AUC clearly below the margin, or not
    assert beaten == (expected == NOT_REPRODUCED)
    assert len(ranked) == len(stats["measures"])  # every measure, and the random one, ranked
