"""B7: cumulative ablation of transformers' feed-forward units, rows expanded at the block.

Workload (issue 20): the feed-forward activations of the last layers of two transformers
nobody here wrote, built from their packages' constructors with random weights:

* a 4-layer ViT (torchvision ``VisionTransformer``: 32x32 images, 4x4 patches, width
  128, MLP 512, 4 heads), ``scope="last:2"`` (the GELUs of encoder layers 2 and 3);
* BERT-small (``transformers`` ``BertForSequenceClassification``, the
  ``bert_uncased_L-4_H-512_A-8`` shape: 4 layers, width 512, FF 2048, 8 heads), sequences
  of 32 tokens, ``scope="last:3"`` (the GELUs of layers 2 and 3 and the pooler's Tanh).

Three ways compute the same curve points: the naive loop (per point: mask hooks on the
activation modules, full forward passes, hooks removed), directionkit with the rows
expanded at the input of the first intervened encoder layer (what TransformerLens'
``start_at_layer`` does by hand: layers 0-1 run once per batch), and directionkit forced to
expand at the model input.  Both directionkit paths are checked against the naive loop.

    python benchmarks/bench_transformers.py            # 3 side-by-side runs per model
    python benchmarks/bench_transformers.py --quick    # CI smoke check, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from runs import Runs, machine
from torch import nn
from workload import curve_masks

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from directionkit.adapters.torch import TorchAdapter
from directionkit.experiments import ablation_curve
from directionkit.experiments._engine import scope_sites
from tests import zoo

BATCH = 100


def vit() -> tuple[nn.Module, torch.Tensor, str, int]:
    vision = zoo.torchvision()
    torch.manual_seed(0)
    model = vision.models.vision_transformer.VisionTransformer(
        image_size=32, patch_size=4, num_layers=4, num_heads=4, hidden_dim=128, mlp_dim=512,
        num_classes=10,
    ).eval()  # fmt: skip
    nn.init.normal_(model.heads.head.weight, std=0.05)  # torchvision zero-initialises it
    return model, torch.rand(0, 3, 32, 32), "last:2", 0


def bert() -> tuple[nn.Module, torch.Tensor, str, int]:
    transformers = zoo.transformers()
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=1000, hidden_size=512, num_hidden_layers=4, num_attention_heads=8,
        intermediate_size=2048, num_labels=10,
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config).eval()
    return model, torch.zeros(0, 32, dtype=torch.long), "last:3", 1000


def inputs(example: torch.Tensor, n: int, vocab: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if vocab:
        return torch.randint(1, vocab, (n, *example.shape[1:]), generator=generator)
    return torch.rand(n, *example.shape[1:], generator=generator)


def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out if isinstance(out, torch.Tensor) else out.logits


def naive(model: nn.Module, x: torch.Tensor, y: torch.Tensor, adapter: TorchAdapter,
          keep: list[dict[str, np.ndarray]]) -> np.ndarray:  # fmt: skip
    """Per curve point: hooks multiplying each site's units by its mask, full passes."""
    modules = dict(model.named_modules())
    out = np.zeros(len(keep))
    for point, masks in enumerate(keep):
        handles = []
        for name, mask in masks.items():
            factor = torch.from_numpy(mask)

            def hook(module: nn.Module, args: Any, a: torch.Tensor, f: Any = factor) -> Any:
                return a * f  # units on the last axis: (B, T, U) or (B, U)

            handles.append(modules[name].register_forward_hook(hook))
        correct = 0
        with torch.inference_mode():
            for start in range(0, len(y), BATCH):
                scores = logits_of(model, x[start : start + BATCH])
                correct += int((scores.argmax(1) == y[start : start + BATCH]).sum())
        for handle in handles:
            handle.remove()
        out[point] = correct / len(y)
    return out


def one_run(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, scope: str,
            orderings: int, fractions: int) -> dict[str, float]:  # fmt: skip
    data = (x, y.numpy())
    timed: dict[str, Any] = {}
    for label, forced in (("block", False), ("input", True)):
        adapter = TorchAdapter(model, example_input=x[:2])
        adapter._force_input_expansion = forced
        start = time.perf_counter()
        curve = ablation_curve(adapter, data, scope, orderings, fractions, batch_size=BATCH)
        timed[label] = (adapter, curve, time.perf_counter() - start)
    adapter, curve, _ = timed["block"]
    points = dict(adapter.expansion_points)
    assert all(where.startswith(("encoder.layers.", "bert.encoder.layer.")) and "." in where
               for where in points.values()), points  # fmt: skip
    print(f"  {name}: rows expand at {points}", flush=True)
    masks = curve_masks(adapter, curve, scope_sites(adapter.sites, scope, "B7"))
    start = time.perf_counter()
    base = naive(model, x, y, adapter, masks)
    t_naive = time.perf_counter() - start
    for label in ("block", "input"):
        accuracy = timed[label][1]["ablation_accuracy"].values[0].ravel()
        worst = float(np.abs(accuracy - base).max()) * len(y)
        assert worst <= 1, f"{label} path differs from the naive loop by {worst:.0f} examples"
    print(f"  naive {t_naive:.2f} s, input {timed['input'][2]:.2f} s, "
          f"block {timed['block'][2]:.2f} s", flush=True)  # fmt: skip
    return {
        "naive hook loop": t_naive,
        "directionkit, expanded at the model input": timed["input"][2],
        "directionkit, expanded at the encoder layer": timed["block"][2],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--repeat", type=int, help="side-by-side runs (default 3; quick 1)")
    parser.add_argument("--only", choices=("vit", "bert"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, orderings, fractions = (40, 1, 3) if args.quick else (300, 3, 6)
    repeat = args.repeat or (1 if args.quick else 3)
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, build in (("vit", vit), ("bert", bert)):
        if args.only not in (None, name):
            continue
        model, example, scope, vocab = build()
        x = inputs(example, n, vocab)
        with torch.no_grad():
            y = torch.cat([logits_of(model, x[s : s + BATCH]).argmax(1)
                           for s in range(0, n, BATCH)])  # fmt: skip
        y[::3] = torch.randint(0, 10, y[::3].shape, generator=torch.Generator().manual_seed(2))
        print(f"B7 {name}: {n} inputs, scope {scope}, {orderings}x{fractions} curve points, "
              f"batch {BATCH}")  # fmt: skip
        runs = Runs("naive hook loop")
        for r in range(repeat):
            print(f"run {r + 1} of {repeat}", flush=True)
            runs.add(one_run(name, model, x, y, scope, orderings, fractions))
        print(runs.table())
    print(f"machine at the end: {machine()}")


if __name__ == "__main__":
    main()
