"""The command line: the demo writes a store that `show` and plain xarray read back."""

from __future__ import annotations

import shutil
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


def test_analyze_along_pca_directions_of_an_onnx_file(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = _onnx_model(tmp_path)
    out = tmp_path / "pca.zarr"
    args = ["analyze", str(model), "--data", "digits", "--out", str(out), "--limit", "150",
            "--orderings", "2", "--fractions", "3", "--no-progress", "--directions", "pca",
            "--metrics", "statistics", "ablation"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    assert "along pca bases" in capsys.readouterr().out  # the summary says what a unit is
    result = dk.open(out).dataset
    assert result.attrs["parameters"]["directions"] == "pca"
    basis = result["direction_basis"].values  # 16 principal components of 16 units
    np.testing.assert_allclose(basis @ basis.T, np.eye(16), atol=1e-5)
    # measured on the train split of digits, not the evaluated data
    from sklearn.decomposition import PCA

    from directionkit.adapters.onnx import OnnxAdapter
    from directionkit.preprocessing import load_data

    X, _ = load_data("digits", "train", 150)
    adapter = OnnxAdapter(model)
    site = next(iter(adapter.sites))
    activity = adapter.run(X.reshape(len(X), -1).astype(np.float32), record=[site])
    components = PCA().fit(activity.activations[site]).components_
    overlap = np.abs(np.sum(basis[:3] * components[:3], axis=1))  # the leading three
    np.testing.assert_allclose(overlap, 1.0, atol=1e-3)


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


def test_analyze_reaches_every_knob_and_takes_means_from_the_train_split(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from directionkit.preprocessing import load_data

    model = _onnx_model(tmp_path)
    out = tmp_path / "run.zarr"
    args = ["analyze", str(model), "--data", "digits", "--out", str(out), "--limit", "120",
            "--orderings", "2", "--fractions", "3", "--no-progress", "--ablate-to", "mean",
            "--accuracy", "top5", "--noise-scales", "0", "1", "--noise-repeats", "2",
            "--noise-sd", "spatial-mean", "--n-bins", "5", "--binning", "equal-frequency",
            "--metrics", "ablation", "noise", "statistics"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "ablate-to mean: means from the train split of digits" in printed
    assert "accuracy (top5)" in printed
    result = dk.open(out)
    params = result.dataset.attrs["parameters"]
    assert (params["ablate_to"], params["accuracy"], params["noise_repeats"]) == ("mean", "top5", 2)
    assert (params["n_bins"], params["binning"], params["noise_sd"]) == (
        5, "equal-frequency", "spatial-mean",
    )  # fmt: skip
    assert params["noise_scales"] == [0.0, 1.0]
    assert result.dataset.attrs["means_from"] == "train_data"
    assert result.dataset.attrs["train_data"].startswith("digits:train sha256:")
    assert result.dataset.attrs["data"].startswith("digits:test sha256:")
    assert result["noise_accuracy"].sizes == {"repeat": 2, "noise_scale": 2}
    # the means really are the train split's: the same analysis through the API agrees
    train, test = (
        (X.reshape(len(X), -1), y)
        for X, y in (load_data("digits", "train", 120), load_data("digits", "test", 120))
    )
    api = dk.analyze(str(model), test, train_data=train, metrics=["ablation"], orderings=2,
                     fractions=3, ablate_to="mean", accuracy="top5", progress=False)  # fmt: skip
    np.testing.assert_allclose(result["ablation_accuracy"], api["ablation_accuracy"])
    other = dk.analyze(str(model), test, train_data=test, metrics=["ablation"], orderings=2,
                       fractions=3, ablate_to="mean", accuracy="top5", progress=False)  # fmt: skip
    assert not np.allclose(other["ablation_accuracy"], api["ablation_accuracy"])


# -- every error a clean message, status 2, nothing written ----------------------------------
def _analyze(model: Path, out: Path, *extra: str, data: str = "digits") -> list[str]:
    return ["analyze", str(model), "--data", data, "--out", str(out), "--limit", "60",
            "--no-progress", "--orderings", "2", "--fractions", "3", *extra]  # fmt: skip


def test_onnx_files_that_onnx_or_onnxruntime_refuse_are_clean_errors(
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    import onnx

    model = _onnx_model(tmp_path)
    proto = onnx.load(str(model))
    proto.graph.node[-1].domain = "com.vendor"  # a custom-domain op onnxruntime lacks
    proto.opset_import.append(onnx.helper.make_opsetid("com.vendor", 1))
    custom = tmp_path / "custom.onnx"
    onnx.save(proto, str(custom))
    assert main(_analyze(custom, tmp_path / "a.zarr")) == 2
    assert "com.vendor" in capsys.readouterr().err

    outside = tmp_path / "weights"
    outside.mkdir()
    onnx.save(onnx.load(str(model)), str(outside / "m.onnx"), save_as_external_data=True,
              location="m.data", size_threshold=0)  # fmt: skip
    relocated = onnx.load(str(outside / "m.onnx"), load_external_data=False)
    for init in relocated.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../weights/m.data"
    (tmp_path / "model").mkdir()
    escaping = tmp_path / "model" / "m.onnx"
    onnx.save(relocated, str(escaping))
    assert main(_analyze(escaping, tmp_path / "b.zarr")) == 2
    assert "not a file inside the model's folder" in capsys.readouterr().err
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()

    # damaged tensors: onnx.checker and onnxruntime both refuse them, so the audit does
    truncated = onnx.load(str(model))
    weights = truncated.graph.initializer[0]
    weights.raw_data = weights.raw_data[:-4]  # the last float of the first weight matrix cut
    retyped = onnx.load(str(model))
    retyped.graph.initializer[0].data_type = onnx.TensorProto.STRING
    for name, damaged in (("truncated", truncated), ("retyped", retyped)):
        onnx.save(damaged, str(tmp_path / f"{name}.onnx"))
        out = tmp_path / f"{name}.zarr"
        assert main(_analyze(tmp_path / f"{name}.onnx", out)) == 2
        err = capsys.readouterr().err
        assert "fails onnx.checker" in err and "onnxruntime cannot run this model" in err, err
        assert not out.exists()


def test_a_truncated_chunk_is_a_clean_error_for_show_and_report(
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    out = tmp_path / "run.zarr"
    assert main(_analyze(_onnx_model(tmp_path), out, "--metrics", "statistics")) == 0
    chunk = out / "selectivity" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[:20])
    capsys.readouterr()
    assert main(["show", str(out)]) == 2
    assert "variable 'selectivity' has a damaged chunk" in capsys.readouterr().err
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 2
    assert "run.zarr" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_site_names_with_dollar_signs_are_drawn_literally(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest = __import__("pytest")
    pytest.importorskip("onnxruntime")
    import onnx

    from tests.adapters.onnx_models import dense_graph, random_dense

    model = tmp_path / "dollar.onnx"
    onnx.save(dense_graph(*random_dense(0, (64, 6, 5, 10)), names=["$x_{$", "cost$"]), str(model))
    out = tmp_path / "run.zarr"
    assert main(_analyze(model, out, "--metrics", "statistics", "ablation", "importance",
                         "--scopes", "all", "$x_{$")) == 0, capsys.readouterr().err  # fmt: skip
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert len(list((tmp_path / "report").glob("*.png"))) >= 3
    # and in a comparison: store names (the legend's labels) and scopes with $ in them
    other = tmp_path / "r$x_{$.zarr"
    shutil.copytree(out, other)
    compared = tmp_path / "compared"
    args = ["report", str(out), str(other), "--out", str(compared)]
    assert main(args) == 0, capsys.readouterr().err
    assert len(list(compared.glob("*.png"))) >= 3


def test_labels_stored_as_floats_are_accepted_when_whole(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from directionkit.reference_models.datasets import load

    X, y = load("digits", "test", flatten=True)  # flat (N, 64) rows, as an MLP's data
    model = _onnx_model(tmp_path)
    whole = tmp_path / "whole.npz"
    np.savez(whole, x_test=X[:60], y_test=y[:60].astype(np.float64))
    out = tmp_path / "run.zarr"
    assert main(_analyze(model, out, "--metrics", "statistics", data=str(whole))) == 0
    reference = tmp_path / "reference.zarr"
    assert main(_analyze(model, reference, "--metrics", "statistics")) == 0
    assert float(dk.open(out)["accuracy"]) == float(dk.open(reference)["accuracy"])

    halves = tmp_path / "halves.npz"
    labels = y[:60].astype(np.float64)
    labels[3] = 1.5
    np.savez(halves, x_test=X[:60], y_test=labels)
    capsys.readouterr()
    assert main(_analyze(model, tmp_path / "bad.zarr", data=str(halves))) == 2
    err = capsys.readouterr().err
    assert "integer class indices" in err and "Got 1.5 at example 3" in err
    assert not (tmp_path / "bad.zarr").exists()


def test_an_npz_without_splits_says_so_instead_of_serving_its_data_twice(
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from directionkit.reference_models.datasets import load

    X, y = load("digits", "test")
    data = tmp_path / "xy.npz"
    np.savez(data, x=X[:60], y=y[:60])
    model = _onnx_model(tmp_path)
    assert main(_analyze(model, tmp_path / "a.zarr", "--split", "train", data=str(data))) == 2
    assert "has no splits" in capsys.readouterr().err
    asked = _analyze(model, tmp_path / "b.zarr", "--metrics", "statistics", "noise",
                     data=str(data))  # fmt: skip
    assert main(asked) == 2  # noise by name needs the train split's sd
    err = capsys.readouterr().err
    assert "has no splits" in err and "--metrics statistics ablation importance" in err
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()
    out = tmp_path / "c.zarr"
    assert main(_analyze(model, out, data=str(data))) == 0  # the default: noise left out
    assert "has no splits" in capsys.readouterr().err
    result = dk.open(out)
    assert "noise_accuracy" not in result.dataset and "ablation_accuracy" in result.dataset


def test_analyze_help_documents_the_npz_keys(capsys) -> None:  # type: ignore[no-untyped-def]
    import pytest

    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for key in ("x_train", "y_train", "x_test", "y_test", "(N, features)", "no splits"):
        assert key in text, key


def test_an_empty_idx_file_is_a_clean_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    idx = tmp_path / "idx"
    idx.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (idx / name).write_bytes(b"")
    assert main(_analyze(_onnx_model(tmp_path), tmp_path / "x.zarr", data=str(idx))) == 2
    assert "not an IDX file" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_analyze_takes_the_other_inputs_the_output_and_unit_axes_of_a_model(
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    import onnx
    import pytest

    pytest.importorskip("onnxruntime")
    from tests.adapters.test_onnx_shipped import multi_input, two_outputs

    rng = np.random.default_rng(0)
    data = tmp_path / "xy.npz"
    np.savez(data, x=rng.normal(size=(30, 4)).astype(np.float32), y=np.arange(30) % 3)
    model = tmp_path / "vad.onnx"
    onnx.save(multi_input(), str(model))
    base = ["analyze", str(model), "--data", str(data), "--no-progress", "--metrics",
            "statistics", "ablation", "--orderings", "2", "--fractions", "3"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "a.zarr")]) == 2
    err = capsys.readouterr().err
    assert "pass the others with --input state=VALUE --input sr=VALUE" in err
    out = tmp_path / "b.zarr"
    args = ["--input", "state=zeros:2,B,3", "--input", "sr=16000", "--out", str(out)]
    assert main([*base, *args]) == 0, capsys.readouterr().err
    assert "selectivity" in dk.open(out).dataset
    with pytest.raises(SystemExit):  # argparse's own refusal, exit status 2
        main([*base, "--input", "state=zeros:2,X", "--out", str(tmp_path / "c.zarr")])
    assert "B (the batch)" in capsys.readouterr().err

    several = tmp_path / "two.onnx"
    onnx.save(two_outputs(("linear_1", "linear_2"), widths=(3, 3)), str(several))
    other = ["analyze", str(several), "--data", str(data), "--no-progress", "--metrics",
             "statistics"]  # fmt: skip
    assert main([*other, "--out", str(tmp_path / "d.zarr")]) == 2
    err = capsys.readouterr().err
    assert "none is named 'logits'" in err and "Pass --output the name or index" in err
    out = tmp_path / "e.zarr"
    assert main([*other, "--output", "1", "--unit-axis", "act=0", "--out", str(out)]) == 0
    result = dk.open(out)
    assert result.attrs["output"] == "output 'linear_2'"
    assert result.attrs["site_info"]["act"]["unit_axis_from"] == "given"
    with pytest.raises(SystemExit):
        main([*other, "--unit-axis", "act=x", "--out", str(tmp_path / "f.zarr")])
    assert "SITE=AXIS" in capsys.readouterr().err
    assert main([*other, "--output", "1", "--unit-axis", "act=4", "--out",
                 str(tmp_path / "g.zarr")]) == 2  # fmt: skip
    assert "entry of site 'act' must be an axis" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("a.zarr", "d.zarr", "g.zarr"))
