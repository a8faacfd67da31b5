"""B6: cumulative ablation of a ResNet's last three blocks — rows expanded at the block input.

Workload (issue 14): the reference bottleneck ResNet with blocks (2, 2, 2), base width 4
and the 7x7/2 stem, on 2,000 random 32x32x3 inputs labelled by its own predictions
(every third replaced at random); ``scope="last:3"`` (blocks ``stages.1.1``,
``stages.2.0``, ``stages.2.1``), 10 orderings x 21 fractions.  Three ways compute the
same 210 accuracies: the naive loop (per curve point: mask hooks on the ReLUs, full
forward passes, hooks removed), directionkit with the rows expanded at the input of
the block holding the first intervened site (``stages.1.1``: the stem, stage 0 and
``stages.1.0`` run once per batch) and directionkit forced to expand at the model input
(the path residual models took before).  Both directionkit paths are checked against
the naive loop in every run.

    python benchmarks/bench_resnet.py            # full workload, 5 side-by-side runs
    python benchmarks/bench_resnet.py --quick    # CI smoke check, seconds
    python benchmarks/bench_resnet.py --profile  # also cProfile the block path
    python benchmarks/bench_resnet.py --threads 1  # on a busy machine
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import numpy as np
import torch
from runs import Runs, machine
from torch import nn
from workload import curve_masks

from directionkit.adapter import CPU_MEMORY_BUDGET
from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import ablation_curve
from directionkit.reference_models.models import ResNet

BATCH = 500


def workload(n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The seeded ResNet, ``n`` uniform 32x32x3 inputs and labels (a third of them random)."""
    torch.manual_seed(0)
    model = ResNet(blocks=(2, 2, 2), n_classes=10, base=4).eval()
    x = torch.rand(n, 3, 32, 32)
    with torch.no_grad():
        y = torch.cat([model(x[s : s + BATCH]).argmax(1) for s in range(0, n, BATCH)])
    y[::3] = torch.randint(0, 10, y[::3].shape)
    return model, x, y


def mask_hooks(model: nn.Module, factors: dict[str, torch.Tensor], calls: dict[str, int]) -> list:
    """Forward hooks multiplying each site (a ReLU module's n-th call) by its channel mask."""

    def hook_for(name: str):  # type: ignore[no-untyped-def]
        def hook(module: nn.Module, inputs: object, a: torch.Tensor) -> torch.Tensor:
            count = calls.get(name, 0)
            calls[name] = count + 1
            site = name if count == 0 else f"{name}#{count}"
            return a * factors[site] if site in factors else a

        return hook

    return [m.register_forward_hook(hook_for(name)) for name, m in model.named_modules()
            if isinstance(m, nn.ReLU)]  # fmt: skip


def naive(model: nn.Module, x: torch.Tensor, y: torch.Tensor, keep: list[dict[str, np.ndarray]],
          batch: int) -> np.ndarray:  # fmt: skip
    """Per curve point: hooks that multiply each site's channels by its mask, full passes."""
    out = np.zeros(len(keep))
    for point, masks in enumerate(keep):
        calls: dict[str, int] = {}
        factors = {name: torch.from_numpy(k).view(1, -1, 1, 1) for name, k in masks.items()}
        handles = mask_hooks(model, factors, calls)
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(y), batch):
                calls.clear()
                logits = model(x[start : start + batch])
                correct += int((logits.argmax(1) == y[start : start + batch]).sum())
        for h in handles:
            h.remove()
        out[point] = correct / len(y)
    return out


def timed_curve(adapter: TorchAdapter, data: tuple, orderings: int, fractions: int) -> tuple:
    t0 = time.perf_counter()
    curve = ablation_curve(adapter, data, "last:3", orderings, fractions, batch_size=BATCH,
                           method="general")  # fmt: skip
    return curve, time.perf_counter() - t0


def one_run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, budget: int, orderings: int,
            fractions: int) -> dict[str, float]:  # fmt: skip
    """The three methods once, side by side; both directionkit paths checked against the loop."""
    n = len(y)
    data = (x, y.numpy())
    block = TorchAdapter(model, example_input=x[:1], memory_budget=budget)
    forced = TorchAdapter(model, example_input=x[:1], memory_budget=budget)
    forced._force_input_expansion = True  # the pre-B6 path, for comparison
    curve, t_block = timed_curve(block, data, orderings, fractions)
    first = "stages.1.1.relu"
    assert block.expansion_points == {first: "stages.1.1"}, block.expansion_points
    assert block.prefix_cache and not forced.prefix_cache
    curve_input, t_input = timed_curve(forced, data, orderings, fractions)

    scope = [n for n, site in block.sites.items() if site.depth >= block.sites[first].depth]
    assert {block.sites[n].layer for n in scope} == {"stages.1.1", "stages.2.0", "stages.2.1"}
    masks = curve_masks(block, curve, scope)
    t0 = time.perf_counter()
    base = naive(model, x, y, masks, BATCH)
    t_naive = time.perf_counter() - t0
    for label, result in (("block", curve), ("input", curve_input)):
        accuracy = result["ablation_accuracy"].values[0].ravel()
        worst = float(np.abs(accuracy - base).max()) * n
        differing = int(np.count_nonzero(accuracy != base))
        # float32 convolutions over M*B rows may round differently from B rows
        assert worst <= 1, f"{label} path differs from the naive loop by {worst:.0f} examples"
        print(f"  {label} path: {differing} of {base.size} points differ from the naive loop"
              + (f", by at most {worst:.0f} example" if differing else ""))  # fmt: skip
    print(f"  naive {t_naive:.2f} s, input {t_input:.2f} s, block {t_block:.2f} s", flush=True)
    return {
        "naive hook loop": t_naive,
        "directionkit, expanded at the model input (before B6)": t_input,
        "directionkit, expanded at the block input": t_block,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--budget-mib", type=int, default=CPU_MEMORY_BUDGET >> 20,
                        help="TorchAdapter memory_budget in MiB (its CPU default)")  # fmt: skip
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 5; quick 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, orderings, fractions = (100, 2, 3) if args.quick else (2000, 10, 21)
    repeat = args.repeat or (1 if args.quick else 5)
    model, x, y = workload(n)  # its forward passes also warm torch up before the timings
    budget = args.budget_mib << 20
    print(f"B6 cumulative ablation: ResNet blocks (2, 2, 2) base 4, {n} random 32x32x3 inputs, "
          f"scope last:3 (blocks stages.1.1, 2.0, 2.1), {orderings}x{fractions} curve points, "
          f"batch {BATCH}, memory_budget {args.budget_mib} MiB; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"machine: {machine()}")
    runs = Runs("naive hook loop")
    for r in range(repeat):
        print(f"run {r + 1} of {repeat}", flush=True)
        runs.add(one_run(model, x, y, budget, orderings, fractions))
    print(runs.table())
    print(f"machine at the end: {machine()}")

    if args.profile:
        block = TorchAdapter(model, example_input=x[:1], memory_budget=budget)
        profile = cProfile.Profile()
        profile.enable()
        timed_curve(block, (x, y.numpy()), orderings, fractions)
        profile.disable()
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(12)
        print(text.getvalue())


if __name__ == "__main__":
    main()
