"""Training runs: convergence, exact resume, determinism, outputs, errors and the CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")

from directionkit.errors import InvalidParameterError, StoreError  # noqa: E402
from directionkit.reference_models import _train_cli  # noqa: E402
from directionkit.reference_models.datasets import DatasetNotFoundError, corrupt_labels, load  # noqa: E402
from directionkit.reference_models.train import (  # noqa: E402
    HISTORY_VARIABLES,
    TrainConfig,
    load_model,
    train,
)

pytestmark = [pytest.mark.requires_torch, pytest.mark.usefixtures("one_torch_thread")]

# small and quick: a 64-unit MLP on the 8x8 digits trains an epoch in a few milliseconds
SMALL = {"dataset": "digits", "hidden": (64,), "lr": 1e-2, "batch_size": 64, "device": "cpu"}
SCORES = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")  # not the timings


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def assert_same_weights(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_short_run_converges_on_digits_and_writes_every_output(tmp_path: Path) -> None:
    config = TrainConfig(**SMALL, epochs=6, checkpoint_epochs=(0, 3))
    result = train(config, tmp_path / "run", progress=False, onnx=False)

    history = xr.open_zarr(tmp_path / "run" / "history.zarr").load()
    assert len(history.attrs.pop("directionkit_integrity")["id"]) == 32  # what dk.open checks
    assert dict(history.sizes) == {"epoch": 6}
    assert history["epoch"].values.tolist() == [1, 2, 3, 4, 5, 6]
    assert set(history.data_vars) == set(HISTORY_VARIABLES)
    xr.testing.assert_identical(history, result.history)
    assert TrainConfig.from_dict(json.loads(history.attrs["config"])) == config
    assert float(history["test_accuracy"][-1]) > 0.9
    assert float(history["train_loss"][-1]) < float(history["train_loss"][0])

    assert TrainConfig.from_dict(json.loads((tmp_path / "run" / "config.json").read_text())) == (
        config
    )
    assert sorted(result.checkpoints) == [0, 3, 6] and result.final_epoch == 6
    assert result.final_checkpoint.name == "epoch_0006.pt"
    state = torch.load(result.final_checkpoint, weights_only=True)  # plain tensors only
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    initial = torch.load(result.checkpoints[0], weights_only=True)
    assert not torch.equal(state["1.weight"], initial["1.weight"])
    torch.load(tmp_path / "run" / "resume.pt", weights_only=True)  # optimiser state too

    model = load_model(tmp_path / "run")
    assert not model.training
    assert_same_weights(model.state_dict(), state)
    X, y = load("digits", "test")
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(X)).argmax(1).numpy() == y).mean()
    assert accuracy == pytest.approx(float(history["test_accuracy"][-1]))
    with pytest.raises(StoreError, match=r"no checkpoint for epoch 4; it has epochs \[0, 3, 6\]"):
        load_model(tmp_path / "run", 4)


@pytest.mark.parametrize(
    "options",
    [
        {**SMALL, "dropout": 0.2, "optimizer": "adam"},
        {
            **SMALL,
            "model": "convnet",
            "width": 0.125,
            "optimizer": "sgd",
            "lr": 0.05,
            "train_limit": 300,
            "test_limit": 100,
        },
    ],
    ids=["mlp-dropout-adam", "convnet-batchnorm-sgd"],
)
def test_resume_after_interruption_gives_the_uninterrupted_weights(
    tmp_path: Path, options: dict[str, object]
) -> None:
    config = TrainConfig(**options, epochs=4, corruption=0.5)
    straight = train(config, tmp_path / "straight", progress=False, onnx=False)

    class Killed(Exception):
        pass

    def kill_after_epoch_2(epoch: int, metrics: Mapping[str, float]) -> None:
        assert set(metrics) == set(HISTORY_VARIABLES)
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train(config, tmp_path / "cut", progress=False, onnx=False, on_epoch_end=kill_after_epoch_2)
    assert not (tmp_path / "cut" / "history.zarr").exists()
    assert torch.load(tmp_path / "cut" / "resume.pt", weights_only=True)["epoch"] == 2

    resumed = train(config, tmp_path / "cut", progress=False, onnx=False)
    assert resumed.resumed_from == 2 and resumed.final_epoch == 4
    assert_same_weights(weights(straight.final_checkpoint), weights(resumed.final_checkpoint))
    xr.testing.assert_identical(straight.history[list(SCORES)], resumed.history[list(SCORES)])

    again = train(config, tmp_path / "cut", progress=False, onnx=False)  # complete: no work
    assert again.resumed_from == 4
    xr.testing.assert_identical(again.history, resumed.history)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path) -> None:
    def final(seed: int, name: str) -> dict[str, torch.Tensor]:
        config = TrainConfig(**SMALL, dropout=0.1, epochs=2, seed=seed)
        return weights(train(config, tmp_path / name, progress=False, onnx=False).final_checkpoint)

    assert_same_weights(final(3, "a"), final(3, "b"))
    different = final(4, "c")
    assert not torch.equal(final(3, "a")["1.weight"], different["1.weight"])
    # a fresh start (resume=False) of the same config reproduces it too
    config = TrainConfig(**SMALL, dropout=0.1, epochs=2, seed=3)
    again = train(config, tmp_path / "a", progress=False, onnx=False, resume=False)
    assert again.resumed_from == 0
    assert_same_weights(final(3, "b"), weights(again.final_checkpoint))


def test_training_accuracy_is_measured_on_the_corrupted_labels_it_trained_on(
    tmp_path: Path,
) -> None:
    options = {**SMALL, "hidden": (256, 256), "lr": 1e-3, "batch_size": 32}
    config = TrainConfig(**options, corruption=1.0, epochs=20, seed=1)
    result = train(config, tmp_path / "run", progress=False, onnx=False)
    X, y_true = load("digits")
    y_trained, mask = corrupt_labels(y_true, 1.0, seed=1)
    assert mask.all() and result.history.attrs["n_corrupted"] == len(y_true)
    with torch.no_grad():
        predicted = result.load_model()(torch.from_numpy(X)).argmax(1).numpy()
    on_trained = float((predicted == y_trained).mean())
    assert float(result.history["train_accuracy"][-1]) == pytest.approx(on_trained)
    assert on_trained > 0.3  # memorising the shuffled labels (chance is 0.1)...
    assert float((predicted == y_true).mean()) < 0.2  # ...not learning the true ones
    assert float(result.history["test_accuracy"][-1]) < 0.2


def test_label_seed_fixes_the_labels_across_initialisations(tmp_path: Path) -> None:
    runs = [
        train(
            TrainConfig(**SMALL, corruption=1.0, epochs=1, seed=seed, label_seed=7),
            tmp_path / str(seed),
            progress=False,
            onnx=False,
        )
        for seed in (0, 1)
    ]
    X, _ = load("digits")
    y_trained, _ = corrupt_labels(load("digits")[1], 1.0, seed=7)
    for run in runs:
        with torch.no_grad():
            predicted = run.load_model()(torch.from_numpy(X)).argmax(1).numpy()
        accuracy = float((predicted == y_trained).mean())
        assert float(run.history["train_accuracy"][0]) == pytest.approx(accuracy)


def test_stop_at_train_accuracy_ends_early_and_stays_ended(tmp_path: Path) -> None:
    config = TrainConfig(**SMALL, epochs=50, stop_at_train_accuracy=0.9)
    result = train(config, tmp_path / "run", progress=False, onnx=False)
    accuracy = result.history["train_accuracy"].values
    assert result.final_epoch < 50 and accuracy[-1] >= 0.9 and (accuracy[:-1] < 0.9).all()
    assert sorted(result.checkpoints) == [result.final_epoch]
    again = train(config, tmp_path / "run", progress=False, onnx=False)
    assert again.resumed_from == again.final_epoch == result.final_epoch


@pytest.mark.requires_onnxruntime
def test_onnx_export_loads_in_onnxruntime_and_matches_torch(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    config = TrainConfig(**SMALL, dropout=0.2, epochs=2)
    result = train(config, tmp_path / "run", progress=False)
    assert result.onnx_path == tmp_path / "run" / "model.onnx"
    assert not (tmp_path / "run" / "model.onnx.data").exists()  # weights inside the file
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    model = result.load_model()
    X, _ = load("digits", "test")
    for batch in (1, 7):
        x = X[:batch]
        (logits,) = session.run(["logits"], {"input": x})
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        assert logits.shape == (batch, 10)
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_standardized_training_saves_models_that_take_raw_inputs(tmp_path: Path) -> None:
    """The fold into layer one is checked against the run's own evaluation and a refit.

    The history's test loss was measured by the training model on standardised inputs; the
    saved checkpoint and the ONNX export must give that loss on the raw test images.  And a
    plain model given the standardised data by hand must train to the same weights.
    """
    ort = pytest.importorskip("onnxruntime")
    config = TrainConfig(**SMALL, standardize=True, epochs=3, checkpoint_epochs=(0,))
    result = train(config, tmp_path / "run", progress=False)
    X, y = load("digits", "test")
    last = result.history.isel(epoch=-1)
    with torch.no_grad():
        logits = result.load_model()(torch.from_numpy(X))
    loss = float(torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)))
    assert loss == pytest.approx(float(last["test_loss"]), abs=1e-5)
    accuracy = float((logits.argmax(1).numpy() == y).mean())
    assert accuracy == pytest.approx(float(last["test_accuracy"]), abs=1.5 / len(y))
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(["logits"], {"input": X})
    np.testing.assert_allclose(exported, logits.numpy(), atol=1e-4, rtol=0)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    X_train, _ = load("digits", "train")
    mean = X_train.mean(axis=0, dtype=np.float64)
    assert meta["input_std"] == pytest.approx(float(np.sqrt(((X_train - mean) ** 2).mean())))

    # a standardising first layer, undone: the epoch-0 checkpoint is the initial model,
    # and on raw inputs it must equal the unstandardised initial model on standardised ones
    plain = load_model(
        train(
            TrainConfig(**SMALL, epochs=1, checkpoint_epochs=(0,)),
            tmp_path / "plain",
            progress=False,
            onnx=False,
        ).out_dir,
        0,
    )
    folded = load_model(tmp_path / "run", 0)
    x = torch.from_numpy(X[:50])
    z = (x - torch.from_numpy(mean.astype(np.float32)).reshape(1, 1, 8, 8)) / meta["input_std"]
    with torch.no_grad():
        torch.testing.assert_close(folded(x), plain(z), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"corruption": 1.5}, "'corruption' parameter of TrainConfig must be a float in [0, 1]"),
        ({"corruption": True}, "'corruption' parameter"),
        ({"dataset": "imagenet"}, "'dataset' parameter of TrainConfig must be one of"),
        ({"model": "vgg"}, "'model' parameter of TrainConfig must be one of {'mlp', 'convnet'"),
        ({"hidden": ()}, "'hidden' parameter of TrainConfig must be a non-empty sequence"),
        ({"hidden": (64, 0)}, "'hidden' parameter of TrainConfig must be a sequence of ints >= 1"),
        ({"hidden": "64"}, "'hidden' parameter"),
        ({"dropout": 1.0}, "'dropout' parameter of TrainConfig must be a float in [0, 1)"),
        ({"model": "convnet", "dropout": 0.1}, "only the MLP has dropout"),
        ({"epochs": 0}, "'epochs' parameter of TrainConfig must be an int >= 1. Got 0"),
        ({"epochs": 2.0}, "'epochs' parameter"),
        ({"optimizer": "rmsprop"}, "'optimizer' parameter of TrainConfig must be one of"),
        ({"lr": 0.0}, "'lr' parameter of TrainConfig must be a float > 0. Got 0.0 instead."),
        ({"lr": float("nan")}, "'lr' parameter"),
        ({"momentum": 1.0}, "'momentum' parameter"),
        ({"weight_decay": -1e-4}, "'weight_decay' parameter"),
        ({"batch_size": 0}, "'batch_size' parameter"),
        ({"seed": -1}, "'seed' parameter of TrainConfig must be an int >= 0"),
        ({"device": "tpu"}, "'device' parameter of TrainConfig must be one of"),
        ({"epochs": 3, "checkpoint_epochs": (4,)}, "epochs in [0, epochs=3]. Got (4,)"),
        ({"stop_at_train_accuracy": 0.0}, "'stop_at_train_accuracy' parameter"),
        ({"train_limit": 0}, "'train_limit' parameter"),
        ({"batch_norm": "yes"}, "'batch_norm' parameter of TrainConfig must be a bool"),
        ({"standardize": 1}, "'standardize' parameter of TrainConfig must be a bool. Got 1"),
        ({"model": "convnet", "standardize": True}, "False for model='convnet' (only the MLP"),
    ],
)
def test_bad_config_values_are_named(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameterError) as info:
        TrainConfig(**options)
    assert message in str(info.value)


def test_from_dict_rejects_unknown_fields_and_round_trips_json() -> None:
    config = TrainConfig(dataset="fashion-mnist", hidden=[128, 128], checkpoint_epochs=[5, 1, 5])
    assert config.checkpoint_epochs == (1, 5)
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(InvalidParameterError, match="Unknown TrainConfig field 'lr_'"):
        TrainConfig.from_dict({"lr_": 0.1})


def test_errors_before_training_write_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="'config' parameter of train"):
        train({"epochs": 1}, tmp_path / "a", progress=False)  # type: ignore[arg-type]
    missing = TrainConfig(dataset=str(tmp_path / "missing.npz"), epochs=1)
    with pytest.raises(DatasetNotFoundError):
        train(missing, tmp_path / "b", progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidParameterError, match="'device' parameter of train"):
            train(TrainConfig(**{**SMALL, "device": "cuda"}), tmp_path / "c", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_run_of_another_config_is_refused_unless_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(TrainConfig(**SMALL, epochs=1), run, progress=False, onnx=False)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    other = TrainConfig(**SMALL, epochs=1, seed=5)
    with pytest.raises(StoreError, match=r"seed: saved 0, given 5\); pass overwrite=True"):
        train(other, run, progress=False, onnx=False)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    result = train(other, run, progress=False, onnx=False, overwrite=True)
    assert result.config == other and result.resumed_from == 0
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())) == other

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and holds no training run"):
        train(other, tmp_path / "elsewhere", progress=False, onnx=False)


def test_cli_builds_the_config_and_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    _train_cli.add_arguments(parser)
    out = tmp_path / "run"
    argv = [
        "--dataset",
        "digits",
        "--corruption",
        "1.0",
        "--model",
        "mlp",
        "--hidden",
        "32",
        "--epochs",
        "2",
        "--seed",
        "3",
        "--checkpoint-epochs",
        "1",
        "--device",
        "cpu",
        "--no-onnx",
        "--quiet",
        "--out",
        str(out),
    ]
    assert _train_cli.run(parser.parse_args(argv)) == 0
    printed = capsys.readouterr().out
    assert "mlp on digits (corruption 1), 2 epochs (trained)" in printed
    saved = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert saved == TrainConfig(
        dataset="digits",
        corruption=1.0,
        hidden=(32,),
        epochs=2,
        seed=3,
        checkpoint_epochs=(1,),
        device="cpu",
    )
    assert _train_cli.run(parser.parse_args(argv)) == 0
    assert "(already complete)" in capsys.readouterr().out
    with pytest.raises(StoreError, match="different config"):
        _train_cli.run(parser.parse_args([*argv, "--seed", "4"]))


def test_cli_options_cover_every_config_field_and_do_not_import_torch() -> None:
    assert set(_train_cli._CONFIG_FIELDS) == set(TrainConfig().to_dict())
    code = (
        "import sys, argparse; from directionkit.reference_models import _train_cli; "
        "_train_cli.add_arguments(argparse.ArgumentParser()); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
