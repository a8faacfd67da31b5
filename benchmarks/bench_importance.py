"""B2: single-unit importance — directionkit vs Captum's LayerFeatureAblation.

Workload (issue 3): MLP 784-512-512-10 (random weights), 10,000 examples, the 512 units
of the first and of the last hidden layer, each clamped to zero alone; the measure is the
change in mean cross-entropy.  Captum gets a per-example loss as its forward function and
is run at several ``perturbations_per_eval``; the best is reported.  Results are checked
to agree before the ratio is printed.  Needs captum (only in the benchmark environment).

    python benchmarks/bench_importance.py            # full workload
    python benchmarks/bench_importance.py --quick    # CI smoke check
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from captum.attr import LayerFeatureAblation
from torch import nn
from torch.nn import functional
from workload import mlp

from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import unit_importance


def captum_delta_loss(
    model: nn.Sequential, layer: nn.Module, x: torch.Tensor, y: torch.Tensor, per_eval: int
) -> np.ndarray:
    def per_example_loss(inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(model(inputs), labels, reduction="none")

    ablation = LayerFeatureAblation(per_example_loss, layer)
    with torch.no_grad():
        attribution = ablation.attribute(
            x, layer_baselines=0.0, additional_forward_args=(y,), perturbations_per_eval=per_eval
        )
    # captum reports f(original) - f(ablated) per example; importance is the increase
    return -attribution.mean(dim=0).double().numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, per_evals = (500, (1, 16)) if args.quick else (10_000, (1, 4, 16, 64))
    torch.manual_seed(0)
    model = mlp()
    x = torch.rand(n, 784)
    y = torch.randint(0, 10, (n,))
    adapter = TorchAdapter(model, example_input=x[:1])
    print(f"B2 single-unit importance: MLP 784-512-512-10, {n} examples, 512 units per layer")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")  # fmt: skip
    for site, layer in (("1", model[1]), ("3", model[3])):
        t0 = time.perf_counter()
        ours = unit_importance(adapter, (x, y.numpy()), sites=[site], batch_size=1000)
        t_ours = time.perf_counter() - t0
        best, best_per_eval, reference = np.inf, 0, None
        for per_eval in per_evals:
            t0 = time.perf_counter()
            delta = captum_delta_loss(model, layer, x, y, per_eval)
            seconds = time.perf_counter() - t0
            print(f"  site {site}: captum perturbations_per_eval={per_eval:<3} {seconds:8.2f} s")
            if seconds < best:
                best, best_per_eval, reference = seconds, per_eval, delta
        assert reference is not None
        np.testing.assert_allclose(ours["importance_loss"].values, reference, atol=2e-5)
        gap = np.abs(ours["importance_loss"].values - reference).max()
        print(f"  site {site}: directionkit {t_ours:8.2f} s; best captum {best:.2f} s "
              f"(perturbations_per_eval={best_per_eval}); speed-up {best / t_ours:.1f} x; "
              f"max |difference in delta-loss| {gap:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
