"""B5: the paper's conv protocol on ConvNet-11 — directionkit vs a naive hook loop.

Workload (issue 14): the paper's 11-layer ConvNet (``reference_models.ConvNet``, width
0.25, He-initialised so activity keeps its scale through the layers), 28x28 seeded
random images, labels = the model's predictions with every third replaced at random.
Cumulative ablation of ``scope="last:3"`` (10 orderings x 21 fractions, zero
ablation) plus the single-unit importance of every unit of the last three layers:
594 interventions.  Each is computed by

* the naive loop: per intervention, register hooks that multiply the three sites by
  their masks, full forward passes over the data, remove the hooks;
* directionkit (``ablation_curve`` and ``unit_importance``, ``method="general"``) with
  the torch adapter and with the ONNX adapter (exported with torch's dynamo exporter,
  dynamic batch axis): M interventions per pass, rows expanded at the first intervened
  site, so the first nine layers run once per data batch (prefix caching).

The torch adapter must give the naive loop's numbers exactly (same float32 kernels);
the ONNX adapter may flip an example whose two top logits differ by float rounding
(at most one per point, asserted; losses to 1e-4).  Also asserted: the last three ReLU
maps are alive (over 10% of their elements active).

    python benchmarks/bench_conv.py            # full workload (10,000 images), 5 runs
    python benchmarks/bench_conv.py --quick    # CI smoke check, well under a minute
    python benchmarks/bench_conv.py --n 1000   # the full protocol on fewer images
    python benchmarks/bench_conv.py --naive-sample 60   # naive time extrapolated from
                                                        # 60 of the 594 interventions
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from runs import Runs, machine
from torch import nn

from directionkit.adapters.onnx import OnnxAdapter
from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import ablation_curve, n_clamped, unit_importance
from directionkit.reference_models.models import ConvNet

SCOPE = "last:3"


def conv_workload(n: int, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """ConvNet-11 (width 0.25) with He-normal conv weights, ``n`` random 28x28 images,
    its own predictions as labels with every third replaced at random."""
    torch.manual_seed(seed)
    model = ConvNet(1, 10, width=0.25)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    model.eval()
    x = torch.rand(n, 1, 28, 28)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[::3] = torch.randint(0, 10, y[::3].shape)
    return model, x, y


def relu_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.ReLU)]


def site_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The ReLU maps of one clean forward pass (to check the last ones are alive)."""
    maps: list[torch.Tensor] = []
    hook = lambda mod, i, a: maps.append(a)  # noqa: E731
    handles = [m.register_forward_hook(hook) for m in relu_modules(model)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return maps


def naive_pass(
    model: nn.Module, sites: Sequence[nn.Module], masks: Sequence[torch.Tensor],
    x: torch.Tensor, y: torch.Tensor, batch: int,
) -> tuple[int, float]:  # fmt: skip
    """One intervention: hooks multiplying each site's channels by its mask, full passes,
    hooks removed.  Returns (correct, summed cross-entropy)."""
    handles = [
        s.register_forward_hook(lambda mod, i, a, k=k: a * k[None, :, None, None])
        for s, k in zip(sites, masks, strict=True)
    ]
    correct, loss = 0, 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(y), batch):
                logits = model(x[start : start + batch])
                target = y[start : start + batch]
                correct += int((logits.argmax(1) == target).sum())
                loss += float(nn.functional.cross_entropy(logits.double(), target, reduction="sum"))
    finally:
        for h in handles:
            h.remove()
    return correct, loss


