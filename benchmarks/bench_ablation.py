"""B1: cumulative ablation — directionkit vs the naive hook-per-intervention loop.

Workload (issue 3): MLP 784-512-512-10, 10,000 examples, all 1,024 hidden units,
10 orderings x 21 fractions.  Three ways compute the same 210 accuracies: the naive
loop, directionkit's general M-batched path (checked identical to the naive loop) and
its incremental path for plain ReLU MLPs (float64; checked to differ by at most one
example per point, and the number of such points is reported).

    python benchmarks/bench_ablation.py            # full workload
    python benchmarks/bench_ablation.py --quick    # CI smoke check, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, orderings, fractions = (1000, 3, 5) if args.quick else (10_000, 10, 21)
    model, x, y = b1_workload(n)
    adapter = TorchAdapter(model, example_input=x[:1])

    data = (x, y.numpy())
    runs = {}
    for method in ("incremental", "general"):
        t0 = time.perf_counter()
        runs[method] = ablation_curve(
            adapter, data, "all", orderings, fractions, batch_size=1000, method=method
        )
        runs[method + "_s"] = time.perf_counter() - t0
    order = runs["general"]["ablation_order"].values[0]
    grid = runs["general"]["fraction"].values
    t0 = time.perf_counter()
    base = naive(model, x, y, order, grid, batch=1000)
    t_naive = time.perf_counter() - t0
    general = runs["general"]["ablation_accuracy"].values[0]
    incremental = runs["incremental"]["ablation_accuracy"].values[0]
    np.testing.assert_array_equal(general, base)  # same float32 forward passes: identical
    differing = int(np.count_nonzero(incremental != base))
    worst = float(np.abs(incremental - base).max()) * n
    assert worst <= 1, "incremental curve differs from the naive loop by more than one example"
    print(f"B1 cumulative ablation: MLP 784-512-512-10, {n} examples, all 1,024 hidden units, "
          f"{orderings}x{fractions} curve points")  # fmt: skip
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")  # fmt: skip
    print(f"naive hook loop                 {t_naive:8.2f} s")
    print(f"directionkit, general M-batched {runs['general_s']:8.2f} s  "
          f"{t_naive / runs['general_s']:6.2f} x  (identical)")  # fmt: skip
    print(f"directionkit, incremental       {runs['incremental_s']:8.2f} s  "
          f"{t_naive / runs['incremental_s']:6.2f} x  ({differing} of {base.size} points "
          f"differ from the naive loop, by at most {worst:.0f} example)")  # fmt: skip


if __name__ == "__main__":
    main()
