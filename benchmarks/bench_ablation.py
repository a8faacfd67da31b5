"""B1: cumulative ablation — directionkit vs the naive hook-per-intervention loop.

Workload (issues 3 and 14): MLP 784-512-512-10, 10,000 examples, all 1,024 hidden units,
5 orderings x 11 fractions and 10 x 21.  Per run, side by side: the naive loop and
directionkit's incremental path for plain ReLU MLPs (float32 like the model; asserted to
differ by at most one example per point, and the number of such points is reported);
with ``--general`` also the general M-batched path (asserted identical to the naive loop).
Each run's seconds, the medians and the median per-run speed-up are printed as a table.

    python benchmarks/bench_ablation.py            # 5x11 and 10x21, 5 side-by-side runs
    python benchmarks/bench_ablation.py --quick    # CI smoke check, seconds
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from runs import Runs, machine
from torch import nn
from workload import b1_workload

from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import ablation_curve, n_clamped


def naive(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, order: np.ndarray,
          grid: np.ndarray, batch: int) -> np.ndarray:  # fmt: skip
    """For each (ordering, fraction): hooks that multiply each site by its mask, full passes."""
    sites = [model[1], model[3]]
    widths = [512, 512]
    out = np.zeros((order.shape[0], grid.size))
    model.eval()
    for o in range(order.shape[0]):
        for f, fraction in enumerate(grid):
            keep = np.ones(sum(widths), np.float32)
            keep[order[o, : n_clamped(fraction, order.shape[1])]] = 0
            masks = [torch.from_numpy(keep[:512]), torch.from_numpy(keep[512:])]
            handles = [
                s.register_forward_hook(lambda m, i, a, k=k: a * k)
                for s, k in zip(sites, masks, strict=True)
            ]
            correct = 0
            with torch.inference_mode():
                for start in range(0, len(y), batch):
                    logits = model(x[start : start + batch])
                    correct += int((logits.argmax(1) == y[start : start + batch]).sum())
            for h in handles:
                h.remove()
            out[o, f] = correct / len(y)
    return out


def one_run(
    adapter: TorchAdapter, model: nn.Sequential, x: torch.Tensor, y: torch.Tensor,
    orderings: int, fractions: int, general: bool,
) -> dict[str, float]:  # fmt: skip
    """Every method once, side by side, on one workload; exactness asserted."""
    data = (x, y.numpy())
    n = len(y)
    times, curves = {}, {}
    for method in ("incremental", "general") if general else ("incremental",):
        t0 = time.perf_counter()
        curves[method] = ablation_curve(
            adapter, data, "all", orderings, fractions, batch_size=1000, method=method
        )
        times[method] = time.perf_counter() - t0
    order = curves["incremental"]["ablation_order"].values[0]
    grid = curves["incremental"]["fraction"].values
    t0 = time.perf_counter()
    base = naive(model, x, y, order, grid, batch=1000)
    times = {"naive hook loop": time.perf_counter() - t0, **times}
    if general:  # same float32 forward passes as the naive loop: identical
        np.testing.assert_array_equal(curves["general"]["ablation_accuracy"].values[0], base)
    incremental = curves["incremental"]["ablation_accuracy"].values[0]
    worst = float(np.abs(incremental - base).max()) * n
    assert worst <= 1, "incremental curve differs from the naive loop by more than one example"
    differing = int(np.count_nonzero(incremental != base))
    print(f"  {orderings}x{fractions}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
          + f"; incremental: {differing} of {base.size} points differ from the naive loop "
          f"(by at most {worst:.0f} example)", flush=True)  # fmt: skip
    return {("directionkit " + k if k != "naive hook loop" else k): v for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="CI smoke check: seconds")
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 5; quick 1)")
    parser.add_argument(
        "--general",
        action="store_true",
        help="also time the general M-batched path (~as slow as the naive loop)",
    )
    args = parser.parse_args()
    n = 1000 if args.quick else 10_000
    shapes = [(3, 5)] if args.quick else [(5, 11), (10, 21)]
    repeat = args.repeat or (1 if args.quick else 5)
    model, x, y = b1_workload(n)
    adapter = TorchAdapter(model, example_input=x[:1])
    print(f"B1 cumulative ablation: MLP 784-512-512-10, {n} examples, all 1,024 hidden units; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"machine: {machine()}")
    runs = {shape: Runs("naive hook loop") for shape in shapes}
    for r in range(repeat):
        print(f"run {r + 1} of {repeat}", flush=True)
        general = args.general or args.quick
        for shape in shapes:
            runs[shape].add(one_run(adapter, model, x, y, *shape, general=general))
    for (orderings, fractions), table in runs.items():
        print(f"\n{orderings} orderings x {fractions} fractions ({orderings * fractions} points)")
        print(table.table())
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
