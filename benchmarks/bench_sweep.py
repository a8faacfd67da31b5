"""A sweep of 16 small models: 2 Dask process workers vs a plain sequential loop.

    python benchmarks/bench_sweep.py            # full run, by hand (see RESULTS.md)
    python benchmarks/bench_sweep.py --quick    # seconds: a smoke check, no targets

The population: 16 digits MLPs (4 label-corruption levels x 4 seeds), each trained from a
:class:`~directionkit.reference_models.train.TrainConfig` and then analysed on its own
training data (the labels it memorised) with :func:`directionkit.analyze`'s defaults
(10 orderings x 21 fractions, statistics, importance, noise, weight norms).

1. Sequential: a plain loop in this process, ``train()`` then ``analyze()`` per model, with
   torch and BLAS at one thread, as each sweep worker runs.  (At torch's default of 2
   threads, tiny matmuls on this 2-core machine are far slower whenever the other core is
   busy -- see "Threads" under issue 5 in RESULTS.md -- which would flatter the sweep.)
2. The same tasks on a plain ``ProcessPoolExecutor`` of 2 spawned processes, pool start-up
   included: what two processes gain over one on this machine, without Dask; the ceiling
   for any scheduler here.
2b. ``directionkit.sweep(configs, "train", train_data="train", client=None)``: a
   LocalCluster started by the sweep (one single-threaded process worker per core: 2
   here), cluster start-up included in the time.  Target: >= 1.7x faster than (1).
   The peak resident memory of each worker comes from the store (``peak_rss_mb``).
3. The cheap AUC estimate (:func:`directionkit.estimate_auc`; the default fractions
   (0.25, 0.5) x 3 orderings, and two denser choices) of every trained model against its
   full AUC from the sweep (21 fractions x 10 orderings): Spearman rank correlation over
   the 16 models, and the default's cost against one training epoch (the mean
   ``epoch_seconds`` of the run's history: one epoch's training plus its evaluation, on a
   single-threaded sweep worker; the estimate is timed single-threaded too).
4. :func:`directionkit.selection_report` on the sweep (test accuracy as the target).

Both (1) and (2) train from scratch into separate run folders.  Exit status 1 if the
speed-up target is missed (full mode only).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

import directionkit as dk
from directionkit.reference_models.runs import run_data
from directionkit.reference_models.train import TrainConfig, load_model, train


def configs(quick: bool) -> dict[str, TrainConfig]:
    base = {"dataset": "digits", "model": "mlp", "optimizer": "adam", "lr": 1e-3,
            "standardize": True, "device": "cpu", "batch_size": 64}  # fmt: skip
    if quick:
        base |= {"hidden": (32,), "epochs": 2, "train_limit": 300, "test_limit": 200}
        grid = [(c, 0) for c in (0.0, 0.5, 1.0)] + [(0.0, 1)]
    else:
        base |= {"hidden": (256, 256), "epochs": 15}
        grid = [(c, s) for c in (0.0, 0.25, 0.5, 0.75) for s in range(4)]
    return {f"c{c}_s{s}": TrainConfig(**base, corruption=c, seed=s) for c, s in grid}


def analyze_kwargs(quick: bool) -> dict[str, object]:
    if quick:
        return {"orderings": 2, "fractions": 5, "noise_repeats": 2}
    return {}


def one_model(config: TrainConfig, run: Path, kwargs: dict[str, object]) -> float:
    """Train one model into ``run`` and analyse it, at one thread; its seconds."""
    began = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            train(config, run, progress=False, onnx=False)
            data = run_data(run, "train")
            dk.analyze(load_model(run), data, train_data=data, progress=False, **kwargs)  # type: ignore[arg-type]
    finally:
        torch.set_num_threads(threads)
    return time.perf_counter() - began


def sequential(models: dict[str, TrainConfig], root: Path, kwargs: dict[str, object]) -> float:
    """The same work in a plain loop, one thread (as each sweep worker has)."""
    began = time.perf_counter()
    for name, config in models.items():
        one_model(config, root / name, kwargs)
    return time.perf_counter() - began


def pool_task(config: TrainConfig, run: Path, kwargs: dict[str, object]) -> dict[str, float]:
    """:func:`one_model` in a pool process, with when and where it ran (the timeline)."""
    began = time.time()
    seconds = one_model(config, run, kwargs)
    return {"seconds": seconds, "started_at": began, "ended_at": time.time(),
            "pid": os.getpid()}  # fmt: skip


def _leave_fast() -> None:
    """Pool processes skip the interpreter's teardown at exit, as the sweep's workers do.

    Tearing down torch took 1-4 s per process on this machine, which the pool's shutdown
    waits for; the sweep's own workers skip it (``directionkit.population._worker``), so the
    ceiling does too.
    """
    import atexit

    def leave() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    atexit.register(leave)


def process_pool(
    models: dict[str, TrainConfig],
    root: Path,
    kwargs: dict[str, object],
    marks: list[tuple[str, float, object]] | None = None,
) -> tuple[float, list[float]]:
    """The ceiling without Dask: the same tasks on a plain pool of 2 spawned processes.

    Pool start-up (spawn, imports) included, as the sweep's cluster start-up is; its
    processes leave without the interpreter's teardown, as the sweep's workers do.  What
    two processes gain over one on this machine bounds what any scheduler can gain.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    marks = [] if marks is None else marks
    began = time.perf_counter()
    marks.append(("connect", time.time(), None))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, initializer=_leave_fast) as pool:
        jobs = [pool.submit(pool_task, c, root / n, kwargs) for n, c in models.items()]
        for job in jobs:
            marks.append(("task", time.time(), job.result()))
        marks.append(("collected", time.time(), None))
    marks.append(("closed", time.time(), None))
    seconds = [float(m[2]["seconds"]) for m in marks if m[0] == "task"]  # type: ignore[index]
    return time.perf_counter() - began, seconds


