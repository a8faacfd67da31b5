"""directionkit.sweep on real Dask clusters: the store, resuming, killed workers and drivers.

Three tests start a real ``LocalCluster`` with process workers (a few seconds each on a
loaded 2-core machine); the others use an in-process cluster, which runs the same code
path except for the process boundary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import directionkit as dk
from directionkit.testing import NumpyMLPAdapter

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

KWARGS = {"orderings": 3, "fractions": 6, "noise_repeats": 2, "noise_scales": [0.0, 0.5, 2.0]}
REPO = Path(__file__).resolve().parents[2]


def make_net(path: str) -> NumpyMLPAdapter:
    """Model ``i`` of the test population: widths differ (4 + i, 3) so unit counts differ."""
    i = int(Path(path).name)
    return NumpyMLPAdapter.random(n_in=5, hidden=(4 + i, 3), n_classes=3, seed=i)


def slow_net(path: str) -> NumpyMLPAdapter:
    """:func:`make_net`, after a pause: long enough to kill something mid-task."""
    time.sleep(float(os.environ.get("DK_TEST_DELAY", "0")))
    return make_net(path)


def population(tmp: Path, n: int, factory: object = make_net) -> dict[str, dk.Checkpoint]:
    return {f"m{i}": dk.Checkpoint(str(tmp / str(i)), factory) for i in range(n)}  # type: ignore[arg-type]


def data() -> tuple[np.ndarray, np.ndarray]:
    X = np.random.default_rng(0).normal(size=(80, 5))
    y = make_net("0").predict(X)
    y[:3] = [0, 1, 2]  # every class present
    return X, y


def expected(i: int) -> dk.Analysis:
    """The same model analysed directly, without Dask: the independent computation."""
    X, y = data()
    return dk.analyze(make_net(str(i)), (X, y), train_data=(X, y), progress=False, **KWARGS)


def check_model(result: dk.SweepResult, name: str, i: int) -> None:
    want = expected(i).dataset
    row = result.dataset.sel(model=name)
    assert bool(row["done"])
    assert float(row["accuracy"]) == float(want["accuracy"])
    np.testing.assert_allclose(row["ablation_accuracy"].values, want["ablation_accuracy"].values)
    np.testing.assert_allclose(row["ablation_auc"].values, want["ablation_auc"].values)
    np.testing.assert_allclose(row["noise_accuracy"].values, want["noise_accuracy"].values)
    assert int(row["n_units"]) == want.sizes["unit"] == 4 + i + 3
    assert 10 < float(row["peak_rss_mb"]) < 2**16  # MiB: a Python process, not a forked parent
    assert float(row["selectivity_mean"]) == pytest.approx(float(want["selectivity"].mean()))
    units = result.units(name)
    for variable in ("selectivity", "class_mean", "importance_accuracy", "weight_l1"):
        np.testing.assert_allclose(units[variable].values, want[variable].values)
    assert list(units["site"].values) == list(want["site"].values)


@pytest.fixture(autouse=True)
def _dask_scheduler_restored() -> Iterator[None]:
    """In-process clusters can leave dask's default scheduler switched (see _sweep)."""
    before = dask.config.get("scheduler", None)
    yield
    dask.config.set(scheduler=before)


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    """An in-process cluster: fast to start, same sweep code.

    One thread: zarr warnings are silenced with a process-global filter (store.write_zarr),
    which threads running side by side would switch on and off under each other.
    """
    with distributed.Client(
        processes=False,
        n_workers=1,
        threads_per_worker=1,
        dashboard_address=":0",
        set_as_default=False,
    ) as c:
        yield c


# --------------------------------------------------------------------------- real processes

