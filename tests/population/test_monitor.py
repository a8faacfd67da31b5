"""estimate_auc against a model with a known curve; AUCMonitor's fall rule and a real loop."""

from __future__ import annotations

import numpy as np
import pytest

import directionkit as dk
from directionkit.testing import NumpyMLPAdapter


def redundant_model() -> tuple[NumpyMLPAdapter, tuple[np.ndarray, np.ndarray]]:
    """Four identical units: accuracy stays 1 while any unit is left, then drops to 0.3.

    ``h = relu(x)`` four times; class 0 scores ``sum(h)``, class 1 ``0.1 - sum(h)``.  Seven
    examples with ``x`` in [1, 2] are class 0 while one unit is left; three with ``x < 0``
    are class 1 always.  With every unit clamped the model says class 1 for all: 3 / 10.
    """
    net = NumpyMLPAdapter(
        weights=[np.ones((1, 4)), np.tile([[1.0, -1.0]], (4, 1))],
        biases=[np.zeros(4), np.array([0.0, 0.1])],
    )
    X = np.concatenate([np.linspace(1, 2, 7), -np.linspace(1, 2, 3)])[:, None]
    y = np.array([0] * 7 + [1] * 3)
    # ten copies: on 10 examples an accuracy of 1 is not clearly above the majority
    # class's 0.7 (a guesser gets 10 of 10 2.8% of the time); on 100 it is, and the
    # curve is the same
    return net, (np.tile(X, (10, 1)), np.tile(y, 10))


@pytest.mark.parametrize(
    ("fractions", "expected"),
    [
        ((0.25, 0.5), 0.25 + 0.25 + 0.5 * (1 + 0.3) / 2),
        ((0.25, 0.5, 0.75), 0.75 + 0.25 * (1 + 0.3) / 2),
        ((0.5,), 0.5 + 0.5 * (1 + 0.3) / 2),
    ],
)
def test_estimate_auc_of_a_model_with_a_known_curve(fractions, expected) -> None:  # type: ignore[no-untyped-def]
    net, data = redundant_model()
    for orderings in (1, 3):  # every ordering gives the same curve here
        assert dk.estimate_auc(net, data, fractions, orderings) == pytest.approx(expected)


def test_estimate_auc_refuses_fractions_outside_the_open_interval() -> None:
    net, data = redundant_model()
    with pytest.raises(dk.InvalidParameterError, match=r"'fractions' parameter .* \(0, 1\)"):
        dk.estimate_auc(net, data, fractions=(0.0, 0.5))
    with pytest.raises(dk.InvalidParameterError, match="'orderings' parameter"):
        dk.estimate_auc(net, data, orderings=0)


def test_estimate_auc_approaches_the_full_auc_with_more_points() -> None:
    net = NumpyMLPAdapter.random(n_in=6, hidden=(20, 20), n_classes=4, seed=2)
    X = np.random.default_rng(1).normal(size=(300, 6))
    data = (X, net.predict(X))
    full = float(
        dk.analyze(net, data, metrics=["ablation"], orderings=20, fractions=21, progress=False)[
            "ablation_auc"
        ][0]
    )
    dense = dk.estimate_auc(net, data, fractions=np.linspace(0, 1, 21)[1:-1], orderings=20)
    assert dense == pytest.approx(full, abs=1e-9)  # the same curve, the same seed
    cheap = dk.estimate_auc(net, data)
    assert abs(cheap - full) < 0.1


def fed(values: list[float], **options: float) -> dk.AUCMonitor:
    monitor = dk.AUCMonitor(None, **options)  # type: ignore[arg-type]
    for epoch, value in enumerate(values, start=1):
        monitor.record(epoch, value)
    return monitor


def test_monitor_flags_a_sustained_fall_at_its_peak() -> None:
    monitor = fed([0.5, 0.6, 0.7, 0.695, 0.66, 0.6, 0.55])
    # 0.695 is within min_drop of the peak 0.7; 0.66 and 0.60 are the two clear drops
    assert (monitor.fell_at, monitor.flagged_at) == (3, 6)
    assert monitor.should_stop


