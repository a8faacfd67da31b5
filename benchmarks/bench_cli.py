"""B9: how fast the command line answers (issue 21: ``--help`` and ``show`` under 1 s).

Each command runs in a fresh process, as a user types it, timed from start to exit:

* ``python -c pass``: the interpreter alone (the floor);
* ``directionkit --help``;
* ``directionkit show A.zarr`` on an analysis of a 2-site MLP (every measure but noise);
* ``directionkit show S.zarr`` on a sweep's root (3 models);
* ``python -c "import directionkit; directionkit.analyze"``: what a library user pays
  on the first use of ``analyze`` (xarray, scipy and the experiments), for context.

    python benchmarks/bench_cli.py           # 5 side-by-side runs
    python benchmarks/bench_cli.py --quick   # CI smoke check: 1 run
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from runs import Runs, machine

TARGET_S = 1.0


def _stores(folder: Path) -> tuple[Path, Path]:
    import xarray as xr

    import directionkit as dk
    from directionkit.testing import NumpyMLPAdapter

    net = NumpyMLPAdapter.random(n_in=8, hidden=(32, 16), n_classes=4, seed=0)
    X = np.random.default_rng(0).normal(size=(400, 8))
    y = net.predict(X)
    analysis = folder / "a.zarr"
    dk.analyze(net, (X, y), orderings=3, fractions=6, progress=False).save(analysis)
    root = xr.Dataset(
        {
            "accuracy": ("model", [0.9, 0.8, 0.3]),
            "chance_accuracy": ("model", [0.3, 0.3, 0.3]),
            "near_chance": ("model", [False, False, True]),
            "ablation_auc": (("model", "scope"), [[0.6], [0.7], [1.0]]),
        },
        coords={"model": ["a", "b", "c"], "scope": ["all"]},
    )
    sweep_like = folder / "s.zarr"
    dk.Analysis(root).save(sweep_like)
    return analysis, sweep_like


def _seconds(argv: list[str]) -> float:
    began = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed:\n{done.stderr}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, a smoke check")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli = shutil.which("directionkit") or str(Path(sys.executable).parent / "directionkit")
    with tempfile.TemporaryDirectory() as tmp:
        analysis, sweep_like = _stores(Path(tmp))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "directionkit --help": [cli, "--help"],
            "directionkit show (analysis)": [cli, "show", str(analysis)],
            "directionkit show (sweep root)": [cli, "show", str(sweep_like)],
            "import directionkit; directionkit.analyze": [
                sys.executable, "-c", "import directionkit; directionkit.analyze"
            ],
        }  # fmt: skip
        for argv in commands.values():  # warm the file cache once, untimed
            _seconds(argv)
        runs = Runs(baseline="python -c pass")
        for _ in range(1 if args.quick else args.runs):
            runs.add({name: _seconds(argv) for name, argv in commands.items()})
    print(f"B9 (CLI response), {machine()}")
    print(runs.table())
    for name in ("directionkit --help", "directionkit show (analysis)",
                 "directionkit show (sweep root)"):  # fmt: skip
        median = statistics.median(runs.seconds[name])
        verdict = "under" if median < TARGET_S else "OVER"
        print(f"{name}: median {median:.2f} s, {verdict} the {TARGET_S:.0f} s target")


if __name__ == "__main__":
    main()