SCRIPT = """
import sys
import numpy as np
import directionkit as dk
from directionkit.testing import NumpyMLPAdapter

def make_net(path):  # defined in the script: Dask pickles it by value
    import os, time
    from pathlib import Path
    time.sleep(float(os.environ.get("DK_TEST_DELAY", "0")))
    i = int(Path(path).name)
    return NumpyMLPAdapter.random(n_in=5, hidden=(4 + i, 3), n_classes=3, seed=i)

store, tmp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = np.random.default_rng(0).normal(size=(80, 5))
y = make_net(tmp + "/0").predict(X)
y[:3] = [0, 1, 2]
models = {f"m{i}": dk.Checkpoint(f"{tmp}/{i}", make_net) for i in range(n)}
result = dk.sweep(models, (X, y), train_data=(X, y), store=store, progress=False,
                  orderings=3, fractions=6, noise_repeats=2, noise_scales=[0.0, 0.5, 2.0])
print("DONE", len(result.done))
"""


def _env(delay: float) -> dict[str, str]:
    return {**os.environ, "DK_TEST_DELAY": str(delay), "PYTHONPATH": str(REPO)}


def test_a_script_piped_through_stdin_runs_on_process_workers(tmp_path: Path) -> None:
    """``python - < script.py``: a bare LocalCluster fails there ("Nanny failed to start")."""
    store = tmp_path / "s.zarr"
    run = subprocess.run(
        [sys.executable, "-", str(store), str(tmp_path), "3"],
        input=SCRIPT, capture_output=True, text=True, timeout=300, env=_env(0), cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "DONE 3" in run.stdout
    assert "Nanny failed" not in run.stderr
    opened = xr.open_zarr(store)  # plain xarray sees the model dim
    assert opened.sizes["model"] == 3 and opened["ablation_auc"].dims == ("model", "scope")
    assert list(opened["model"].values) == ["m0", "m1", "m2"]
    result = dk.open_sweep(store)
    for i in range(3):
        check_model(result, f"m{i}", i)
    padded = result.unit_variable("selectivity")
    assert padded.dims == ("model", "unit") and padded.sizes["unit"] == 4 + 2 + 3
    assert np.isnan(padded.sel(model="m0").values[7:]).all()
    np.testing.assert_allclose(padded.sel(model="m1").values[:8], expected(1)["selectivity"])


def test_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL one worker process mid-sweep: Dask reruns its task, every model ends done."""
    os.environ["DK_TEST_DELAY"] = "0.8"
    store = tmp_path / "s.zarr"
    models = population(tmp_path, 6, slow_net)
    try:
        with (
            distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as c,
            ThreadPoolExecutor(1) as pool,
        ):
            before = c.run(os.getpid)
            running = pool.submit(
                dk.sweep, models, data(), train_data=data(), store=store, client=c,
                progress=False, **KWARGS,
            )  # fmt: skip
            deadline = time.monotonic() + 120
            while not (store.exists() and xr.open_zarr(store)["done"].values.any()):
                if running.done():  # finished or failed before the kill: say which
                    pytest.fail(f"the sweep ended before any model was done: {running.result()}")
                assert time.monotonic() < deadline
                time.sleep(0.05)
            victim = next(iter(before.values()))
            os.kill(victim, signal.SIGKILL)
            result = running.result(timeout=300)
            after = c.run(os.getpid)
        assert victim not in after.values()  # the worker really died (the nanny restarted it)
    finally:
        del os.environ["DK_TEST_DELAY"]
    assert result.done == list(models)
    for i in range(6):
        check_model(result, f"m{i}", i)
    # rerun: nothing left to do, nothing redone (no cluster is even contacted)
    again = dk.sweep(models, data(), train_data=data(), store=store, client="tcp://127.0.0.1:1",
                     progress=False, **KWARGS)  # fmt: skip
    xr.testing.assert_identical(again.dataset, result.dataset)


def test_a_rerun_task_of_a_finished_model_writes_nothing(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    """Dask reruns a finished task whose worker died (its result was lost with it); the
    rerun must neither redo the model nor rewrite its region after the sweep returned
    (CI once saw ``seconds`` of such a model change after the sweep had returned)."""
    from directionkit.population._tasks import _run_one

    store = tmp_path / "s.zarr"
    models = population(tmp_path, 2)
    result = dk.sweep(models, data(), train_data=data(), store=store, client=client,
                      progress=False, **KWARGS)  # fmt: skip
    units_before = sorted(p.stat().st_mtime_ns for p in (store / "units" / "m1").rglob("*"))
    again = _run_one(str(store), 1, "m1", models["m1"], data(), data(), str(tmp_path / "runs"),
                     KWARGS, True)  # fmt: skip
    assert again["skipped"] is True
    xr.testing.assert_identical(dk.open_sweep(store).dataset, result.dataset)
    assert sorted(p.stat().st_mtime_ns for p in (store / "units" / "m1").rglob("*")) == units_before


def test_a_killed_driver_resumes_without_redoing_finished_models(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    """Kill the whole sweep (driver, cluster, workers) mid-run; rerun on the same store."""
    store = tmp_path / "s.zarr"
    script = tmp_path / "sweep_script.py"  # no __main__ guard: the sweep copes with that too
    script.write_text(SCRIPT)
    process = subprocess.Popen(
        [sys.executable, str(script), str(store), str(tmp_path), "6"],
        env=_env(1.0), cwd=tmp_path, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (store.exists() and xr.open_zarr(store)["done"].values.sum() >= 2):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and the workers it spawned
        process.communicate()
    partial = dk.open_sweep(store)
    finished = partial.done
    assert 2 <= len(finished) < 6, finished
    stamps = partial.dataset["finished_at"].sel(model=finished).values.copy()

    # the rerun: the script's models (same paths, a factory of the same name), analysed
    # here on in-process workers
    resumed = dk.sweep(
        population(tmp_path, 6, make_net), data(), train_data=data(), store=store,
        client=client, progress=False, **KWARGS,
    )  # fmt: skip
    assert resumed.done == [f"m{i}" for i in range(6)]
    np.testing.assert_array_equal(resumed.dataset["finished_at"].sel(model=finished), stamps)
    for i in range(6):
        check_model(resumed, f"m{i}", i)
    assert not [p for p in (store / "units").iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- in-process


def test_rerun_skips_finished_models_and_a_different_sweep_is_refused(
    tmp_path: Path, client
) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "s.zarr"
    models = population(tmp_path, 2)
    first = dk.sweep(models, data(), store=store, client=client, progress=False, orderings=2)
    again = dk.sweep(models, data(), store=store, client=client, progress=False, orderings=2)
    xr.testing.assert_identical(first.dataset, again.dataset)  # finished_at unchanged
    with pytest.raises(dk.StoreError, match="other analyze"):
        dk.sweep(models, data(), store=store, client=client, progress=False, orderings=3)
    with pytest.raises(dk.StoreError, match=r"new: \['m2'\]"):
        dk.sweep(population(tmp_path, 3), data(), store=store, client=client, progress=False,
                 orderings=2)  # fmt: skip
    third = dk.sweep(models, data(), store=store, client=client, progress=False, orderings=3,
                     overwrite=True)  # fmt: skip
    assert third.dataset.sizes["ordering"] == 3 and third.done == ["m0", "m1"]


def _chunk_files(array: Path) -> list[Path]:
    return sorted(p for p in (array / "c").rglob("*") if p.is_file())


def test_damaged_or_missing_chunks_are_errors_naming_the_variable(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "s.zarr"
    dk.sweep(population(tmp_path, 2), data(), store=store, client=client, progress=False,
             orderings=2)  # fmt: skip
    # a flipped bit in model m1's chunk of a root array: the checksum catches it
    chunk = _chunk_files(store / "accuracy")[1]
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    chunk.write_bytes(bytes(raw))
    with pytest.raises(dk.StoreError, match=r"damaged: variable 'accuracy' has a damaged chunk"):
        dk.open_sweep(store)
    raw[len(raw) // 2] ^= 0x01  # repaired: the store reads again, with its values
    chunk.write_bytes(bytes(raw))
    result = dk.open_sweep(store)
    assert result.done == ["m0", "m1"]
    assert float(result.dataset["accuracy"].sel(model="m1")) == float(expected(1)["accuracy"])
    # a model's per-unit group: a deleted chunk file is missing, not silently NaN
    (deleted,) = _chunk_files(store / "units" / "m0" / "selectivity")
    deleted.unlink()
    with pytest.raises(dk.StoreError, match=r"variable 'selectivity' is missing its file"):
        result.units("m0")
    with pytest.raises(dk.StoreError, match="'selectivity'"):
        result.unit_variable("selectivity")
    np.testing.assert_allclose(result.units("m1")["selectivity"], expected(1)["selectivity"])


def failing(path: str) -> NumpyMLPAdapter:
    if Path(path).name == "1" and not Path(path).with_name("fixed").exists():
        raise RuntimeError("checkpoint 1 is corrupt")
    return make_net(path)


def test_a_failing_model_is_named_and_retried_alone(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "s.zarr"
    models = population(tmp_path, 3, failing)
    failed = r"1 of 3 models .*\(m1: RuntimeError: checkpoint"
    with pytest.raises(dk.DirectionKitError, match=failed):
        dk.sweep(models, data(), store=store, client=client, progress=False, orderings=2)
    partial = dk.open_sweep(store)
    assert partial.done == ["m0", "m2"]
    stamps = partial.dataset["finished_at"].sel(model=["m0", "m2"]).values.copy()
    (tmp_path / "fixed").touch()
    result = dk.sweep(models, data(), store=store, client=client, progress=False, orderings=2)
    assert result.done == ["m0", "m1", "m2"]
    np.testing.assert_array_equal(result.dataset["finished_at"].sel(model=["m0", "m2"]), stamps)
    with pytest.raises(dk.StoreError, match=r"'m1' .* is not done"):
        partial.units("m1")


def test_train_then_analyse_configs_with_their_metadata(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    train = pytest.importorskip("directionkit.reference_models.train")
    runs = pytest.importorskip("directionkit.reference_models.runs")
    configs = [
        train.TrainConfig(
            dataset="digits",
            hidden=(12,),
            epochs=2,
            lr=1e-2,
            corruption=c,
            train_limit=300,
            test_limit=150,
            device="cpu",
        )
        for c in (0.0, 1.0)
    ]
    result = dk.sweep(
        configs, "train", store=tmp_path / "s.zarr", client=client, progress=False,
        metrics=["statistics", "ablation"], orderings=2, fractions=5,
        metadata={"model_0001": {"note": "shuffled"}},
    )  # fmt: skip
    ds = result.dataset
    assert list(ds["config_corruption"].values) == [0.0, 1.0]
    assert list(ds["config_hidden"].values) == ["[12]", "[12]"]
    assert list(ds["note"].values) == ["null", "shuffled"]
    for i in range(len(configs)):
        run = tmp_path / "s.zarr.runs" / f"model_{i:04d}"
        history = xr.open_zarr(run / "history.zarr")
        row = ds.isel(model=i)
        assert float(row["test_accuracy"]) == float(history["test_accuracy"][-1])
        assert float(row["train_loss"]) == float(history["train_loss"][-1])
        assert int(row["epochs_trained"]) == 2
        want = dk.analyze(
            train.load_model(run), runs.run_data(run, "train"), progress=False,
            metrics=["statistics", "ablation"], orderings=2, fractions=5,
        )  # fmt: skip
        np.testing.assert_allclose(row["ablation_auc"].values, want["ablation_auc"].values)
        assert float(row["accuracy"]) == float(want["accuracy"])
    assert result.dataset.attrs["sweep"]["models"]["model_0000"]["kind"] == "train"


def test_bad_arguments_are_refused_before_any_work(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "s.zarr"
    models = population(tmp_path, 1)
    with pytest.raises(dk.InvalidParameterError, match=r"'models' parameter of sweep .* '\.\./x'"):
        dk.sweep({"../x": models["m0"]}, data(), store=store, client=client)
    with pytest.raises(dk.InvalidParameterError, match=r"'data' parameter .* 'm0'"):
        dk.sweep(models, "train", store=store, client=client)
    with pytest.raises(dk.InvalidParameterError, match=r"unknown keyword arguments \['ordering'\]"):
        dk.sweep(models, data(), store=store, client=client, ordering=3)
    with pytest.raises(dk.InvalidParameterError, match="'train_data' parameter"):
        dk.sweep(models, data(), store=store, client=client, metrics=["noise"])
    with pytest.raises(dk.InvalidParameterError, match="'client' parameter"):
        dk.sweep(models, data(), store=store, client=42)
    assert not store.exists()
    dk.Analysis(xr.Dataset({"accuracy": 0.5})).save(store)
    with pytest.raises(dk.StoreError, match="not a directionkit sweep"):
        dk.open_sweep(store)
    with pytest.raises(dk.StoreError, match="something other than a directionkit sweep"):
        dk.sweep(models, data(), store=store, client=client)


# --------------------------------------------------------------------------- the command


def test_the_sweep_command_reads_a_toml_config(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    train = pytest.importorskip("directionkit.reference_models.train")
    from directionkit.cli import main

    tiny = {"dataset": "digits", "hidden": [8], "epochs": 1, "train_limit": 200,
            "test_limit": 100, "device": "cpu"}  # fmt: skip
    train.train(train.TrainConfig.from_dict(tiny), tmp_path / "runs" / "old", progress=False,
                onnx=False)  # fmt: skip
    (tmp_path / "sweep.toml").write_text(
        textwrap.dedent(
            """
            [sweep]
            data = "train"
            runs_dir = "runs"

            [analyze]
            metrics = ["statistics", "ablation"]
            orderings = 2
            fractions = 5

            [models.old]
            run = "runs/old"

            [grid]
            base = {dataset = "digits", hidden = [8], epochs = 1, train_limit = 200, device = "cpu"}
            corruption = [0.0, 1.0]
            """
        )
    )
    store = tmp_path / "s.zarr"
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=False,
            protocol="tcp",
            dashboard_address=":0",
        ) as cluster,
    ):
        argv = ["sweep", str(tmp_path / "sweep.toml"), "--store", str(store)]
        before = dask.config.get("scheduler", None)
        assert main([*argv, "--scheduler", cluster.scheduler_address, "--no-progress"]) == 0
        assert dask.config.get("scheduler", None) == before  # dask's default left alone
    printed = capsys.readouterr().out
    assert "3 of 3 models done" in printed and "corruption=1.0" in printed
    opened = xr.open_zarr(store)
    assert list(opened["model"].values) == ["old", "corruption=0.0", "corruption=1.0"]
    assert opened["config_corruption"].values.tolist() == [0.0, 0.0, 1.0]
    assert (tmp_path / "runs" / "corruption=1.0" / "config.json").is_file()
    assert main([*argv, "--no-progress", "--scheduler", "tcp://127.0.0.1:1"]) == 0  # all done

    (tmp_path / "bad.toml").write_text("[models.x]\nonnx = 'a.onnx'\nrun = 'b'\n")
    assert main(["sweep", str(tmp_path / "bad.toml"), "--store", str(store)]) == 2
    assert "exactly one of 'onnx', 'run' or 'train'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    assert "[grid]" in capsys.readouterr().out


def test_torch_modules_onnx_files_and_run_directories(tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    """Every kind of model a sweep takes, each checked against analyze() on the same model."""
    pytest.importorskip("onnxruntime")
    train = pytest.importorskip("directionkit.reference_models.train")
    runs = pytest.importorskip("directionkit.reference_models.runs")
    config = train.TrainConfig(
        dataset="digits", hidden=(10,), epochs=1, train_limit=200, test_limit=100, device="cpu"
    )
    run = tmp_path / "run"
    train.train(config, run, progress=False)
    assert (run / "model.onnx").is_file()
    X, y = runs.run_data(run, "test")
    models = {
        "module": train.load_model(run),
        "onnx": str(run / "model.onnx"),
        "run": str(run),
        "config": config,
    }
    kwargs = {"metrics": ["statistics", "ablation"], "orderings": 2, "fractions": 5}
    result = dk.sweep(
        models, (X, y), store=tmp_path / "s.zarr", runs_dir=tmp_path / "runs", client=client,
        progress=False, **kwargs,
    )  # fmt: skip
    want = dk.analyze(train.load_model(run), (X, y), progress=False, **kwargs)
    for name in models:  # the same weights four ways (ONNX in float32: close, not equal)
        row = result.dataset.sel(model=name)
        np.testing.assert_allclose(row["ablation_accuracy"], want["ablation_accuracy"], atol=0.02)
        np.testing.assert_allclose(
            result.units(name)["selectivity"], want["selectivity"], rtol=1e-4, atol=1e-5
        )
    kinds = {n: d["kind"] for n, d in result.dataset.attrs["sweep"]["models"].items()}
    assert kinds == {"module": "object", "onnx": "file", "run": "run", "config": "train"}
    assert np.isnan(result["test_accuracy"].sel(model="module"))
    history = xr.open_zarr(run / "history.zarr")
    for name in ("run", "config"):  # both trained with the same config: the same history
        assert float(result["test_accuracy"].sel(model=name)) == float(history["test_accuracy"][-1])


@pytest.mark.parametrize("closed", [True, False])
def test_a_cleanly_closed_worker_skips_the_interpreter_teardown(closed: bool) -> None:
    """The own cluster's preload: after ``dask_teardown`` the process leaves at exit without
    the rest of the teardown (torch's took past the nanny's 4 s grace period), its output
    flushed; a worker that did not close cleanly exits as usual."""
    script = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(print, "EARLIER HANDLER RAN")  # registered first: runs last
        from directionkit.population import _worker as _sweep_worker
        _sweep_worker.dask_setup(None)
        assert "directionkit.population._sweep" in sys.modules
        if {closed}:
            _sweep_worker.dask_teardown(None)
        sys.stdout.write("UNFLUSHED OUTPUT")
        sys.exit(0)
    """)  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=_env(0)
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "UNFLUSHED OUTPUT" in run.stdout
    assert ("EARLIER HANDLER RAN" in run.stdout) is not closed


