"""B3: peak memory of activation_statistics, streamed, over 60,000 examples x 2,048 units.

The model is an MLP 784-1024-1024-10 (2,048 hidden units) and the inputs are generated
batch by batch, so neither the data set nor the activations are ever held whole: the raw
activations alone would take 60,000 x 2,048 x 8 B = 983 MB in float64.  Peak resident
memory of the process is read from the OS after the run (it includes torch itself).

    python benchmarks/bench_memory.py            # full workload
    python benchmarks/bench_memory.py --quick    # CI smoke check
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator

import numpy as np
import torch
from workload import mlp

from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import activation_statistics


class Generated:
    """A re-iterable data set of random inputs and labels, made batch by batch."""

    def __init__(self, n: int, batch: int) -> None:
        self.n, self.batch = n, batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        rng = np.random.default_rng(0)
        for start in range(0, self.n, self.batch):
            size = min(self.batch, self.n - start)
            yield torch.from_numpy(rng.random((size, 784), np.float32)), rng.integers(0, 10, size)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 2_000 if args.quick else 60_000
    torch.manual_seed(0)
    model = mlp(hidden=1024)
    data = Generated(n, batch=1000)
    adapter = TorchAdapter(model, example_input=next(iter(data))[0][:1])
    before = peak_mb()
    t0 = time.perf_counter()
    stats = activation_statistics(adapter, data)
    seconds = time.perf_counter() - t0
    after = peak_mb()
    units = stats.sizes["unit"]
    print(f"B3 activation_statistics: {n} examples x {units} units, streamed (equal-width MI)")
    print(f"raw activations would be {n * units * 8 / 1e6:.0f} MB in float64")
    print(f"peak RSS before {before:.0f} MB, after {after:.0f} MB; time {seconds:.1f} s")
    assert np.all(np.isfinite(stats["selectivity"].values))


if __name__ == "__main__":
    main()
