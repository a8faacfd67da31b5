"""``directionkit.analyze``: every measure of the paper for one model, in one call."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from directionkit._choices import ABLATE_TO, DEFAULT_NOISE_SCALES, METRICS
from directionkit._validation import check_choice, check_int, parameter_error
from directionkit.adapter import (
    ModelAdapter,
    SupportsFoldedWeightL1,
    SupportsLazySites,
    SupportsWeightL1,
)
from directionkit.errors import DirectionKitWarning, InvalidParameterError, UnsupportedModelError
from directionkit.experiments import (
    ablation_curve,
    activation_statistics,
    noise_curve,
    unit_importance,
)
from directionkit.experiments._ablation import check_fractions, clamp_values
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import evaluate, find_sites, top_k, unit_coords
from directionkit.experiments._progress import ProgressCallback, Tracker
from directionkit.experiments._statistics import check_scales
from directionkit.metrics import ablation_auc, chance_note
from directionkit.store import Analysis, fingerprint

#: Examples of the first batch a torch model is first run on, to find its sites and
#: judge its output (probabilities by their values need more than one row).
DISCOVERY_EXAMPLES = 4
#: Default most units whose single-unit importance ``analyze`` measures (one
#: intervention per unit over the data): beyond it a stratified random sample.
IMPORTANCE_UNITS = 1024
#: Named scope presets: ``"paper-conv"`` is the paper's protocol for conv nets (Fig. 1b,c:
#: "only feature maps in the last three layers were ablated"), next to every unit.
SCOPE_PRESETS: dict[str, tuple[str, ...]] = {"paper-conv": ("all", "last:3")}


def as_adapter(
    model: Any,
    *,
    sites: Sequence[Any] | None,
    device: str | None,
    data: Any,
    output: Any = None,
    inputs: Any = None,
    unit_axes: Mapping[str, int] | None = None,
    output_kind: str | None = None,
) -> ModelAdapter:
    """The adapter for ``model``: itself if it is one, else one found lazily.

    A ``torch.nn.Module`` is recognised only when torch is already imported (so the
    core never imports it); an ONNX model (a path ending in ``.onnx``, bytes, or an
    ``onnx.ModelProto``) goes to the ONNX adapter, imported only then; other adapters
    register under the entry-point group ``directionkit.adapters`` as a callable
    ``(model, sites, device, example_input)`` returning an adapter, or None when the
    model is not theirs (``output``, ``inputs`` and ``unit_axes`` are passed as keywords
    when given).
    """
    options = {
        "output": output, "inputs": inputs, "unit_axes": unit_axes, "output_kind": output_kind,
    }  # fmt: skip
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(model, SupportsLazySites) and model.sites_pending and data is not None:
        # before `isinstance(model, ModelAdapter)`, which reads `sites` on Python 3.11
        find_sites(cast(ModelAdapter, model), Batches(data, func="analyze"))
    if isinstance(model, ModelAdapter):
        set_here = [k for k, v in (("sites", sites), ("device", device)) if v is not None]
        if set_here or given:
            named = ", ".join(repr(k) for k in (*set_here, *given))
            raise InvalidParameterError(
                f"{named} are set on the adapter itself when analyze() is given an adapter "
                f"({type(model).__name__}); pass them to its constructor instead."
            )
        return model
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        module = importlib.import_module("directionkit.adapters.torch")
        first = next(iter(Batches(data, func="analyze")))[0]
        return module.TorchAdapter(  # a few examples: evidence for the output's kind
            model, sites=sites, device=device, example_input=first[:DISCOVERY_EXAMPLES],
            **options,
        )  # fmt: skip
    if _looks_like_onnx(model):
        try:
            module = importlib.import_module("directionkit.adapters.onnx")
        except ImportError as err:
            raise UnsupportedModelError(
                f"Reading ONNX models needs onnx and onnxruntime ({err}); install them with "
                "pip install 'directionkit[onnx]' (or [onnx-gpu], never both)."
            ) from err
        return module.OnnxAdapter(model, sites=sites, device=device, **options)
    for entry in entry_points(group="directionkit.adapters"):
        adapter = entry.load()(model, sites, device, None, **given)
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


def site_info(adapter: ModelAdapter) -> dict[str, dict[str, Any]]:
    """Per site: ``kind``, ``n_units``, and where the adapter knows them, ``op``,
    ``shape`` (one example's activation), ``unit_axis`` and ``unit_axis_from``.

    ``op`` is the layer type at the site (a torch module class such as ``"ReLU"``, a
    function such as ``"relu()"``, an ONNX op type such as ``"Relu"``), read from the
    adapter's optional ``site_ops`` mapping.  Figures label sites with it
    (:func:`directionkit.plots.site_label`).  ``unit_axis`` counts the axes of one
    example's activation (0 is the first after the batch); the others are positions.

    Examples
    --------
    >>> from directionkit.testing import NumpyMLPAdapter
    >>> site_info(NumpyMLPAdapter.random(n_in=2, hidden=(3,), n_classes=2, seed=0))
    {'hidden0': {'kind': 'dense', 'n_units': 3, 'shape': [3], 'unit_axis': 0}}
    """
    ops = getattr(adapter, "site_ops", None)
    info: dict[str, dict[str, Any]] = {}
    for name, site in adapter.sites.items():
        entry: dict[str, Any] = {"kind": site.kind, "n_units": site.n_units}
        if isinstance(ops, Mapping) and isinstance(ops.get(name), str):
            entry["op"] = ops[name]
        if site.shape is not None:
            entry["shape"] = list(site.shape)
            entry["unit_axis"] = site.unit_axis_in(len(site.shape))
        elif site.axis is not None:
            entry["unit_axis"] = site.axis
        if site.axis_from is not None:
            entry["unit_axis_from"] = site.axis_from
        info[name] = entry
    return info


class _Stages:
    """One progress bar (or callback) per stage of :func:`analyze`, numbered ``[i/n]``."""

    def __init__(self, progress: bool | Callable[[str, int, int | None], None], names: list[str]):
        self.progress = progress
        self.count = len(names)
        self.index = 0

    @contextlib.contextmanager
    def track(self, stage: str) -> Iterator[ProgressCallback | None]:
        self.index += 1
        if callable(self.progress):
            report = self.progress
            yield lambda done, total: report(stage, done, total)
            return
        if not self.progress:
            yield None
            return
        bar = tqdm(
            desc=f"directionkit [{self.index}/{self.count}] {stage}", total=None, leave=False,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        )  # fmt: skip

        def update(done: int, total: int | None) -> None:
            if total != bar.total:
                bar.total = total
            bar.update(done - bar.n)

        try:
            yield update
        finally:
            bar.close()

def _identity(data: Any) -> str:
    """A fingerprint of ``(X, y)`` data, else its type; never fails (it is bookkeeping).

    It runs after every measure is computed, so a failure here must not lose them: an
    array that cannot be hashed is recorded as unknown, with a warning.
    """
    if isinstance(data, tuple) and len(data) == 2:
        try:
            return fingerprint(data[0], data[1])
        except Exception as err:  # whatever the array type throws: keep the results
            warnings.warn(
                f"directionkit: could not fingerprint the data ({type(err).__name__}: {err}); "
                "its identity is recorded as unknown.",
                RuntimeWarning,
                stacklevel=3,
            )
            return f"unknown ({type(data[0]).__module__}.{type(data[0]).__name__})"
    return f"{type(data).__module__}.{type(data).__name__}"


def analyze(
    model: Any,
    data: Any,
    *,
    train_data: Any = None,
    sites: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    scopes: Sequence[str] | str = ("all",),
    orderings: int = 10,
    fractions: int | Sequence[float] = 21,
    ablate_to: Literal["zero", "mean", "channel-mean"] = "zero",
    noise_scales: Sequence[float] | None = None,
    noise_repeats: int = 10,
    noise_sd: Literal["map", "spatial-mean"] = "map",
    accuracy: Literal["top1", "top5"] = "top1",
    n_bins: int = 16,
    binning: Literal["equal-width", "equal-frequency"] = "equal-width",
    seed: int = 0,
    device: str | None = None,
    batch_size: int | None = None,
    output: str | int | Callable[[Any], Any] | None = None,
    inputs: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]] | None = None,
    unit_axes: Mapping[str, int] | None = None,
    output_kind: str | None = None,
    importance_units: int | Literal["all"] = IMPORTANCE_UNITS,
    classes: Literal["present", "all"] = "present",
    progress: bool | Callable[[str, int, int | None], None] = True,
) -> Analysis:
    """Measure a model's reliance on single directions.

    Parameters
    ----------
    model : torch.nn.Module, ONNX model or ModelAdapter
        The classifier: a torch module (its forward may return the class scores
        ``(B, C)``, a tuple, a dict or a HuggingFace ``ModelOutput``; see ``output``);
        an ONNX model as a path to an ``.onnx`` file, its bytes or an
        ``onnx.ModelProto`` (see :class:`directionkit.adapters.onnx.OnnxAdapter`); or
        any adapter.
    data : (X, y) tuple, torch DataLoader, or iterable of (x, y) batches
        The data every measure is computed on (the paper: training data for ablation
        and noise curves of memorising models, test data for selectivity).
    train_data : same kinds as ``data``, optional
        Where each unit's sd (noise scale) and mean (mean-ablation value) come from
        (the paper: the training set).  Required for ``"noise"`` and for
        ``ablate_to="mean"``/``"channel-mean"`` (pass ``train_data=data`` to take the
        means from the analysed data instead; attrs record which was used).
    sites : sequence, optional
        Sites to measure (default: every hidden activation, module or functional).
        Torch: site names, any module path (its output; ``"path:input"`` for its
        input), module classes, or predicates ``(path, module) -> bool``; ONNX: site
        names or any tensor name.
    metrics : sequence of str, optional
        Any of ``"statistics"`` (class means, selectivity, MI, unit mean/sd),
        ``"ablation"``, ``"importance"``, ``"noise"``, ``"weight_l1"``.  Default: all
        of them, ``"noise"`` only when ``train_data`` is given, ``"weight_l1"`` only
        when the adapter can report weights.
    scopes : sequence of str, or a preset name
        Scopes of the ablation curves: ``"all"``, a site name, ``"last:K"`` (the last K
        layers; a ResNet block is one layer).  The preset ``"paper-conv"`` is
        ``("all", "last:3")``, the paper's protocol for conv nets.
    orderings, fractions, ablate_to :
        See :func:`directionkit.experiments.ablation_curve`.  ``ablate_to="mean"``
        clamps each element of a conv map to its own training-set mean (paper A.1);
        ``"channel-mean"`` to one mean per map.
    noise_scales, noise_repeats, noise_sd :
        See :func:`directionkit.experiments.noise_curve` (``noise_repeats`` is its
        ``repeats``).
    accuracy : {"top1", "top5"}
        Accuracy of every measure (clean accuracy, ablation and noise curves,
        ``importance_accuracy``); the paper uses top-5 for its ImageNet ResNet.
    n_bins, binning :
        Discretisation of activity for the mutual information (see
        :func:`directionkit.experiments.activation_statistics`).
    seed : int
        Seed of every random choice; the result is deterministic for a seed.
    device : str, optional
        ``"cpu"`` or ``"cuda"`` for a torch or ONNX model.
    batch_size : int, optional
        Batch size when data are ``(X, y)`` arrays (default 1000).
    output : str, int or callable, optional
        Which output holds the class scores: a key (a dict or ``ModelOutput`` entry, an
        ONNX output name), an index, or (torch) a callable on what forward returns.
        Default: the only candidate, or the one named ``logits``; several others are
        refused with the list.
    inputs : mapping or callable, optional
        The model's other inputs, fixed (``{"attention_mask": mask, "sr": 16000}``) or
        made per batch by a callable ``inputs(x) -> mapping``; the data go to the input
        not named (ONNX) or to forward's first argument (torch).
    unit_axes : mapping of str to int, optional
        The unit axis of named sites (0 is the first axis of one example's activation),
        where the adapter cannot tell it from the producing layer.
    output_kind : str, optional
        What the scores are, where the model's operations do not tell it: ``"logits"``,
        ``"probabilities"``, ``"log-probabilities"``, ``"sigmoid-probabilities"``, or for
        one score per example ``"binary-probability"`` / ``"binary-logit"`` (refused
        without it when its values all lie in [0, 1]).  Default: detected.
    importance_units : int or "all"
        How many units' single-unit importance is measured (one intervention per unit;
        1024 by default): with more units, a random sample stratified by site (seeded):
        each site its share of the budget and at least one unit, so about this many (one
        more per site at most); the others are NaN and ``attrs["importance_sampled"]``
        says so.  ``"all"``: every unit.
        Plain ReLU MLPs, computed incrementally, always get every unit.
    classes : {"present", "all"}
        The classes of class means and selectivity: those the data hold an example of
        (the default; an absent class gets NaN class means, a warning names it, and
        ``attrs["classes_missing"]`` lists them), or every class of the model (``"all"``:
        an absent class is an error).  Ablation, noise and importance never need every
        class.
    progress : bool or callable
        Show a progress bar per experiment (each scope's ablation curve is one), advancing
        with every batch and chunk of interventions, with the time left.  A callable is
        called instead as ``progress(stage, done, total)`` (work in example-rows; total
        None when the data's length is unknown).  False: silent.

    Returns
    -------
    Analysis
        Variables of the directionkit data model (``accuracy``, ``loss``,
        ``ablation_accuracy``, ``ablation_order``, ``ablation_auc``, ``noise_accuracy``,
        ``class_mean``, ``selectivity``, ``mutual_info``, ``unit_mean``, ``unit_std``,
        ``importance_loss``, ``importance_accuracy``, ``weight_l1`` -- the raw filter
        norm -- and ``weight_l1_folded`` -- with BatchNorm folded in -- where the
        adapter can give them) for the chosen metrics, with unit coordinates ``site``
        and ``unit_index``; the parameters, model and data identity and ``n_examples``
        (examples measured) are in ``attrs``, with ``site_info`` (each site's kind,
        units, shape and unit axis), ``output`` (where the scores were read),
        ``assumptions`` (what had to be assumed without evidence) and ``skipped`` (each
        measure that could not be computed for this model, with why; the others are
        kept).

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
    if not isinstance(progress, bool) and not callable(progress):
        raise parameter_error("progress", "analyze", "True, False or a callable", progress)
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
        if scopes not in SCOPE_PRESETS:
            raise parameter_error(
                "scopes", "analyze", f"a sequence of scopes or a preset name in "
                f"{sorted(SCOPE_PRESETS)}", scopes,
            )  # fmt: skip
        scopes = SCOPE_PRESETS[scopes]
    check_choice(ablate_to, "ablate_to", "analyze", ABLATE_TO)
    k = top_k(accuracy, "analyze")
    n_bins = check_int(n_bins, "n_bins", "analyze", minimum=2)
    check_choice(binning, "binning", "analyze", ("equal-width", "equal-frequency"))
    check_choice(noise_sd, "noise_sd", "analyze", ("map", "spatial-mean"))
    check_choice(classes, "classes", "analyze", ("present", "all"))
    if ablate_to != "zero" and "ablation" in chosen and train_data is None:
        raise parameter_error(
            "train_data", "analyze", f"given when ablate_to={ablate_to!r} (the paper's means "
            "are over the training set; pass train_data=data to use the analysed data)", None,
        )  # fmt: skip
    if importance_units != "all":
        importance_units = check_int(importance_units, "importance_units", "analyze", minimum=1)
    # every option checked here, before the first pass over the data
    orderings = check_int(orderings, "orderings", "analyze", minimum=1)
    check_fractions(fractions, "analyze")
    seed = check_int(seed, "seed", "analyze", minimum=0)
    noise_repeats = check_int(noise_repeats, "noise_repeats", "analyze", minimum=1)
    if noise_scales is not None:
        check_scales(noise_scales, "noise_scales", "analyze")
    if batch_size is not None:
        check_int(batch_size, "batch_size", "analyze", minimum=1)
    adapter = as_adapter(
        model, sites=sites, device=device, data=data, output=output, inputs=inputs,
        unit_axes=unit_axes, output_kind=output_kind,
    )  # fmt: skip
    if "weight_l1" in chosen and not isinstance(adapter, SupportsWeightL1):
        if metrics is not None:
            raise InvalidParameterError(
                f"'weight_l1' was asked for, but {type(adapter).__name__} cannot report weights."
            )
        chosen.remove("weight_l1")
    batches = Batches(data, batch_size, "analyze")
    notes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    parts: list[xr.Dataset] = []
    n_examples = 0
    steps = ["accuracy", *chosen]
    stages = _Stages(
        progress,
        [
            n
            for s in steps
            for n in ([f"ablation [{c}]" for c in scopes] if s == "ablation" else [s])
        ],
    )
    chance = float("nan")  # the best constant prediction's accuracy, set by the first step

    def measure(step: str) -> xr.Dataset | None:
        """One measure; None when it is left out (the reason is in ``skipped``)."""
        if step == "statistics":
            with stages.track(step) as callback:
                statistics = activation_statistics(
                    adapter, batches, n_bins=n_bins, binning=binning, classes=classes,
                    progress=callback,
                )  # fmt: skip
            for key in ("n_classes", "classes_present", "classes_missing", "classes_note",
                        "selectivity_note"):  # fmt: skip
                if key in statistics.attrs:
                    notes[key] = statistics.attrs[key]
            return statistics
        if step == "ablation":
            means = None
            if ablate_to != "zero":
                means = clamp_values(
                    adapter, Batches(train_data, batch_size, "analyze"), list(adapter.sites),
                    ablate_to,
                )  # fmt: skip
            curves = []
            for scope in scopes:
                with stages.track(f"ablation [{scope}]") as callback:
                    curve = ablation_curve(
                        adapter, batches, scope, orderings, fractions, ablate_to, seed,
                        means=means, accuracy=accuracy, progress=callback,
                    )  # fmt: skip
                curves.append(curve)
            curve = xr.concat(curves, dim="scope", join="outer", fill_value={"ablation_order": -1})
            curve["ablation_auc"] = ablation_auc(curve["ablation_accuracy"]).mean("ordering")
            curve["ablation_auc_corrected"] = ablation_auc(
                curve["ablation_accuracy"], chance=chance
            ).mean("ordering")
            return curve.drop_attrs()
        if step == "importance":
            with stages.track(step) as callback:
                importance = unit_importance(
                    adapter, batches, accuracy=accuracy, progress=callback,
                    max_units=None if importance_units == "all" else importance_units,
                    seed=seed,
                )  # fmt: skip
            if "sampled" in importance.attrs:
                notes["importance_sampled"] = importance.attrs["sampled"]
            return importance
        if step == "noise":
            scales = DEFAULT_NOISE_SCALES if noise_scales is None else noise_scales
            with stages.track(step) as callback:
                noise = noise_curve(
                    adapter, batches, train_data, scales, noise_repeats, seed,
                    accuracy=accuracy, noise_sd=noise_sd, progress=callback,
                )  # fmt: skip
            return noise.to_dataset().drop_attrs()
        assert step == "weight_l1"
        with stages.track(step):
            weights = _weight_l1(adapter, notes)
        if not weights.data_vars:
            raise UnsupportedModelError(notes.pop("weight_l1_note").removeprefix(
                "weight_l1 left out: "
            ))  # fmt: skip
        return weights

    for step in steps:
        if step == "accuracy":
            with stages.track("accuracy") as callback:
                tracker = Tracker(callback)
                tracker.plan(batches.n_examples)
                clean = evaluate(adapter, batches, None, k, tracker)
            n_examples = clean.n
            assert clean.label_counts is not None
            chance, note = chance_note(float(clean.accuracy[0]), clean.label_counts, k)
            parts.append(
                xr.Dataset({
                    "accuracy": float(clean.accuracy[0]), "loss": float(clean.mean_loss[0]),
                    "chance_accuracy": chance, "near_chance": note is not None,
                })
            )  # fmt: skip
            if note is not None:
                notes["near_chance_note"] = (
                    f"{note}: a model at chance stays at chance when ablated, so its ablation "
                    "AUC says little (near 1); ablation_auc_corrected is NaN or near 0"
                )
                warnings.warn(f"directionkit: {notes['near_chance_note']}.", DirectionKitWarning,
                              stacklevel=2)  # fmt: skip
            continue
        try:
            part = measure(step)
        except UnsupportedModelError as err:
            # a measure this model cannot give: the others are kept, and the store says why
            skipped[step] = str(err)
            warnings.warn(
                f"directionkit: {step} left out: {err}", DirectionKitWarning, stacklevel=2
            )
            continue
        if part is not None:
            parts.append(part)
    dataset = xr.merge([p.drop_attrs() for p in parts], compat="equals", join="exact")
    asked = device if device is not None else getattr(adapter, "device_asked", None)
    dataset.attrs = {
        "parameters": {
            "metrics": chosen, "scopes": list(scopes), "orderings": orderings,
            "fractions": fractions if isinstance(fractions, int) else [float(f) for f in fractions],
            "ablate_to": ablate_to, "seed": seed, "batch_size": batch_size,
            "noise_scales": None if noise_scales is None else [float(s) for s in noise_scales],
            "noise_repeats": noise_repeats, "noise_sd": noise_sd, "accuracy": accuracy,
            "n_bins": n_bins, "binning": binning, "classes": classes,
            "importance_units": importance_units,
        },
        "accuracy": accuracy,
        "means_from": "train_data" if ablate_to != "zero" and "ablation" in chosen else None,
        "output_kind": str(getattr(adapter, "output_kind", "logits")),
        "output": str(getattr(adapter, "output_description", "the model's output")),
        "assumptions": [str(a) for a in getattr(adapter, "assumptions", ())],
        "skipped": skipped,
        **notes,
        **_device_note(asked, getattr(adapter, "device", None)),
        "model": getattr(adapter, "identity", type(adapter).__name__),
        # where it ran, and where it was asked to (a fallback from CUDA is said, not hidden)
        "device": str(getattr(adapter, "device", "cpu")),
        "device_asked": asked,
        "data": _identity(data),
        "n_examples": n_examples,
        "train_data": None if train_data is None else _identity(train_data),
        "sites": list(adapter.sites),
        "site_info": site_info(adapter),
    }  # fmt: skip
    return Analysis(dataset)


def _device_note(asked: str | None, used: Any) -> dict[str, str]:
    """``device_note`` when ``device=`` asked for CUDA and the model ran elsewhere."""
    if asked is None or not str(asked).startswith("cuda") or str(used).startswith("cuda"):
        return {}
    return {"device_note": f"device={asked!r} was asked for, but the model ran on {used}"}


def _weight_l1(adapter: ModelAdapter, notes: dict[str, str]) -> xr.Dataset:
    """``weight_l1`` (raw filters) and ``weight_l1_folded`` (BatchNorm in), where known.

    A site whose incoming weights the adapter cannot give (no Linear or Conv feeds it,
    an LSTM's output) gets NaN, saying which in ``notes`` (and a warning); a variable no
    site has is left out.  A raw norm the model does not hold (an exporter folded
    BatchNorm into the Conv) leaves ``weight_l1`` out; never is a folded norm stored as
    raw.
    """
    assert isinstance(adapter, SupportsWeightL1)
    names = list(adapter.sites)
    methods: dict[str, Callable[[str], np.ndarray]] = {"weight_l1": adapter.unit_weight_l1}
    if isinstance(adapter, SupportsFoldedWeightL1):
        methods["weight_l1_folded"] = adapter.unit_weight_l1_folded
    values: dict[str, list[np.ndarray]] = {}
    failures: dict[str, dict[str, str]] = {}
    for variable, method in methods.items():
        values[variable], failures[variable] = [], {}
        for name in names:
            try:
                values[variable].append(np.asarray(method(name), np.float64))
            except UnsupportedModelError as err:
                failures[variable][name] = str(err)
                values[variable].append(np.full(adapter.sites[name].n_units, np.nan))
    variables: dict[str, tuple[str, np.ndarray]] = {}
    for variable, failed in failures.items():
        if failed:
            first = next(iter(failed.values()))
            folded_complete = "weight_l1_folded" in failures and not failures["weight_l1_folded"]
            if len(failed) == len(names) or (variable == "weight_l1" and folded_complete):
                # no site has it, or the raw filters are not in the model while every folded
                # one is (an exporter folded BatchNorm in): a partly raw variable next to a
                # folded one would invite mixing them
                notes[f"{variable}_note"] = f"{variable} left out: {first}"
                continue
            notes[f"{variable}_note"] = (
                f"{variable} is NaN at sites {sorted(failed)} ({len(failed)} of {len(names)}): "
                f"{first}"
            )
            warnings.warn(notes[f"{variable}_note"], DirectionKitWarning, stacklevel=3)
        variables[variable] = ("unit", np.concatenate(values[variable]))
    return xr.Dataset(variables, coords=unit_coords(adapter.sites))
