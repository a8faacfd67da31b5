"""B8: peak memory and time of per-unit importance through the ONNX adapter.

Workload (issue 20): an OCR-classifier-like CNN written as paddle2onnx writes it (input
``[-1, 3, ?, ?]``, biases reshaped by a node, BatchNormalization, ReLU and HardSwish
activations, squeeze-excitation gates) with ``BLOCKS`` blocks, on 64 text-line-shaped
images ``3 x 48 x 192``; single-unit importance of 200 units (a sample stratified over its
sites), so one rewritten onnxruntime session per site.  Each configuration runs in a fresh
process, which reports its peak resident memory (``ru_maxrss``) and the time:

* before issue 20: onnxruntime's CPU memory arena on and every session kept;
* now: the arena on and the 2 most recently used sessions kept (``OnnxAdapter``'s
  defaults);
* the arena off (``cpu_memory_arena=False``), 2 sessions kept;
* the arena off, 8 sessions kept.

    python benchmarks/bench_onnx_memory.py           # 3 side-by-side runs
    python benchmarks/bench_onnx_memory.py --quick   # CI smoke check
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from runs import Runs, machine

BLOCKS = 10

CHILD = """
import json, resource, sys, time
import numpy as np
import directionkit.adapters.onnx as onnx_adapter
from directionkit.experiments import unit_importance
path, arena = sys.argv[1], sys.argv[2] == "1"
keep, n, units = (int(v) for v in sys.argv[3:6])
onnx_adapter.MAX_SESSIONS = keep
adapter = onnx_adapter.OnnxAdapter(path, cpu_memory_arena=arena)
x = np.random.default_rng(0).normal(size=(n, 3, 48, 192)).astype(np.float32)
y = np.arange(n) % 2
start = time.perf_counter()
unit_importance(adapter, (x, y), max_units=units, batch_size=n)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "sessions": len(adapter._sessions)}))
"""


def ocr_like(blocks: int, seed: int = 0) -> onnx.ModelProto:
    """``blocks`` conv blocks (conv, reshaped bias, BN, ReLU or HardSwish, an SE gate)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    inits = {f"bshape_{i}": np.array([1, -1, 1, 1], np.int64) for i in range(blocks)}
    nodes, current, channels = [], "x", 3
    for i in range(blocks):
        out = min(8 * 2 ** (i // 3), 64)
        scale = (2 / (9 * channels)) ** 0.5
        inits[f"w{i}"] = rng.normal(0, scale, (out, channels, 3, 3)).astype(f32)
        inits[f"b{i}"] = rng.normal(0, 0.1, out).astype(f32)
        for k, v in (("s", 1.0), ("o", 0.0), ("m", 0.0), ("v", 1.0)):
            inits[f"{k}{i}"] = np.full(out, v, f32)
        inits[f"se{i}"] = rng.normal(0, 0.3, (out, out, 1, 1)).astype(f32)
        stride = 2 if i % 3 == 2 else 1
        act = "Relu" if i % 2 == 0 else "HardSwish"
        nodes += [
            helper.make_node(
                "Conv", [current, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[stride] * 2
            ),
            helper.make_node("Reshape", [f"b{i}", f"bshape_{i}"], [f"br{i}"]),
            helper.make_node("Add", [f"c{i}", f"br{i}"], [f"cb{i}"]),
            helper.make_node(
                "BatchNormalization", [f"cb{i}", f"s{i}", f"o{i}", f"m{i}", f"v{i}"], [f"bn{i}"]
            ),
            helper.make_node(act, [f"bn{i}"], [f"a{i}"], name=f"{act}@{i}"),
            helper.make_node("GlobalAveragePool", [f"a{i}"], [f"g{i}"]),
            helper.make_node("Conv", [f"g{i}", f"se{i}"], [f"sc{i}"]),
            helper.make_node("HardSigmoid", [f"sc{i}"], [f"gate{i}"], name=f"HardSigmoid@{i}"),
            helper.make_node("Mul", [f"a{i}", f"gate{i}"], [f"o{i}_"]),
        ]
        current, channels = f"o{i}_", out
    inits["fc"] = rng.normal(0, 0.3, (channels, 2)).astype(f32)
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["z"]),
        helper.make_node("Softmax", ["z"], ["probs"], axis=1),
    ]
    image = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    graph = helper.make_graph(
        nodes, "ocr_like", [image],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [-1, 2])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    return model


def measure(path: Path, arena: bool, keep: int, n: int, units: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "1" if arena else "0", str(keep), str(n),
         str(units)], capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 3; quick 1)")
    args = parser.parse_args()
    n, units, blocks = (8, 20, 3) if args.quick else (64, 200, BLOCKS)
    repeat = args.repeat or (1 if args.quick else 3)
    configs = {
        "arena on, every session kept (before)": (True, 10**6),
        "arena on, 2 sessions kept (now)": (True, 2),
        "arena off, 2 sessions kept": (False, 2),
        "arena off, 8 sessions kept": (False, 8),
    }
    print(f"B8 importance through ONNX: {blocks} conv blocks ({2 * blocks} sites), {n} images "
          f"3x48x192, {units} units; machine: {machine()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ocr_like.onnx"
        onnx.save(ocr_like(blocks), str(path))
        seconds, memory = Runs(next(iter(configs))), {k: [] for k in configs}
        for r in range(repeat):
            print(f"run {r + 1} of {repeat}", flush=True)
            times = {}
            for label, (arena, keep) in configs.items():
                got = measure(path, arena, keep, n, units)
                times[label] = got["seconds"]
                memory[label].append(got["peak_mb"])
                print(f"  {label}: {got['seconds']:.2f} s, peak {got['peak_mb']:.0f} MB, "
                      f"{got['sessions']} sessions kept", flush=True)  # fmt: skip
            seconds.add(times)
    print(seconds.table())
    print("| peak resident memory | " + " | ".join(
        f"{label}: {np.median(v):.0f} MB" for label, v in memory.items()) + " |")  # fmt: skip
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
