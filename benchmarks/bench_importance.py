"""B2: single-unit importance — directionkit vs Captum's LayerFeatureAblation.

Workload (issue 3): MLP 784-512-512-10 (random weights), 10,000 examples, the 512 units
of the first and of the last hidden layer, each clamped to zero alone; the measure is the
change in mean cross-entropy.  Captum gets a per-example loss as its forward function and
is run at several ``perturbations_per_eval``; the best is reported.  Results are checked
to agree before the ratio is printed.  Needs captum (only in the benchmark environment).

    python benchmarks/bench_importance.py            # full workload, 5 side-by-side runs
    python benchmarks/bench_importance.py --quick    # CI smoke check
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from captum.attr import LayerFeatureAblation
from runs import Runs, machine
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
    parser.add_argument("--quick", action="store_true", help="CI smoke check: seconds")
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 5; quick 1)")
    parser.add_argument("--per-evals", help="Captum perturbations_per_eval to try in run 1, "
                        "comma-separated (default 1,4,16,64)")  # fmt: skip
    args = parser.parse_args()
    n, per_evals = (500, (1, 16)) if args.quick else (10_000, (1, 4, 16, 64))
    if args.per_evals:
        per_evals = tuple(int(v) for v in args.per_evals.split(","))
    repeat = args.repeat or (1 if args.quick else 5)
    torch.manual_seed(0)
    model = mlp()
    x = torch.rand(n, 784)
    y = torch.randint(0, 10, (n,))
    adapter = TorchAdapter(model, example_input=x[:1])
    print(f"B2 single-unit importance: MLP 784-512-512-10, {n} examples, 512 units per layer; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"machine: {machine()}")
    layers = {"first hidden (1)": ("1", model[1]), "last hidden (3)": ("3", model[3])}
    runs = {name: Runs("captum, best perturbations_per_eval") for name in layers}
    best_per_eval: dict[str, int] = {}
    for r in range(repeat):
        print(f"run {r + 1} of {repeat}", flush=True)
        for name, (site, layer) in layers.items():
            t0 = time.perf_counter()
            ours = unit_importance(adapter, (x, y.numpy()), sites=[site], batch_size=1000)
            t_ours = time.perf_counter() - t0
            # run 1 tries every perturbations_per_eval; later runs time the best of run 1
            tried = per_evals if name not in best_per_eval else (best_per_eval[name],)
            best, reference = np.inf, None
            for per_eval in tried:
                t0 = time.perf_counter()
                delta = captum_delta_loss(model, layer, x, y, per_eval)
                seconds = time.perf_counter() - t0
                print(f"  {name}: captum perturbations_per_eval={per_eval:<3} {seconds:8.2f} s")
                if seconds < best:
                    best, reference, fastest = seconds, delta, per_eval
            best_per_eval[name] = fastest
            assert reference is not None
            np.testing.assert_allclose(ours["importance_loss"].values, reference, atol=2e-5)
            gap = np.abs(ours["importance_loss"].values - reference).max()
            print(f"  {name}: directionkit {t_ours:8.2f} s; speed-up {best / t_ours:.1f} x; "
                  f"max |difference in delta-loss| {gap:.1e}", flush=True)  # fmt: skip
            runs[name].add({"captum, best perturbations_per_eval": best,
                            "directionkit (rank-1 path)": t_ours})  # fmt: skip
    for name, table in runs.items():
        print(f"\n{name}: captum at perturbations_per_eval={best_per_eval[name]} (best of run 1)")
        print(table.table())
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