def test_the_own_clusters_workers_run_without_the_profiler_and_with_quiet_event_loops() -> None:
    """Dask's 10 ms stack sampling and 20 ms ticks compete with the task for the GIL: the
    sweep's own cluster turns the one off and slows the others (a real process worker)."""
    from directionkit.population import _cluster

    def settings(dask_worker):  # type: ignore[no-untyped-def]
        import dask as worker_dask

        keys = ["distributed.worker.profile.enabled", *_cluster._QUIET_EVENT_LOOPS]
        values = [worker_dask.config.get(k) for k in keys]
        return "profile" in dask_worker.periodic_callbacks, values

    with _cluster._own_cluster(1) as started:
        _, own = started.result()
        (found,) = own.run(settings).values()
    assert found == (False, [False, *_cluster._QUIET_EVENT_LOOPS.values()])
    assert dask.config.get("distributed.worker.profile.enabled") is True  # ours left alone


def test_a_sweep_along_random_directions_is_each_model_analysed_along_them(
    tmp_path: Path, client  # type: ignore[no-untyped-def]
) -> None:
    store = tmp_path / "s.zarr"
    kwargs = {**KWARGS, "directions": "random", "metrics": ["statistics", "ablation"]}
    result = dk.sweep(population(tmp_path, 2), data(), train_data=data(), store=store,
                      client=client, progress=False, **kwargs)  # fmt: skip
    X, y = data()
    for i in range(2):
        direct = dk.analyze(make_net(str(i)), (X, y), train_data=(X, y), progress=False,
                            **kwargs).dataset  # fmt: skip
        stored = result.units(f"m{i}")
        assert stored.attrs["parameters"]["directions"] == "random"
        for name in ("direction_basis", "ablation_accuracy", "class_mean"):
            np.testing.assert_array_equal(stored[name].values, direct[name].values, name)