PHASES = ("prepare", "start", "scatter", "to 1st task", "tasks", "collect", "shutdown", "total")


def phases(t0: float, marks: list[tuple[str, float, object]]) -> dict[str, float]:
    """Wall seconds of each phase of one run, from its marks (see ``population._timeline._mark``).

    prepare: the call until the cluster is asked for (store creation); start: until the
    workers are up (the pool starts its processes with the first task, so 0 there);
    scatter: the data to the workers; to 1st task: until the first task begins on a
    worker; tasks: first task start to last task end; collect: until the driver has every
    result; shutdown: closing the cluster / pool.
    """
    at = {event: t for event, t, _ in marks if event != "task"}
    spans = [d for event, _, d in marks if event == "task"]
    first = min(float(d["started_at"]) for d in spans)  # type: ignore[index]
    last = max(float(d["ended_at"]) for d in spans)  # type: ignore[index]
    connected = at.get("connected", at["connect"])
    scattered = at.get("scattered", connected)
    return {
        "prepare": at["connect"] - t0,
        "start": connected - at["connect"],
        "scatter": scattered - connected,
        "to 1st task": first - scattered,
        "tasks": last - first,
        "collect": at["collected"] - last,
        "shutdown": at["closed"] - at["collected"],
        "total": at["closed"] - t0,
    }


def task_seconds(marks: list[tuple[str, float, object]]) -> tuple[float, float]:
    """Mean seconds of each process's first task (imports included) and of the others."""
    spans = sorted((d for e, _, d in marks if e == "task"), key=lambda d: d["started_at"])  # type: ignore[index]
    seen: set[float] = set()
    firsts, others = [], []
    for d in spans:
        pid = d["pid"]  # type: ignore[index]
        seconds = float(d["ended_at"]) - float(d["started_at"])  # type: ignore[index]
        (others if pid in seen else firsts).append(seconds)
        seen.add(pid)
    return float(np.mean(firsts)), float(np.mean(others)) if others else float("nan")


