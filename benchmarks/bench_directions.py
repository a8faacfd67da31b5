"""B10: cumulative ablation along a random basis vs along the units (issue 25).

Along a basis ``U`` of ``k`` directions the adapters edit the projections ``p = a @ U.T``
at every position and put back ``(a - p @ U) + p' @ U``: two to three ``(rows x n x k)``
products per intervened site more than the unit path.  Target: a curve along a complete
Haar-random basis within 2x of the same curve along the units, path for path: the general,
M-batched path through both adapters, and for the MLP also the incremental path (a plain
ReLU MLP's chain, along a basis the clamped directions' projector folded into the next
layer's weights), each asserted to agree with the general path to one example per point.

Workloads, side by side in each run:

* B1's MLP 784-512-512-10 (``workload.b1_workload``), every unit (``scope="all"``),
  10 orderings x 21 fractions, 10,000 inputs;
* B5's ConvNet-11 (``bench_conv.conv_workload``, width 0.25), the last three layers
  (``scope="last:3"``, 384 feature maps, projections at every spatial position),
  10 orderings x 21 fractions, 1,000 images (as B5 recorded);

each through the torch adapter and the ONNX adapter (dynamo export, free batch axis).
Asserted in every run: the random-basis curves of torch and ONNX agree (at most one
example per point flips, a near-tie rounded differently), and the identity basis gives
the unit curve exactly.

    python benchmarks/bench_directions.py            # 3 side-by-side runs
    python benchmarks/bench_directions.py --quick    # CI smoke check, seconds
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_conv import conv_workload, export
from runs import Runs, machine
from workload import b1_workload

from directionkit import directions
from directionkit.adapters.onnx import OnnxAdapter
from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import ablation_curve


def curve(
    adapter: Any, x: np.ndarray, y: np.ndarray, scope: str, orderings: int, fractions: int,
    batch: int, basis: str, method: str = "general",
) -> np.ndarray:  # fmt: skip
    """One ablation curve along ``basis`` ("units", "random" or "identity")."""
    if basis != "units":
        build = (
            (lambda s: directions.random(s, seed=s.depth)) if basis == "random"
            else (lambda s: np.eye(s.n_units))
        )  # fmt: skip
        adapter = directions.along(adapter, {n: build(s) for n, s in adapter.sites.items()})
    result = ablation_curve(adapter, (x, y), scope, orderings, fractions, seed=0,
                            batch_size=batch, method=method)  # fmt: skip
    return np.asarray(result["ablation_accuracy"].values[0])


def one_run(
    name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, path: Path,
    scope: str, orderings: int, fractions: int, batch: int,
) -> dict[str, float]:  # fmt: skip
    xs, ys, n = x.numpy(), y.numpy(), len(y)
    times: dict[str, float] = {}
    curves: dict[str, np.ndarray] = {}
    adapters = {
        "torch": TorchAdapter(model, example_input=x[:1]),
        "ONNX": OnnxAdapter(path),
    }
    for which, adapter in adapters.items():
        adapter.run(xs[:1])  # sites found, sessions built: not part of the timing
        for basis in ("units", "random"):
            t0 = time.perf_counter()
            curves[which, basis] = curve(adapter, xs, ys, scope, orderings, fractions, batch,
                                         basis)  # fmt: skip
            times[f"{which}, {basis}"] = time.perf_counter() - t0
    if name == "MLP":  # a plain ReLU MLP's incremental path, along the units and the basis
        for basis in ("units", "random"):
            t0 = time.perf_counter()
            curves[basis, "incremental"] = curve(
                adapters["torch"], xs, ys, scope, orderings, fractions, batch, basis, "incremental"
            )
            times[f"torch, {basis} (incremental)"] = time.perf_counter() - t0
        for basis in ("units", "random"):  # float32 either way: a near-tie may differ
            differ = np.abs(curves[basis, "incremental"] - curves["torch", basis]) * n
            assert differ.max() <= 1 + 1e-9, (basis, differ.max())
    identity = curve(adapters["torch"], xs, ys, scope, orderings, fractions, batch, "identity")
    assert np.array_equal(identity, curves["torch", "units"]), "identity basis != units"
    flips = np.round(np.abs(curves["torch", "random"] - curves["ONNX", "random"]) * n)
    assert flips.max() <= 1, flips
    print(f"  {name}: random-basis curves, torch vs ONNX: {int(np.count_nonzero(flips))} of "
          f"{flips.size} points differ by 1 example; identity basis == units exactly; "
          f"AUC-ish mean accuracy units {curves['torch', 'units'].mean():.3f}, random "
          f"{curves['torch', 'random'].mean():.3f}", flush=True)  # fmt: skip
    return times


def slowdowns(runs: Runs) -> str:
    """Random-basis time over unit-basis time, path for path (median of the per-run
    ratios): the number the 2x target is about."""
    parts = []
    for path in ("torch", "ONNX", "torch, {} (incremental)"):
        units = path.format("units") if "{}" in path else f"{path}, units"
        rotated = path.format("random") if "{}" in path else f"{path}, random"
        if units in runs.seconds and rotated in runs.seconds:
            ratios = [r / u for r, u in zip(runs.seconds[rotated], runs.seconds[units],
                                            strict=True)]  # fmt: skip
            label = path.format("").replace(",  ", " ") if "{}" in path else f"{path} general"
            parts.append(f"{label} {statistics.median(ratios):.2f}x "
                         f"({', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip
    return "random basis / units, path for path (median of runs): " + "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 3; quick 1)")
    parser.add_argument("--mlp-n", type=int, default=10_000)
    parser.add_argument("--conv-n", type=int, default=1_000)
    args = parser.parse_args()
    repeat = args.repeat or (1 if args.quick else 3)
    orderings, fractions = (2, 5) if args.quick else (10, 21)
    mlp_n, conv_n = (200, 50) if args.quick else (args.mlp_n, args.conv_n)
    print(f"B10 ({'quick' if args.quick else 'full'}): {machine()}; torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads)", flush=True)  # fmt: skip
    scratch = tempfile.TemporaryDirectory()
    workloads = {
        "MLP": (*b1_workload(mlp_n), "all", min(1000, mlp_n)),
        "ConvNet-11": (*conv_workload(conv_n), "last:3", min(1000, conv_n)),
    }
    for name, (model, x, y, scope, batch) in workloads.items():
        path = Path(scratch.name) / f"{name}.onnx"
        export(model, x, path)
        runs = Runs(baseline="torch, units")
        for _ in range(repeat):
            runs.add(one_run(name, model, x, y, path, scope, orderings, fractions, batch))
        print(f"\n{name}: {len(y):,} inputs, scope {scope!r}, {orderings} x {fractions} points"
              f"\n{runs.table()}\n{slowdowns(runs)}\n", flush=True)  # fmt: skip
    print(f"done: {machine()}")


if __name__ == "__main__":
    main()
