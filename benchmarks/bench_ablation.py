"""B1: cumulative ablation — directionkit vs the naive hook-per-intervention loop.

Workload (issue 3): MLP 784-512-512-10, 10,000 examples, all 1,024 hidden units,
10 orderings x 21 fractions.  Both sides compute the same 210 accuracies; the script
checks they are identical before reporting the ratio.

    python benchmarks/bench_ablation.py            # full workload
    python benchmarks/bench_ablation.py --quick    # CI smoke check, seconds
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from directionkit.adapters.torch import TorchAdapter
from torch import nn

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
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )
    x = torch.rand(n, 784)
    y = model(x).argmax(1)
    y[::3] = torch.randint(0, 10, y[::3].shape)  # not a perfect fit
    adapter = TorchAdapter(model, example_input=x[:1])

    t0 = time.perf_counter()
    ours = ablation_curve(adapter, (x, y.numpy()), "all", orderings, fractions, batch_size=1000)
    t_ours = time.perf_counter() - t0
    order = ours["ablation_order"].values[0]
    grid = ours["fraction"].values
    t0 = time.perf_counter()
    base = naive(model, x, y, order, grid, batch=1000)
    t_naive = time.perf_counter() - t0
    np.testing.assert_array_equal(ours["ablation_accuracy"].values[0], base)
    print(f"B1 cumulative ablation: {n} examples, {orderings}x{fractions} curve points")
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")  # fmt: skip
    print(f"naive hook loop  {t_naive:8.2f} s")
    print(f"directionkit     {t_ours:8.2f} s")
    print(f"speed-up         {t_naive / t_ours:8.2f} x   (results identical)")


if __name__ == "__main__":
    main()
