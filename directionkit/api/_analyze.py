"""``directionkit.analyze``: every measure of the paper for one model, in one call."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import xarray as xr

from directionkit._utils.validation import parameter_error
from directionkit.adapter import ModelAdapter, SupportsWeightL1
from directionkit.api._adapters import as_adapter, site_info
from directionkit.api._analysis import Analysis
from directionkit.api._measures import IMPORTANCE_UNITS, _Measures, _Plan
from directionkit.directions import along
from directionkit.directions._choose import basis_variable, site_bases
from directionkit.errors import DirectionKitWarning, InvalidParameterError, UnsupportedModelError
from directionkit.experiments._baselines import label_baselines
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import find_sites
from directionkit.results import fingerprint


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
    directions: str | Mapping[str, Any] = "units",
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
        ``"ablation"``, ``"importance"``, ``"noise"``, ``"weight_l1"``, and ``"baselines"``
        (the field's other generalization measures, only by name: see
        :func:`directionkit.experiments.baseline_measures`).  Default: all
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
    directions : {"units", "random", "pca", "class-means"} or mapping
        The single directions measured at every site (the paper: "a single unit or
        feature map or some linear combination of units").  ``"units"`` (default): the
        units themselves.  ``"random"``: a Haar-random rotation of each site's units
        (seeded by ``seed``); ``"pca"``: the principal components of each site's
        activity over ``train_data`` (required); ``"class-means"``: the span of its
        class-mean differences over ``train_data``; or a mapping of site names to rows
        ``(k, n_units)`` (see :mod:`directionkit.directions`; sites it does not name keep
        their units).  Along directions, the ``unit`` dim of every variable holds the
        directions (``unit_index`` is the direction's index), the result holds the bases as
        ``direction_basis (unit, component)``, and ``weight_l1`` is left out (it is a
        property of units).
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
    # every option checked here, before the first pass over the data
    plan = _Plan.checked(
        metrics=metrics, train_data=train_data, scopes=scopes, orderings=orderings,
        fractions=fractions, ablate_to=ablate_to, noise_scales=noise_scales,
        noise_repeats=noise_repeats, noise_sd=noise_sd, accuracy=accuracy, n_bins=n_bins,
        binning=binning, seed=seed, batch_size=batch_size, importance_units=importance_units,
        classes=classes, directions=directions,
    )  # fmt: skip
    adapter = as_adapter(
        model, sites=sites, device=device, data=data, output=output, inputs=inputs,
        unit_axes=unit_axes, output_kind=output_kind,
    )  # fmt: skip
    if "weight_l1" in plan.chosen and (
        plan.directions != "units" or not isinstance(adapter, SupportsWeightL1)
    ):
        if metrics is not None:
            why = (
                f"{type(adapter).__name__} cannot report weights" if plan.directions == "units"
                else f"it is a property of units, and directions={plan.directions!r}"
            )  # fmt: skip
            raise InvalidParameterError(f"'weight_l1' was asked for, but {why}.")
        plan.chosen.remove("weight_l1")
    batches = Batches(data, batch_size, "analyze")
    measured, basis = adapter, None
    if plan.directions != "units":
        find_sites(adapter, batches)
        measured = along(
            adapter, site_bases(adapter, directions, train_data, plan.seed, batch_size)
        )
        basis = basis_variable(adapter, measured.bases)
    run = _Measures(measured, batches, plan, progress)
    parts = [run.clean()]
    if "near_chance_note" in run.notes:
        warnings.warn(f"directionkit: {run.notes['near_chance_note']}.", DirectionKitWarning,
                      stacklevel=2)  # fmt: skip
    for step in plan.chosen:
        try:
            parts.append(getattr(run, step)())  # the measure's method (see _Measures)
        except UnsupportedModelError as err:
            # a measure this model cannot give: the others are kept, and the store says why
            run.skipped[step] = str(err)
            warnings.warn(
                f"directionkit: {step} left out: {err}", DirectionKitWarning, stacklevel=2
            )
    if basis is not None:
        parts.append(basis)
    dataset = xr.merge([p.drop_attrs() for p in parts], compat="equals", join="exact")
    label_baselines(dataset)  # the merge dropped each baseline's definition
    dataset.attrs = _attrs(
        adapter, plan, run, device, data=_identity(data),
        train_data=None if train_data is None else _identity(train_data),
    )  # fmt: skip
    return Analysis(dataset)


def _attrs(
    adapter: ModelAdapter, plan: _Plan, run: _Measures, device: str | None, *, data: str,
    train_data: str | None,
) -> dict[str, Any]:
    """What an analysis' attrs record: its options, the model's output, notes and skips,
    the model's and the data's identity, and where it ran."""
    asked = device if device is not None else getattr(adapter, "device_asked", None)
    return {
        "parameters": plan.parameters(),
        "accuracy": plan.accuracy,
        "means_from": (
            "train_data" if plan.ablate_to != "zero" and "ablation" in plan.chosen else None
        ),
        "output_kind": str(getattr(adapter, "output_kind", "logits")),
        "output": str(getattr(adapter, "output_description", "the model's output")),
        "assumptions": [str(a) for a in getattr(adapter, "assumptions", ())],
        "skipped": run.skipped,
        **run.notes,
        **_device_note(asked, getattr(adapter, "device", None)),
        "model": getattr(adapter, "identity", type(adapter).__name__),
        # where it ran, and where it was asked to (a fallback from CUDA is said, not hidden)
        "device": str(getattr(adapter, "device", "cpu")),
        "device_asked": asked,
        "data": data,
        "n_examples": run.n_examples,
        "train_data": train_data,
        "sites": list(adapter.sites),
        "site_info": site_info(adapter),
    }  # fmt: skip


def _device_note(asked: str | None, used: Any) -> dict[str, str]:
    """``device_note`` when ``device=`` asked for CUDA and the model ran elsewhere."""
    if asked is None or not str(asked).startswith("cuda") or str(used).startswith("cuda"):
        return {}
    return {"device_note": f"device={asked!r} was asked for, but the model ran on {used}"}