def naive(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, order: np.ndarray, grid: np.ndarray,
    batch: int, units: np.ndarray, points: np.ndarray | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """The protocol by the naive loop: the curve, then each of ``units`` alone.

    ``points``: a boolean (orderings, fractions) mask of the curve points to compute
    (default all); the others are NaN.
    """
    sites = relu_modules(model)[-3:]
    widths = [128, 128, 128]  # the last three layers of ConvNet-11 at width 0.25
    order = order - order.min()  # global unit indices -> indices within the scope
    offsets = np.cumsum([0, *widths])
    total = offsets[-1]
    curve = np.full((order.shape[0], grid.size), np.nan)
    for o in range(order.shape[0]):
        for f, fraction in enumerate(grid):
            if points is not None and not points[o, f]:
                continue
            keep = np.ones(total, np.float32)
            keep[order[o, : n_clamped(fraction, order.shape[1])]] = 0
            masks = [torch.from_numpy(keep[a:b]) for a, b in itertools.pairwise(offsets)]
            curve[o, f] = naive_pass(model, sites, masks, x, y, batch)[0] / len(y)
    clean_correct, clean_loss = naive_pass(model, [], [], x, y, batch)
    imp_acc, imp_loss = np.full(total, np.nan), np.full(total, np.nan)
    for u in units:
        keep = np.ones(total, np.float32)
        keep[u] = 0
        masks = [torch.from_numpy(keep[a:b]) for a, b in itertools.pairwise(offsets)]
        correct, loss = naive_pass(model, sites, masks, x, y, batch)
        imp_acc[u] = (correct - clean_correct) / len(y)
        imp_loss[u] = (loss - clean_loss) / len(y)
    return {"curve": curve, "importance_accuracy": imp_acc, "importance_loss": imp_loss}


def directionkit_run(adapter, x, y, orderings, fractions, batch, method) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    curve = ablation_curve(
        adapter, (x, y), SCOPE, orderings, fractions, batch_size=batch, method=method
    )
    last3 = list(adapter.sites)[-3:]
    imp = unit_importance(adapter, (x, y), last3, batch_size=batch, method=method)
    return {
        "curve": curve["ablation_accuracy"].values[0],
        "order": curve["ablation_order"].values[0],
        "grid": curve["fraction"].values,
        "importance_accuracy": imp["importance_accuracy"].values,
        "importance_loss": imp["importance_loss"].values,
    }


def export(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch")
        torch.onnx.export(
            model, (x[:2],), str(path), dynamo=True, dynamic_shapes=({0: batch},), verbose=False
        )


def one_run(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, path: Path, methods: Sequence[str],
    orderings: int, fractions: int, batch: int, units: np.ndarray, quick: bool,
    sample: int | None = None, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Every method once, side by side; agreement with the naive loop asserted.

    ``sample``: the naive loop runs only this many of the interventions (curve points and
    units in proportion, drawn with ``seed``), and its time for all of them is
    extrapolated from its time per forward pass over the data (every intervention is one
    full pass over the same data, so the time per pass does not depend on which).
    """
    n = len(y)
    xs, ys = x.numpy(), y.numpy()
    runs, times = {}, {}
    for method in methods:
        for name, adapter in (
            ("torch", TorchAdapter(model, example_input=x[:1])),
            ("ONNX", OnnxAdapter(path)),
        ):
            t0 = time.perf_counter()
            runs[name, method] = directionkit_run(
                adapter, xs, ys, orderings, fractions, batch, method
            )
            times[f"directionkit, {name} {method}"] = time.perf_counter() - t0
    first = next(iter(runs.values()))
    points, naive_units = None, units
    total = orderings * fractions + units.size
    if sample is not None and sample < total:
        rng = np.random.default_rng(seed)
        n_points = round(sample * orderings * fractions / total)
        points = np.zeros((orderings, fractions), bool)
        points.flat[rng.choice(orderings * fractions, n_points, replace=False)] = True
        naive_units = np.sort(rng.choice(units, sample - n_points, replace=False))
    t0 = time.perf_counter()
    base = naive(model, x, y, first["order"], first["grid"], batch, naive_units, points)
    elapsed = time.perf_counter() - t0
    if points is None:
        times = {"naive hook loop": elapsed, **times}
    else:  # one pass per intervention plus the clean one, at the measured time per pass
        passes = int(points.sum()) + naive_units.size + 1
        times = {"naive hook loop": elapsed / passes * (total + 1), **times}
        print(f"  naive loop: {int(points.sum())} of {points.size} curve points and "
              f"{naive_units.size} of {units.size} units, {elapsed:.2f} s for {passes} "
              f"passes; all {total + 1} passes extrapolated", flush=True)  # fmt: skip
    units = naive_units
    done = ~np.isnan(base["curve"])  # the points the naive loop computed
    for (name, method), run in runs.items():
        # accuracies in whole examples; the torch general path runs the naive loop's float32
        # kernels and must agree exactly; ONNX's kernels may round differently, flipping
        # an example with a near-tie
        flips = np.round(np.abs(run["curve"][done] - base["curve"][done]) * n)
        imp_flips = np.round(
            np.abs(run["importance_accuracy"][units] - base["importance_accuracy"][units]) * n
        )
        loss_err = np.abs(run["importance_loss"][units] - base["importance_loss"][units]).max()
        exact = name == "torch" and method == "general"
        limit = 0 if exact else 1
        assert flips.max() <= limit and imp_flips.max() <= limit, (name, method, flips, imp_flips)
        assert loss_err <= (1e-9 if exact else 1e-4), (name, method, loss_err)
        print(f"  {name} {method}: curve: {int(np.count_nonzero(flips))} of {flips.size} points "
              f"differ by 1 example; importance: {int(np.count_nonzero(imp_flips))} of "
              f"{units.size} units, loss max abs diff {loss_err:.1e}")  # fmt: skip
    print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
          + ("  (quick: naive importance of 12 units only; ratios not comparable)" if quick
             else ""), flush=True)  # fmt: skip
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=None, help="images (default 10,000)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--methods", default="general", help="comma-separated methods")
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 5; quick 1)")
    parser.add_argument(
        "--naive-sample", type=int, default=None, metavar="K",
        help="the naive loop runs only K of the interventions (drawn per run) and its time "
        "for all of them is extrapolated from its time per pass (default: all)",
    )  # fmt: skip
    args = parser.parse_args()
    # quick: a CI smoke check of the agreement; the naive loop does the importance of
    # 4 units per layer only, so its time is not comparable
    n, orderings, fractions = (100, 2, 5) if args.quick else (10_000, 10, 21)
    n = args.n or n
    batch = min(args.batch, n)
    repeat = args.repeat or (1 if args.quick else 5)
    model, x, y = conv_workload(n)
    scratch = tempfile.TemporaryDirectory()
    path = Path(scratch.name) / "convnet.onnx"
    export(model, x, path)
    alive = {
        i: float((h > 0).float().mean()) for i, h in enumerate(site_maps(model, x[:batch])[-3:])
    }
    assert min(alive.values()) > 0.1, f"the last ReLU maps are (nearly) dead: {alive}"
    units = (
        np.concatenate([np.arange(4) + 128 * k for k in range(3)])
        if args.quick
        else (np.arange(384))
    )
    print(f"B5 ConvNet-11 (width 0.25) conv protocol: {n} images 28x28, scope {SCOPE}, "
          f"{orderings}x{fractions} curve points + importance of {units.size} units, "
          f"batches of {batch}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"onnxruntime {ort.__version__}")  # fmt: skip
    print(f"machine: {machine()}")
    print("active fraction of the last three ReLU maps: "
          + ", ".join(f"{v:.2f}" for v in alive.values()))  # fmt: skip
    runs = Runs("naive hook loop")
    for r in range(repeat):
        print(f"run {r + 1} of {repeat}", flush=True)
        runs.add(one_run(model, x, y, path, args.methods.split(","), orderings, fractions,
                         batch, units, args.quick, args.naive_sample, seed=r))  # fmt: skip
    if not args.quick:  # quick: the naive loop did less work; no ratios
        print(runs.table())
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
