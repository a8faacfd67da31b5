"""Turning what the user holds (a torch module, an ONNX file or ModelProto, an adapter)
into the seam, :class:`~directionkit.adapter.ModelAdapter`, found lazily."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

from directionkit.adapter import (
    ModelAdapter,
    SupportsLazySites,
)
from directionkit.errors import InvalidParameterError, UnsupportedModelError
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import find_sites

#: Examples of the first batch a torch model is first run on, to find its sites and
#: judge its output (probabilities by their values need more than one row).
#: Examples of the first batch a torch model is first run on, to find its sites and
#: judge its output (probabilities by their values need more than one row).
DISCOVERY_EXAMPLES = 4


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
    (:func:`directionkit.report._drawing.site_label`).  ``unit_axis`` counts the axes of one
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
