"""The command line as a newcomer meets it: headline numbers, paths, messages in its own terms."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
from scipy.stats import spearmanr

import directionkit as dk
from directionkit.cli import main
from tests.cli.test_cli import _onnx_model


def _value(text: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s\s+(\S.*)$", text, re.MULTILINE)
    assert match is not None, f"{label!r} not in:\n{text}"
    return match.group(1)


def test_show_and_report_give_the_headline_numbers_and_the_page(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = _onnx_model(tmp_path)
    out = tmp_path / "run.zarr"
    assert main(["analyze", str(model), "--data", "digits", "--out", str(out), "--limit", "150",
                 "--orderings", "2", "--fractions", "3", "--no-progress"]) == 0  # fmt: skip
    analyzed = capsys.readouterr().out
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    ds = dk.open(out).dataset
    for text in (analyzed, shown):
        assert _value(text, "data") == "digits, test split, 150 examples"
        accuracy = _value(text, "accuracy")
        assert float(accuracy.split()[0]) == pytest.approx(float(ds["accuracy"]), abs=5e-5)
        # this random model is at chance: the marker is where the numbers are
        assert bool(ds["near_chance"]) and accuracy.endswith("(near chance: the AUC says little)")
        assert float(_value(text, "chance accuracy")) == pytest.approx(
            float(ds["chance_accuracy"]), abs=5e-5
        )
        auc = float(_value(text, "ablation AUC [all]").split()[0])
        assert auc == pytest.approx(float(ds["ablation_auc"].sel(scope="all")), abs=5e-5)
        selectivity = ds["selectivity"].values
        mean = float(_value(text, "mean selectivity [all]"))
        assert mean == pytest.approx(sum(selectivity) / len(selectivity), abs=5e-5)
        rho = spearmanr(selectivity, ds["importance_loss"].values).statistic
        printed = _value(text, "Spearman(selectivity, importance_loss) [all]").split()[0]
        assert float(printed) == pytest.approx(rho, abs=5e-4)
        assert re.search(r"^model\s+model\.onnx sha256:[0-9a-f]{12}…$", text, re.MULTILINE)
    assert "noise_accuracy (repeat, noise_scale)" in shown  # and what else is stored

    report = tmp_path / "report"
    assert main(["report", str(out), "--out", str(report), "--format", "svg"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == f"wrote {report / 'report.html'}"
    assert (report / "report.html").is_file() and list(report.glob("*.svg"))
    assert not list(report.glob("*.png"))


def test_errors_name_the_commands_options_not_python_parameters(
    tmp_path: Path,
    capsys,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    model = _onnx_model(tmp_path)
    base = ["analyze", str(model), "--out", str(tmp_path / "x.zarr"), "--no-progress"]
    assert main([*base, "--data", "nothing"]) == 2
    err = capsys.readouterr().err
    assert "directionkit: error: --data must be 'digits', 'fashion-mnist'" in err
    assert "Got 'nothing' instead" in err and "load_data" not in err
    assert main([*base, "--data", "digits", "--limit", "0"]) == 2
    err = capsys.readouterr().err
    assert "--limit must be an int >= 1. Got 0" in err and "parameter of" not in err
    (tmp_path / "empty").mkdir()
    assert main([*base, "--data", str(tmp_path / "empty")]) == 2  # no IDX files in it
    err = capsys.readouterr().err
    assert "directionkit: error:" in err and "root=" not in err and "parameter of" not in err
    # where the Debian package is not installed, the advice is --data, not a Python argument
    from directionkit.reference_models.datasets import _load

    monkeypatch.setattr(_load, "DEFAULT_FASHION_MNIST_ROOT", tmp_path / "not-installed")
    assert main([*base, "--data", "fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err
    assert "or give --data a directory holding the IDX files" in err and "root=" not in err
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize(
    "bad",
    [["--orderings", "0"], ["--fractions", "1"], ["--batch-size", "0"], ["--mean", "0.1", "0.2"],
     ["--scale", "-1"], ["--noise-scales", "-1"], ["--noise-repeats", "0"],
     ["--scopes", "last:0"], ["--n-bins", "1"], ["--seed", "-1"]],
)  # fmt: skip
def test_every_bad_analyze_option_is_named_as_the_option(
    tmp_path: Path, capsys, bad: list[str]
) -> None:  # type: ignore[no-untyped-def]
    model = _onnx_model(tmp_path)
    out = tmp_path / "x.zarr"
    args = ["analyze", str(model), "--data", "digits", "--limit", "40", "--out", str(out),
            "--no-progress", *bad]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"directionkit: error: {bad[0]} must be" in err and "parameter of" not in err, err
    assert not out.exists()


def test_train_errors_name_train_options(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    out = str(tmp_path / "run")
    assert main(["train", "--epochs", "0", "--out", out]) == 2
    assert "directionkit: error: --epochs must be an int >= 1. Got 0" in capsys.readouterr().err
    missing = str(tmp_path / "nowhere")
    assert main(["train", "--dataset", "fashion-mnist", "--data-root", missing, "--out", out]) == 2
    err = capsys.readouterr().err
    assert "pass --data-root a directory holding the IDX files" in err and "root=" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("name", "content", "hint"),
    [
        ("model.pt", b"PK\x03\x04 torch zip", "torch.onnx.export(model"),
        ("weights.pth", b"\x80\x02", "torch.onnx.export(model"),
        ("notes.txt", b"hello", "export your model to ONNX"),
        ("folder", None, "export your model to ONNX"),
    ],
)
def test_a_model_that_is_not_onnx_gets_how_to_export_it(
    tmp_path: Path,
    capsys,
    name: str,
    content: bytes | None,
    hint: str,  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    argv = ["analyze", str(path), "--data", "digits", "--out", str(tmp_path / "x.zarr")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"MODEL {str(path)!r} is not an ONNX file (.onnx) or a training run directory" in err
    assert hint in err and "does not know how to run" not in err
    assert main([*argv[:1], str(tmp_path / "missing.onnx"), *argv[2:]]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.zarr").exists()


def test_a_failed_onnx_export_keeps_the_run_and_analyze_says_so(tmp_path: Path) -> None:
    """Without onnxscript (the exporter torch needs) training still saves, and says why."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    run = tmp_path / "run"
    train = ["train", "--dataset", "digits", "--hidden", "8", "--epochs", "2", "--seed", "0",
             "--out", str(run), "--no-progress"]  # fmt: skip
    # a fresh interpreter where `import onnxscript` fails, as in an install without it
    blocked = (
        "import sys; sys.modules['onnxscript'] = None\n"
        "from directionkit.cli import main\n"
        f"sys.exit(main({train!r}))"
    )
    done = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "Training finished and is saved in" in done.stderr
    assert "the ONNX export failed: ModuleNotFoundError" in done.stderr
    assert "pip install 'directionkit[torch]'" in done.stderr
    assert (run / "checkpoints" / "epoch_0002.pt").is_file()
    assert (run / "history.zarr").is_dir() and not (run / "model.onnx").exists()
    assert "onnxscript" in (run / "model.onnx.error").read_text()

    analyze = ["analyze", str(run), "--data", "digits", "--out", str(tmp_path / "a.zarr")]
    done = subprocess.run(
        [sys.executable, "-m", "directionkit.cli", *analyze], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "The ONNX export of the training run" in done.stderr and "failed" in done.stderr
    assert "--no-onnx" not in done.stderr

    # with the exporter back, the same command only exports: same weights, error file gone
    weights = (run / "checkpoints" / "epoch_0002.pt").read_bytes()
    assert main(train) == 0
    assert (run / "model.onnx").is_file() and not (run / "model.onnx.error").exists()
    assert (run / "checkpoints" / "epoch_0002.pt").read_bytes() == weights
    assert xr.open_zarr(run / "history.zarr").sizes["epoch"] == 2


def test_flat_npz_rows_are_laid_out_in_the_models_image_shape(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """An MLP that takes (1, 8, 8) images, as `directionkit train` exports it, analysed on a
    .npz of flat 64-feature rows: the same numbers as on the images themselves."""
    torch = pytest.importorskip("torch")
    import numpy as np

    from directionkit.preprocessing import load_data
    from tests.adapters.onnx_models import export

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
                              torch.nn.Linear(16, 10))  # fmt: skip
    model = export(net, np.zeros((2, 1, 8, 8), np.float32), "flat_rows_cli")
    (X, y), (X_train, y_train) = load_data("digits", "test", 80), load_data("digits", "train", 80)
    npz = tmp_path / "flat.npz"
    np.savez(npz, x_test=X.reshape(80, -1), y_test=y, x_train=X_train.reshape(80, -1),
             y_train=y_train)  # fmt: skip
    common = ["--limit", "80", "--no-progress", "--metrics", "statistics", "ablation",
              "--orderings", "2", "--fractions", "3"]  # fmt: skip
    for data, out in ((str(npz), "flat.zarr"), ("digits", "images.zarr")):
        args = ["analyze", str(model), "--data", data, "--out", str(tmp_path / out), *common]
        assert main(args) == 0, capsys.readouterr().err
    flat, images = dk.open(tmp_path / "flat.zarr"), dk.open(tmp_path / "images.zarr")
    for name in ("accuracy", "selectivity", "ablation_accuracy"):
        np.testing.assert_array_equal(flat[name], images[name], err_msg=name)


def test_sweeps_without_the_dask_extra_say_how_to_install_it(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from directionkit.errors import DirectionKitError
    from directionkit.testing import NumpyMLPAdapter

    monkeypatch.setitem(sys.modules, "dask", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "distributed", None)
    config = tmp_path / "sweep.toml"
    config.write_text('[models.a]\npath = "a.onnx"\n')
    store = tmp_path / "s.zarr"
    assert main(["sweep", str(config), "--store", str(store), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "directionkit: error:" in err and "pip install 'directionkit[dask]'" in err, err
    net = NumpyMLPAdapter.random(4, (6,), 3, seed=0)
    X = np.zeros((5, 4))
    with pytest.raises(DirectionKitError, match=r"directionkit\[dask\]"):
        dk.sweep({"a": net}, (X, net.predict(X)), store=store, progress=False)
    assert not store.exists()


def test_help_imports_no_numerical_library_and_directionkit_imports_lazily() -> None:
    # what `directionkit --help` loads: the parser and the choices, nothing numerical
    # (the time it takes is measured by benchmarks/bench_cli.py, not here)
    code = (
        "import sys, contextlib, io\n"
        "from directionkit.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "heavy = [m for m in ('numpy', 'xarray', 'scipy', 'zarr', 'torch', 'onnx', 'pandas')\n"
        "         if m in sys.modules]\n"
        "print(heavy)\n"
        "import directionkit as dk\n"
        "assert callable(dk.analyze) and dk.compare.__name__ == 'compare'\n"
        "import directionkit.compare\n"
        "assert callable(dk.compare) and dk.Analysis.__name__ == 'Analysis'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert set(dk.__all__) <= set(dir(dk))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dk.nothing  # type: ignore[attr-defined]  # noqa: B018


def test_progress_bars_only_on_a_terminal_unless_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from directionkit.reference_models._train_cli import add_progress, shows_progress

    parser = argparse.ArgumentParser()
    add_progress(parser)
    for tty in (True, False):
        monkeypatch.setattr(sys.stderr, "isatty", lambda tty=tty: tty)
        assert shows_progress(parser.parse_args([])) is tty
        assert shows_progress(parser.parse_args(["--progress"])) is True
        assert shows_progress(parser.parse_args(["--no-progress"])) is False
        assert shows_progress(parser.parse_args(["--quiet"])) is False
    # a real run into a log file: no bar drawn
    model = _onnx_model(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "directionkit.cli", "analyze", str(model), "--data", "digits",
         "--limit", "40", "--metrics", "ablation", "--orderings", "2", "--fractions", "3",
         "--out", str(tmp_path / "a.zarr")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "it/s" not in done.stderr and "%|" not in done.stderr, done.stderr


def test_a_bad_option_is_refused_before_anything_is_computed(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import time

    model = _onnx_model(tmp_path)
    began = time.perf_counter()
    argv = ["analyze", str(model), "--data", "digits", "--out", str(tmp_path / "x.zarr"),
            "--no-progress", "--orderings", "-1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--orderings must be an int >= 1" in err and "Got -1" in err, err
    assert not (tmp_path / "x.zarr").exists()
    assert time.perf_counter() - began < 60  # not a timing test: a hang guard


def test_show_and_report_open_a_sweep_store_with_a_row_per_model(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    distributed = pytest.importorskip("distributed")
    import numpy as np

    from directionkit.testing import NumpyMLPAdapter

    nets = {f"n{i}": NumpyMLPAdapter.random(4, (8,), 3, seed=i) for i in range(3)}
    X = np.random.default_rng(0).normal(size=(60, 4))
    y = nets["n0"].predict(X)
    y[:3] = [0, 1, 2]
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1,
                            dashboard_address=":0", set_as_default=False) as client:  # fmt: skip
        dk.sweep(nets, (X, y), store=tmp_path / "s.zarr", client=client, progress=False,
                 orderings=2, fractions=5)  # fmt: skip
    opened = dk.open(tmp_path / "s.zarr")
    assert opened.population == ("model",)
    assert '<table class="population">' in opened._repr_html_()  # notebooks too
    assert all(f"\n  {m} " in repr(opened) for m in ("n0", "n1", "n2"))
    assert main(["show", str(tmp_path / "s.zarr")]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    for i, name in enumerate(opened["model"].values):
        auc = float(opened["ablation_auc"].sel(model=name, scope="all"))
        assert f"{auc:.4f}" in rows[name]
        assert rows[name].endswith("near chance") == bool(opened["near_chance"].values[i])
    assert not bool(opened["near_chance"].sel(model="n0"))  # its predictions are the labels
    assert main(["report", str(tmp_path / "s.zarr"), "--out", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert '<table class="population">' in page
    for name in ("n0", "n1", "n2"):
        assert f"<tr><td>{name}</td>" in page
    assert [p.name for p in (tmp_path / "r").glob("*.png")] == ["ablation_curves_per_model.png"]
    from directionkit.report.plots import population_ablation_curves

    lines = population_ablation_curves(opened).axes[0].lines
    assert [line.get_gid() for line in lines] == ["model:n0", "model:n1", "model:n2"]
    for line, flag in zip(lines, opened["near_chance"].values, strict=True):
        assert (line.get_linestyle() == "--") == bool(flag)  # flagged models dashed
    np.testing.assert_allclose(
        lines[0].get_ydata(),
        opened["ablation_accuracy"].sel(model="n0", scope="all").mean("ordering").values,
    )


def test_label_errors_name_the_data_option_not_a_loader(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    model = _onnx_model(tmp_path)
    data = tmp_path / "bad.npz"
    np.savez(data, X=np.zeros((5, 1, 8, 8), np.float32), y=np.zeros((5, 2), np.int64))
    base = ["analyze", str(model), "--out", str(tmp_path / "x.zarr"), "--no-progress"]
    assert main([*base, "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "The labels of --data must be 1-d" in err and "of load" not in err, err


def test_a_cuda_device_onnxruntime_cannot_give_is_said_and_recorded(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA: no fallback to see")
    model = _onnx_model(tmp_path)
    out = tmp_path / "x.zarr"
    argv = ["analyze", str(model), "--data", "digits", "--limit", "40", "--device", "cuda",
            "--metrics", "statistics", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "directionkit: warning: device='cuda' was asked for" in err, err
    attrs = dk.open(out).attrs
    assert attrs["device"] == "cpu" and attrs["device_asked"] == "cuda"
    assert "ran on cpu" in attrs["device_note"]
    assert main(["show", str(out)]) == 0
    assert re.search(r"^device\s+device='cuda' was asked for, but the model ran on cpu$",
                     capsys.readouterr().out, re.M)  # fmt: skip


def test_demo_and_analyze_refuse_before_any_work(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import directionkit.cli._demo

    def trained(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the demo trained before refusing")

    monkeypatch.setattr(directionkit.cli._demo, "digits_demo", trained)
    (tmp_path / "demo.zarr").mkdir()
    assert main(["demo", "--out", str(tmp_path / "demo.zarr")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    # a bad number is refused before the model is even looked for
    argv = ["analyze", str(tmp_path / "missing.onnx"), "--data", "digits",
            "--out", str(tmp_path / "x.zarr"), "--fractions", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--fractions must be an int >= 2. Got 1 instead." in err and "missing" not in err