def timeline(models: dict[str, TrainConfig], kwargs: dict[str, object], repeats: int) -> None:
    """The sequential loop once, then ``repeats`` x (process pool, sweep), back to back."""
    from directionkit.population import _timeline

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seq = sequential(models, root / "sequential", kwargs)
        print(f"sequential loop {seq:.1f} s ({seq / len(models):.2f} s per model)")
        header = "".join(f"{p:>12}" for p in PHASES)
        print(f"{'run':<10}{header}{'1st task':>10}{'task':>8}{'vs seq':>8}")
        for r in range(repeats):
            for kind in ("pool", "sweep"):
                marks: list[tuple[str, float, object]] = []
                t0 = time.time()
                if kind == "pool":
                    process_pool(models, root / f"pool{r}", kwargs, marks)
                else:
                    _timeline._TIMELINE = marks
                    try:
                        dk.sweep(
                            models, "train", train_data="train", store=root / f"s{r}.zarr",
                            runs_dir=root / f"runs{r}", progress=False, **kwargs,  # type: ignore[arg-type]
                        )  # fmt: skip
                    finally:
                        _timeline._TIMELINE = None
                row = phases(t0, marks)
                first, other = task_seconds(marks)
                cells = "".join(f"{row[p]:12.2f}" for p in PHASES)
                print(f"{kind + str(r):<10}{cells}{first:10.2f}{other:8.2f}"
                      f"{seq / row['total']:7.2f}x", flush=True)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke check: seconds, no target")
    parser.add_argument("--timeline", type=int, metavar="N", default=0,
                        help="only the phases: the loop once, then N x (pool, sweep)")  # fmt: skip
    args = parser.parse_args()
    models = configs(args.quick)
    kwargs = analyze_kwargs(args.quick)
    if args.timeline:
        print(f"# bench_sweep --timeline {args.timeline}: {len(models)} digits MLPs, "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
              f"{os.getloadavg()[0]:.1f}")  # fmt: skip
        timeline(models, kwargs, args.timeline)
        return 0
    print(f"# bench_sweep ({'quick' if args.quick else 'full'}): {len(models)} digits MLPs; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seq = sequential(models, root / "sequential", kwargs)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"sequential loop             {seq:8.1f} s  (this process's peak RSS {rss:.0f} MiB)")
        pooled, per_model = process_pool(models, root / "pool", kwargs)
        print(f"plain process pool, 2 procs {pooled:8.1f} s  speed-up {seq / pooled:.2f}x: the "
              f"ceiling without Dask on this machine (a model took {np.mean(per_model):.1f} s "
              f"there, {seq / len(models):.1f} s in the loop)")  # fmt: skip

        began = time.perf_counter()
        result = dk.sweep(
            models, "train", train_data="train", store=root / "s.zarr",
            runs_dir=root / "runs", progress=False, **kwargs,  # type: ignore[arg-type]
        )  # fmt: skip
        swept = time.perf_counter() - began
        ds = result.dataset
        print(f"dk.sweep, 2 process workers {swept:8.1f} s  speed-up {seq / swept:.2f}x "
              f"(target >= 1.7x)")  # fmt: skip
        print(f"  per-model task seconds: mean {float(ds['seconds'].mean()):.1f}, "
              f"max {float(ds['seconds'].max()):.1f}")  # fmt: skip
        first_start = float((ds["finished_at"] - ds["seconds"]).min())
        compute = float(ds["finished_at"].max()) - first_start
        print(f"  of which tasks running (first start to last end) {compute:.1f} s: speed-up "
              f"{seq / compute:.2f}x without cluster start-up and shutdown")  # fmt: skip
        print(f"  worker peak RSS (MiB, at the end of each task): "
              f"max {float(ds['peak_rss_mb'].max()):.0f}, "
              f"median {float(ds['peak_rss_mb'].median()):.0f}")  # fmt: skip

        full = ds["ablation_auc"].sel(scope="all").values
        variants = {  # (fractions, orderings): the default first
            "(0.25, 0.5) x3": ((0.25, 0.5), 3),
            "(0.5, 0.75, 0.9) x3": ((0.5, 0.75, 0.9), 3),
            "(0.25, 0.5, 0.75, 0.9) x10": ((0.25, 0.5, 0.75, 0.9), 10),
        }
        found: dict[str, list[float]] = {v: [] for v in variants}
        costs, epochs = [], []
        torch.set_num_threads(1)
        limits = threadpool_limits(1)
        for name in models:
            run = root / "runs" / name
            model = load_model(run)
            data = run_data(run, "train")
            dk.estimate_auc(model, data)  # warm-up (first call pays for adapter discovery)
            for label, (fractions, orderings) in variants.items():
                began = time.perf_counter()
                found[label].append(dk.estimate_auc(model, data, fractions, orderings))
                if label == next(iter(variants)):
                    costs.append(time.perf_counter() - began)
            epochs.append(float(xr.open_zarr(run / "history.zarr")["epoch_seconds"].mean()))
        limits.restore_original_limits()
        estimates = found[next(iter(variants))]
        for label, values in found.items():
            rho = float(spearmanr(values, full).statistic) if len(models) > 2 else float("nan")
            print(f"estimate_auc {label:<27} vs full AUC: Spearman {rho:+.3f}, mean "
                  f"|difference| {np.mean(np.abs(np.array(values) - full)):.3f}")  # fmt: skip
        ratio = np.array(costs) / np.array(epochs)
        print(f"  estimate cost: mean {np.mean(costs) * 1000:.0f} ms; {np.mean(ratio):.2f}x one "
              f"training epoch (median {np.median(ratio):.2f}x)")  # fmt: skip
        print("  model        full AUC  estimate  test acc")
        for i, name in enumerate(models):
            print(f"  {name:<12} {full[i]:8.3f}  {estimates[i]:8.3f}  "
                  f"{float(ds['test_accuracy'][i]):8.3f}")  # fmt: skip
        if len(models) >= 8:
            report = dk.selection_report(
                result, ["ablation_auc", "noise_auc", "train_loss", "weight_l1_mean"],
                n_subsets=1000,
            )  # fmt: skip
            print("selection (target test_accuracy, sub-selections of "
                  f"{int(report['subset_size'][0])} of {len(models)}):")  # fmt: skip
            for measure in report["measure"].values:
                row = report.sel(measure=measure)
                pairs = zip(row["top"].values, row["top_hit_rate"].values, strict=True)
                hits = ", ".join(f"top{k} {float(v):.2f}" for k, v in pairs)
                print(f"  {measure:<15} Spearman {float(row['spearman']):+.3f}  {hits}  gap "
                      f"{float(row['gap_mean']):.3f} ± {float(row['gap_sd']):.3f}")  # fmt: skip
    if not args.quick and seq / swept < 1.7:
        print("target missed: speed-up below 1.7x", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
