"""B4: the B1 cumulative-ablation workload through the ONNX adapter, beside the torch adapter.

Workload (issue 4): MLP 784-512-512-10 exported with torch's dynamo exporter, 10,000
examples, all 1,024 hidden units, 10 orderings x 21 fractions, batches of 1,000.  All
runs use the general (M-batched) path, so they do the same work:

* the torch adapter (hooks, M rows on the batch axis);
* the ONNX adapter, M interventions per session run (the default, with onnxruntime's
  CPU memory arena);
* the same with the arena off (``cpu_memory_arena=False``, see B8).

(Until session 14 the third row was "one intervention per session run" with
``memory_budget=1``; since the budget cuts examples before rows (B6), that budget runs one
example per session run, which would take hours.)

The three curves must agree (the torch and ONNX kernels may order float sums
differently, so up to one example per point may flip; the count is reported).

    python benchmarks/bench_onnx.py            # full workload
    python benchmarks/bench_onnx.py --quick    # CI smoke check, seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from workload import b1_workload

from directionkit.adapters.onnx import OnnxAdapter
from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import ablation_curve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, orderings, fractions = (1000, 2, 5) if args.quick else (10_000, 10, 21)
    model, x, y = b1_workload(n)
    scratch = tempfile.TemporaryDirectory()
    path = Path(scratch.name) / "mlp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch")
        torch.onnx.export(
            model, (x[:2],), str(path), dynamo=True, dynamic_shapes=({0: batch},), verbose=False
        )
    data = (x.numpy(), y.numpy())
    adapters = {
        "torch adapter, M-batched": TorchAdapter(model, example_input=x[:1]),
        "ONNX adapter, M-batched": OnnxAdapter(path),
        "ONNX adapter, M-batched, CPU arena off": OnnxAdapter(path, cpu_memory_arena=False),
    }
    times, curves = {}, {}
    for name, adapter in adapters.items():
        t0 = time.perf_counter()
        result = ablation_curve(
            adapter, data, "all", orderings, fractions, batch_size=1000, method="general"
        )
        times[name] = time.perf_counter() - t0
        curves[name] = result["ablation_accuracy"].values[0]
    reference = curves["torch adapter, M-batched"]
    print(f"B4 cumulative ablation through ONNX: MLP 784-512-512-10, {n} examples, "
          f"{orderings}x{fractions} curve points, batches of 1000")  # fmt: skip
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}")  # fmt: skip
    base = times["torch adapter, M-batched"]
    for name, seconds in times.items():
        flips = np.abs(curves[name] - reference) * n
        assert flips.max() <= 1, f"{name}: curve differs from torch by more than one example"
        differ = int(np.count_nonzero(flips))
        print(f"{name:40s} {seconds:8.2f} s  {seconds / base:5.2f}x the torch time  "
              f"({differ} of {reference.size} points differ by 1 example)")  # fmt: skip


if __name__ == "__main__":
    main()
