"""The command line: the demo writes a store that `show` and plain xarray read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

import directionkit as dk
from directionkit.cli import main


def test_demo_writes_a_store_and_show_reads_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo.zarr"
    assert main(["demo", "--out", str(out), "--hidden", "12"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "saved to" in printed
    result = dk.open(out)
    assert result["selectivity"].sizes["unit"] == 12
    sel = result["selectivity"].values
    assert np.all((sel >= 0) & (sel <= 1))
    assert float(result["accuracy"]) > 0.9
    assert set(xr.open_zarr(out).data_vars) == set(result.dataset.data_vars)

    assert main(["show", str(out)]) == 0
    assert "selectivity" in capsys.readouterr().out


def test_demo_refuses_to_overwrite_without_the_flag(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo.zarr"
    assert main(["demo", "--out", str(out), "--hidden", "4"]) == 0
    assert main(["demo", "--out", str(out), "--hidden", "4"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["demo", "--out", str(out), "--hidden", "4", "--overwrite"]) == 0


def test_bad_values_give_a_clear_error_and_exit_code(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--out", str(tmp_path / "x.zarr"), "--hidden", "0"]) == 2
    assert "'hidden' parameter of digits_demo" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_console_script_is_installed() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "directionkit.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("directionkit ")


# -- analyze and report -----------------------------------------------------------------
def _onnx_model(tmp_path: Path, sizes: tuple[int, ...] = (64, 16, 10)) -> Path:
    import pytest

    pytest.importorskip("onnxruntime")
    import onnx

    from tests.adapters.onnx_models import dense_graph, random_dense

    path = tmp_path / "model.onnx"
    onnx.save(dense_graph(*random_dense(0, sizes)), str(path))
    return path


def test_analyze_audits_an_onnx_file_and_report_draws_it(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = _onnx_model(tmp_path)
    out = tmp_path / "run.zarr"
    args = ["analyze", str(model), "--data", "digits", "--out", str(out), "--limit", "150",
            "--orderings", "2", "--fractions", "3", "--no-progress", "--seed", "3"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "saved to" in printed
    result = dk.open(out)
    for name in ("accuracy", "ablation_accuracy", "selectivity", "importance_loss",
                 "noise_accuracy", "weight_l1"):  # fmt: skip
        assert name in result.dataset, name
    assert result["selectivity"].sizes["unit"] == 16
    assert result.dataset.attrs["model"].startswith("model.onnx sha256:")
    assert result.dataset.attrs["parameters"]["seed"] == 3

    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report)]) == 0
    assert (report / "report.html").is_file()
    assert any(p.suffix == ".png" for p in report.iterdir())


def test_analyze_errors_are_clear_and_write_nothing(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = _onnx_model(tmp_path)
    out = tmp_path / "run.zarr"
    base = ["--data", "digits", "--out", str(out), "--limit", "50", "--no-progress"]

    assert main(["analyze", str(model), *base, "--layout", "NCHW"]) == 2
    assert "--layout flat" in capsys.readouterr().err  # the model wants 64 flat features

    few = _onnx_model(tmp_path / "few", (64, 8, 5)) if (tmp_path / "few").mkdir() is None else None
    assert few is not None
    assert main(["analyze", str(few), *base]) == 2
    assert "labels" in capsys.readouterr().err.lower()  # digits has 10 classes, the model 5

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(model.read_bytes()[:30])
    assert main(["analyze", str(broken), *base]) == 2
    assert "broken.onnx" in capsys.readouterr().err

    assert main(["analyze", str(model), *base, "--sites", "nope"]) == 2
    assert "nope" in capsys.readouterr().err

    assert main(["analyze", str(model), *base, "--data", "nowhere.npz"]) == 2
    assert "nowhere.npz" in capsys.readouterr().err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx", "few", "model.onnx"]


def test_train_then_analyze_its_export_and_a_rerun_resumes(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--hidden", "32", "--epochs", "3", "--seed", "1",
            "--out", str(run), "--no-progress"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert "saved to" in capsys.readouterr().out
    assert (run / "config.json").is_file() and (run / "history.zarr").is_dir()
    history = xr.open_zarr(run / "history.zarr")
    assert history.sizes["epoch"] == 3
    assert main(args) == 0  # the same config again: nothing to do
    assert "already complete" in capsys.readouterr().out
    onnx_files = list(run.glob("*.onnx"))
    assert len(onnx_files) == 1
    out = tmp_path / "audit.zarr"
    assert main(["analyze", str(onnx_files[0]), "--data", "digits", "--out", str(out),
                 "--orderings", "2", "--fractions", "3", "--no-progress",
                 "--metrics", "statistics", "ablation"]) == 0  # fmt: skip
    audit = dk.open(out)  # the exported model, audited on the test split, is the trained one
    final = history.isel(epoch=-1)
    assert float(audit["accuracy"]) == pytest.approx(float(final["test_accuracy"]), abs=1e-9)
    assert float(audit["loss"]) == pytest.approx(float(final["test_loss"]), rel=1e-4)


def test_analyze_a_shuffled_label_run_on_the_labels_it_memorised(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A run directory as model and data: its model.onnx, its data, its shuffled labels."""
    import pytest

    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from directionkit.reference_models.datasets import load
    from directionkit.reference_models.runs import run_data

    run = tmp_path / "shuffled"
    assert main(["train", "--dataset", "digits", "--corruption", "1", "--standardize",
                 "--hidden", "64", "--epochs", "4", "--lr", "0.01", "--seed", "2",
                 "--out", str(run), "--no-progress"]) == 0, capsys.readouterr().err  # fmt: skip
    final = xr.open_zarr(run / "history.zarr").isel(epoch=-1)
    for split, on in (("train", "train_accuracy"), ("test", "test_accuracy")):
        out = tmp_path / f"{split}.zarr"
        argv = ["analyze", str(run), "--data", str(run), "--split", split, "--out", str(out)]
        assert main([*argv, "--no-progress", "--metrics", "statistics"]) == 0
        audit = dk.open(out)
        # the training accuracy was measured on the shuffled labels: so is the audit's
        assert float(audit["accuracy"]) == pytest.approx(float(final[on]), abs=1e-9), split
        assert audit.attrs["model"].startswith("shuffled sha256:")
    X, y = run_data(run, "train")
    true = load("digits", "train")[1]
    assert X.shape[0] == len(true) and (y != true).mean() > 0.5  # the labels are shuffled

    (run / "model.onnx").unlink()
    assert main(["analyze", str(run), "--data", "digits", "--out", str(tmp_path / "x.zarr"),
                 "--no-progress"]) == 2  # fmt: skip
    assert "has no model.onnx" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()
