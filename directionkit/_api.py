"""``directionkit.analyze``: every measure of the paper for one model, in one call."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from directionkit._validation import check_choice, parameter_error
from directionkit.adapter import ModelAdapter, SupportsWeightL1
from directionkit.errors import InvalidParameterError, UnsupportedModelError
from directionkit.experiments import (
    ablation_curve,
    activation_statistics,
    noise_curve,
    unit_importance,
)
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import evaluate, unit_coords
from directionkit.metrics import ablation_auc
from directionkit.store import Analysis, fingerprint

METRICS = ("statistics", "ablation", "importance", "noise", "weight_l1")
DEFAULT_NOISE_SCALES = (0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def as_adapter(
    model: Any, *, sites: Sequence[str] | None, device: str | None, data: Any
) -> ModelAdapter:
    """The adapter for ``model``: itself if it is one, else one found lazily.

    A ``torch.nn.Module`` is recognised only when torch is already imported (so the
    core never imports it); an ONNX model (a path ending in ``.onnx``, bytes, or an
    ``onnx.ModelProto``) goes to the ONNX adapter, imported only then; other adapters
    register under the entry-point group ``directionkit.adapters`` as a callable
    ``(model, sites, device, example_input)`` returning an adapter, or None when the
    model is not theirs.
    """
    if isinstance(model, ModelAdapter):
        if sites is not None or device is not None:
            raise InvalidParameterError(
                "'sites' and 'device' are set on the adapter itself when analyze() is given "
                f"an adapter ({type(model).__name__}); pass them to its constructor instead."
            )
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        module = importlib.import_module("directionkit.adapters.torch")
        first = next(iter(Batches(data, func="analyze")))[0]
        return module.TorchAdapter(model, sites=sites, device=device, example_input=first[:1])
    if _looks_like_onnx(model):
        try:
            module = importlib.import_module("directionkit.adapters.onnx")
        except ImportError as err:
            raise UnsupportedModelError(
                f"Reading ONNX models needs onnx and onnxruntime ({err}); install them with "
                "pip install 'directionkit[onnx]' (or [onnx-gpu], never both)."
            ) from err
        return module.OnnxAdapter(model, sites=sites, device=device)
    for entry in entry_points(group="directionkit.adapters"):
        adapter = entry.load()(model, sites, device, None)
        if adapter is not None:
            return adapter
    raise UnsupportedModelError(
        f"analyze() does not know how to run a {type(model).__module__}.{type(model).__name__}. "
        "Supported: a torch.nn.Module (with torch installed), an ONNX model (a path to an "
        ".onnx file, its bytes, or an onnx.ModelProto; with the onnx extra), or any object "
        "implementing directionkit.adapter.ModelAdapter."
    )


def _looks_like_onnx(model: Any) -> bool:
    """A path to an ``.onnx`` file, raw bytes, or an ``onnx.ModelProto`` (onnx imported)."""
    if isinstance(model, str | os.PathLike):
        return Path(model).suffix.lower() == ".onnx"
    if isinstance(model, bytes | bytearray):
        return True
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(model, onnx.ModelProto)


def _identity(data: Any) -> str:
    if isinstance(data, tuple) and len(data) == 2:
        try:
            return fingerprint(np.asarray(data[0]), np.asarray(data[1]))
        except (TypeError, ValueError):
            pass
    return f"{type(data).__module__}.{type(data).__name__}"


def analyze(
    model: Any,
    data: Any,
    *,
    train_data: Any = None,
    sites: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] = ("all",),
    orderings: int = 10,
    fractions: int | Sequence[float] = 21,
    ablate_to: Literal["zero", "mean"] = "zero",
    noise_scales: Sequence[float] | None = None,
    noise_repeats: int = 10,
    seed: int = 0,
    device: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> Analysis:
    """Measure a model's reliance on single directions.

    Parameters
    ----------
    model : torch.nn.Module, ONNX model or ModelAdapter
        The classifier: a torch module whose forward returns class scores ``(B, C)``;
        an ONNX model as a path to an ``.onnx`` file, its bytes or an
        ``onnx.ModelProto`` (see :class:`directionkit.adapters.onnx.OnnxAdapter`); or
        any adapter.
    data : (X, y) tuple, torch DataLoader, or iterable of (x, y) batches
        The data every measure is computed on (the paper: training data for ablation
        and noise curves of memorising models, test data for selectivity).
    train_data : same kinds as ``data``, optional
        Where each unit's sd (noise scale) and mean (mean-ablation value) come from.
        Required for ``"noise"``; default for ``ablate_to="mean"``: ``data``.
    sites : sequence of str, optional
        Sites to measure (default: every activation).
    metrics : sequence of str, optional
        Any of ``"statistics"`` (class means, selectivity, MI, unit mean/sd),
        ``"ablation"``, ``"importance"``, ``"noise"``, ``"weight_l1"``.  Default: all
        of them, ``"noise"`` only when ``train_data`` is given, ``"weight_l1"`` only
        when the adapter can report weights.
    scopes : sequence of str
        Scopes of the ablation curves: ``"all"``, a site name, ``"last:K"``.
    orderings, fractions, ablate_to :
        See :func:`directionkit.experiments.ablation_curve`.
    noise_scales, noise_repeats :
        See :func:`directionkit.experiments.noise_curve`.
    seed : int
        Seed of every random choice; the result is deterministic for a seed.
    device : str, optional
        ``"cpu"`` or ``"cuda"`` for a torch or ONNX model.
    batch_size : int, optional
        Batch size when data are ``(X, y)`` arrays (default 1000).
    progress : bool
        Show a progress bar over the experiments.

    Returns
    -------
    Analysis
        Variables of the directionkit data model (``accuracy``, ``loss``,
        ``ablation_accuracy``, ``ablation_order``, ``ablation_auc``, ``noise_accuracy``,
        ``class_mean``, ``selectivity``, ``mutual_info``, ``unit_mean``, ``unit_std``,
        ``importance_loss``, ``importance_accuracy``, ``weight_l1``) for the chosen
        metrics, with unit coordinates ``site`` and ``unit_index``; the parameters are
        in ``attrs``.

    Examples
    --------
    >>> import numpy as np
    >>> import directionkit as dk
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> net = NumpyMLPAdapter.random(n_in=4, hidden=(6, 5), n_classes=3, seed=0)
    >>> X = np.random.default_rng(0).normal(size=(40, 4)); y = net.predict(X)
    >>> result = dk.analyze(net, (X, y), orderings=2, fractions=5, progress=False)
    >>> float(result["accuracy"]), result["selectivity"].sizes["unit"]
    (1.0, 11)
    """
    chosen = list(METRICS) if metrics is None else list(metrics)
    for name in chosen:
        check_choice(name, "metrics", "analyze", METRICS)
    if "noise" in chosen and train_data is None:
        if metrics is not None:
            raise parameter_error(
                "train_data", "analyze", "given when 'noise' is among the metrics (unit sd "
                "comes from the training data)", None,
            )  # fmt: skip
        chosen.remove("noise")
    if isinstance(scopes, str):
        raise parameter_error("scopes", "analyze", "a sequence of scopes", scopes)
    adapter = as_adapter(model, sites=sites, device=device, data=data)
    if "weight_l1" in chosen and not isinstance(adapter, SupportsWeightL1):
        if metrics is not None:
            raise InvalidParameterError(
                f"'weight_l1' was asked for, but {type(adapter).__name__} cannot report weights."
            )
        chosen.remove("weight_l1")
    batches = Batches(data, batch_size, "analyze")
    parts: list[xr.Dataset] = []
    steps = ["accuracy", *chosen]
    bar = tqdm(steps, desc="directionkit", disable=not progress, leave=False)
    for step in bar:
        bar.set_postfix_str(step)
        if step == "accuracy":
            clean = evaluate(adapter, batches, None)
            parts.append(
                xr.Dataset(
                    {"accuracy": float(clean.accuracy[0]), "loss": float(clean.mean_loss[0])}
                )
            )
        elif step == "statistics":
            parts.append(activation_statistics(adapter, batches))
        elif step == "ablation":
            means = None
            if ablate_to == "mean":
                from directionkit.experiments._statistics import unit_means

                means = unit_means(
                    adapter,
                    Batches(train_data if train_data is not None else data, batch_size),
                    list(adapter.sites),
                )
            curves = [
                ablation_curve(
                    adapter, batches, scope, orderings, fractions, ablate_to, seed, means=means
                )
                for scope in scopes
            ]
            curve = xr.concat(curves, dim="scope", join="outer", fill_value={"ablation_order": -1})
            curve["ablation_auc"] = ablation_auc(curve["ablation_accuracy"]).mean("ordering")
            parts.append(curve.drop_attrs())
        elif step == "importance":
            parts.append(unit_importance(adapter, batches))
        elif step == "noise":
            scales = DEFAULT_NOISE_SCALES if noise_scales is None else noise_scales
            parts.append(
                noise_curve(adapter, batches, train_data, scales, noise_repeats, seed)
                .to_dataset()
                .drop_attrs()
            )
        elif step == "weight_l1":
            assert isinstance(adapter, SupportsWeightL1)
            values = np.concatenate([adapter.unit_weight_l1(n) for n in adapter.sites])
            parts.append(
                xr.Dataset({"weight_l1": ("unit", values)}, coords=unit_coords(adapter.sites))
            )
    dataset = xr.merge([p.drop_attrs() for p in parts], compat="equals", join="exact")
    dataset.attrs = {
        "parameters": {
            "metrics": chosen, "scopes": list(scopes), "orderings": orderings,
            "fractions": fractions if isinstance(fractions, int) else [float(f) for f in fractions],
            "ablate_to": ablate_to, "seed": seed, "batch_size": batch_size,
            "noise_scales": None if noise_scales is None else [float(s) for s in noise_scales],
            "noise_repeats": noise_repeats,
        },
        "model": getattr(adapter, "identity", type(adapter).__name__),
        "data": _identity(data),
        "train_data": None if train_data is None else _identity(train_data),
        "sites": list(adapter.sites),
    }  # fmt: skip
    return Analysis(dataset)