def test_monitor_ignores_a_single_dip_and_follows_a_new_peak() -> None:
    monitor = fed([0.5, 0.7, 0.6, 0.72, 0.71, 0.73])
    assert monitor.fell_at is None and not monitor.should_stop
    later = fed([0.5, 0.7, 0.6, 0.72, 0.6, 0.6, 0.9])
    assert (later.fell_at, later.flagged_at) == (4, 6)  # the flag stays after a recovery
    assert later.history.sel(epoch=7) == 0.9


def test_monitor_patience_and_min_drop() -> None:
    assert fed([0.7, 0.6], patience=1).fell_at == 1
    assert fed([0.7, 0.6, 0.6], patience=3).fell_at is None
    assert fed([0.7, 0.69, 0.68, 0.67], min_drop=0.05).fell_at is None
    with pytest.raises(dk.InvalidParameterError, match="'patience' parameter"):
        dk.AUCMonitor(None, patience=0)
    with pytest.raises(dk.InvalidParameterError, match="'min_drop' parameter"):
        dk.AUCMonitor(None, min_drop=-1.0)
    monitor = fed([0.5])
    with pytest.raises(dk.InvalidParameterError, match=r"'epoch' parameter .* last one \(1\)"):
        monitor.record(1, 0.4)


def test_monitor_in_a_real_torch_training_loop_leaves_training_unchanged() -> None:
    torch = pytest.importorskip("torch")
    from directionkit.reference_models.datasets import load

    X, y = load("digits", "train")
    X = torch.as_tensor(X[:400].reshape(400, -1))
    y = torch.as_tensor(y[:400]).long()

    def train(monitor: dk.AUCMonitor | None) -> tuple[torch.nn.Module, list[float]]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
        )
        optimiser = torch.optim.SGD(model.parameters(), lr=0.5)  # above chance at once
        estimates = []
        for _ in range(4):
            model.train()
            for start in range(0, 400, 50):
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(
                    model(X[start : start + 50]), y[start : start + 50]
                )
                loss.backward()
                optimiser.step()
            if monitor is not None:
                estimates.append(monitor(model))
                assert model.training  # handed back in the mode it came in
        return model, estimates

    monitor = dk.AUCMonitor((X[:200].numpy(), y[:200].numpy()), orderings=2)
    watched, estimates = train(monitor)
    plain, _ = train(None)
    for a, b in zip(watched.parameters(), plain.parameters(), strict=True):
        assert torch.equal(a, b)  # no hook, no random draw, no mode change leaked
    assert monitor.history["epoch"].values.tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(monitor.history.values, estimates)
    assert all(0 < e <= 1.5 for e in estimates)
    # the estimate is that of the model at that epoch: recomputing it gives the same value
    assert (
        dk.estimate_auc(watched, (X[:200].numpy(), y[:200].numpy()), orderings=2) == (estimates[-1])
    )


def test_a_model_at_chance_gets_no_auc_estimate_and_never_counts_as_a_peak() -> None:
    net, (X, y) = redundant_model()
    y_at_chance = np.zeros_like(y)
    y_at_chance[::2] = 1  # half the labels 1, whatever x is: chance is 0.5
    with pytest.warns(dk.DirectionKitWarning, match=r"not clearly above chance \(0\.5000"):
        assert np.isnan(dk.estimate_auc(net, (X, y_at_chance)))
    assert not np.isnan(dk.estimate_auc(net, (X, y)))  # the same model on its labels
    monitor = dk.AUCMonitor((X, y), patience=2)
    for epoch, value in enumerate([np.nan, np.nan, 0.7, 0.72, 0.6, np.nan], start=1):
        monitor.record(epoch, value)
    # the untrained epochs (NaN) are no peak; the peak is epoch 4, and both estimates
    # after it (one lower, one at chance again) count as the fall
    assert (monitor.fell_at, monitor.flagged_at) == (4, 6)
    fresh = dk.AUCMonitor((X, y))
    for epoch in (1, 2, 3):
        fresh.record(epoch, np.nan)
    assert fresh.fell_at is None and not fresh.should_stop
