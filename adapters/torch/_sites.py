"""Finding the sites: one traced forward pass (see :mod:`._trace`), the calls that are
sites (all hidden activations, or those ``sites=`` names), their names, unit axes and
layers, and the errors that say why a model has none."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from directionkit.adapter import Site, check_unit_axes_named, given_unit_axis, guessed_unit_axis
from directionkit.errors import (
    DirectionKitWarning,
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)

from ._hooks import _Hook
from ._inputs import _extra_inputs
from ._outputs import (
    _output_path,
    _output_path_checked,
    _set_output_kind,
)
from ._trace import Call, Trace, producer_axis
from ._weights import _weight_producer

if TYPE_CHECKING:
    from ._adapter import TorchAdapter

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _discover(adapter: TorchAdapter, x: torch.Tensor) -> None:
    adapter._input_shape = tuple(x.shape[1:])
    trace = Trace(adapter.module)
    modules = list(adapter.module.modules())
    training = [m.training for m in modules]
    kwargs = _extra_inputs(adapter, x)
    _check_input_names(adapter, kwargs)
    try:
        adapter.module.eval()
        try:
            with torch.inference_mode(), trace.recording():
                returned = adapter.module(x, **kwargs)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            raise _forward_error(x, err, adapter._inputs is not None) from err
        trace.classify()  # probes modules: in eval mode, as the pass ran
    finally:
        for module, flag in zip(modules, training, strict=True):
            module.training = flag
    adapter._output_path, adapter.output_description = _output_path(returned, adapter._output, x)
    _output_path_checked(adapter, returned)
    _set_output_kind(adapter, trace, returned)
    adapter._activation_modules = [m for m in modules if id(m) in trace.activation_modules]
    hidden_before = trace.last_mixing()
    batch = x.shape[0]
    found: dict[str, tuple[Call, str]] = {}  # name -> (call, "output"/"input")
    functional: list[tuple[str, str]] = []  # (name, function) per functional call
    for call in trace.calls:
        if call.kind == "function" and trace.is_activation(call):
            functional.append((call.name, call.label))
        if not trace.is_activation(call):
            continue
        if call.order > hidden_before or not _per_example(call.shape, batch):
            continue  # the output's own activation, or not a per-example activation
        found[call.name] = (call, "output")
    if adapter._requested is not None:
        found = _requested_calls(adapter, trace, found, batch)
    sites: dict[str, Site] = {}
    hooks: dict[str, _Hook] = {}
    for name, (call, where) in sorted(
        found.items(), key=lambda item: item[1][0].start if item[1][1] == "input"
        else item[1][0].order,
    ):  # fmt: skip
        site = _site_for(adapter, trace, name, call, where, len(sites))
        sites[name] = site
        if call.kind == "function":
            hooks[name] = _Hook("function", index=[n for n, _ in functional].index(name))
        else:
            hooks[name] = _Hook(where, call.module, call.call)
        adapter._site_ops[name] = (
            f"{call.label}()" if call.kind == "function"
            else call.label + (":input" if where == "input" else "")
        )  # fmt: skip
        adapter._producers[name] = _weight_producer(trace, call, where)
    if not sites:
        raise UnsupportedModelError(_no_sites_message(adapter.module, trace, batch))
    adapter._functional = [(name if name in hooks else None, f) for name, f in functional]
    adapter._hooks = hooks
    adapter._site_numel = {
        call.name: int(np.prod(call.shape[1:]))  # type: ignore[index]
        for call in trace.calls
        if trace.is_activation(call) and _per_example(call.shape, batch)
    }
    for name, site in sites.items():
        adapter._site_numel.setdefault(name, int(np.prod(site.shape or (site.n_units,))))
    check_unit_axes_named(adapter._unit_axes, sites)
    adapter._sites = sites


def _check_input_names(adapter: TorchAdapter, kwargs: Mapping[str, Any]) -> None:
    """Names in ``inputs=`` that forward does not take: an error; that it takes only
    through ``**kwargs``: a warning (HF models swallow a misspelt ``atention_mask``)."""
    try:
        parameters = inspect.signature(adapter.module.forward).parameters
    except (TypeError, ValueError):  # a builtin forward: nothing to check against
        return
    named = [n for n, p in parameters.items()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
    catch_all = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    unknown = [k for k in kwargs if k not in named]
    if not unknown:
        return
    if not catch_all:
        raise InvalidParameterError(
            f"The 'inputs' parameter of TorchAdapter names {unknown}, which the model's "
            f"forward does not take; its arguments are {named}."
        )
    note = (
        f"inputs= names {unknown}, which the model's forward takes only through **kwargs "
        f"(its named arguments are {named}): a misspelt name would be ignored silently."
    )
    adapter.assumptions.append(note)
    warnings.warn(note, DirectionKitWarning, stacklevel=5)


def _requested_calls(
    adapter: TorchAdapter, trace: Trace, found: dict[str, tuple[Call, str]], batch: int
) -> dict[str, tuple[Call, str]]:
    """The calls ``sites=`` names, as (call, "output"/"input")."""
    assert adapter._requested is not None
    by_name = {c.name: c for c in trace.calls if c.kind == "module" and c.path}
    functions = {c.name: c for c in trace.calls if trace.is_activation(c)}
    chosen: dict[str, tuple[Call, str]] = {}
    for spec in adapter._requested:
        if isinstance(spec, str):
            if spec in found:
                chosen[spec] = found[spec]
                continue
            name, where = spec, "output"
            if spec.endswith(":input"):
                name, where = spec.removesuffix(":input"), "input"
            elif spec.endswith(":output"):
                name = spec.removesuffix(":output")
            call = by_name.get(name) or (functions.get(name) if where == "output" else None)
            if call is None:
                raise _unknown_site(spec, found, by_name)
            shape = call.in_shape if where == "input" else call.shape
            if where == "output" and not call.tensor_output:
                raise InvalidParameterError(
                    f"Site {spec!r} is module {call.label} whose output is not one tensor "
                    "(an RNN's (output, state), attention's (output, weights)): an edit of "
                    "one part could miss what the model uses. Name a tensor instead: the "
                    "input of the module that reads it ('path:input'), or an activation "
                    "after it."
                )
            if not _per_example(shape, batch):
                raise InvalidParameterError(
                    f"Site {spec!r} is not a per-example activation: its value has shape "
                    f"{shape}, not (batch={batch}, ...) (the batch must come first)."
                )
            chosen[call.name + (":input" if where == "input" else "")] = (call, where)
            continue
        matched = [
            c for c in by_name.values()
            if (isinstance(c.module, spec) if isinstance(spec, type)
                else bool(spec(c.path, c.module)))  # type: ignore[arg-type,operator]
            and _per_example(c.shape, batch) and c.tensor_output
        ]  # fmt: skip
        if not matched:
            what = spec.__name__ if isinstance(spec, type) else repr(spec)
            raise SiteNotFoundError(what, list(found))
        for call in matched:
            chosen[call.name] = (call, "output")
    return chosen


def _site_for(
    adapter: TorchAdapter, trace: Trace, name: str, call: Call, where: str, depth: int
) -> Site:
    shape = call.in_shape if where == "input" else call.shape
    assert shape is not None
    per_example = tuple(shape[1:])
    axis, source, conv = _unit_axis(adapter, trace, name, call, where, per_example)
    kind = "conv" if conv or len(per_example) >= 3 else "dense"
    layer = _layer_of(adapter, call)
    return Site(
        name,
        per_example[axis],
        kind,  # type: ignore[arg-type]
        depth,
        layer,
        per_example,
        axis,
        source,
    )


def _unit_axis(
    adapter: TorchAdapter, trace: Trace, name: str, call: Call, where: str, shape: tuple[int, ...]
) -> tuple[int, str, bool]:
    """``(axis, what fixed it, made by a convolution)`` for a site of per-example
    ``shape`` (see the module docs)."""
    rank = len(shape)
    given = given_unit_axis(adapter._unit_axes, name, shape)
    if given is not None:
        return given, "given", False
    own = call if call.kind == "module" and producer_axis(call)[0] is not None else None
    if own is not None and where == "input":
        weight = getattr(call.module, "weight", None)
        conv = weight is not None and weight.ndim >= 3
        return (0 if conv else rank - 1), f"{call.label} input", conv
    producer = own or trace.producer(call.start if where == "input" else call.order, True)
    if rank == 1:
        return 0, producer.label if producer is not None else "rank", False
    if producer is not None:
        full_axis, units, exact = producer_axis(producer)
        conv = full_axis == 1
        if full_axis is not None and producer.shape is not None:
            carried = (full_axis - 1) % rank if full_axis > 0 else rank - 1
            matches = [i for i, d in enumerate(shape) if d == units]
            if tuple(producer.shape[1:]) == shape and (exact or len(matches) != 1):
                return carried, producer.label, conv
            if len(matches) == 1:
                conv = conv or (rank >= 3 and matches[0] == 0)
                return matches[0], f"{producer.label} (by size)", conv
    default, note = guessed_unit_axis(name, shape)
    adapter.assumptions.append(note)
    warnings.warn(note, DirectionKitWarning, stacklevel=5)
    return default, "guess", rank >= 3 and default == 0


def _layer_of(adapter: TorchAdapter, call: Call) -> str | None:
    if call.kind == "function":
        owner = adapter.module.get_submodule(call.path) if call.path else adapter.module
        if owner is adapter.module or type(owner) in _CONTAINERS:
            return None
        return call.path
    return _layer(call.path, dict(adapter.module.named_modules()), adapter.module)


def _per_example(shape: tuple[int, ...] | None, batch: int) -> bool:
    return shape is not None and len(shape) >= 2 and shape[0] == batch


def _forward_error(x: torch.Tensor, err: Exception, has_inputs: bool) -> Exception:
    """The error for a forward pass that failed while the sites were being found."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if re.search(r"missing (value for argument|\d+ required positional argument)|"
                 r"required (positional|keyword) argument", text):  # fmt: skip
        hint = (
            "its forward needs more arguments than the data gives: pass the others with "
            "inputs={'name': value} (or a callable x -> dict)"
            if not has_inputs
            else "its forward needs arguments that inputs= does not give"
        )
        return UnsupportedModelError(
            f"The model could not be run on a batch of shape {tuple(x.shape)}: {hint} "
            f"({type(err).__name__}: {first})."
        )
    return InvalidDataError(
        f"Model input of shape {tuple(x.shape)} does not fit the model: the forward pass "
        f"failed with {type(err).__name__}: {first}. Check the shape and dtype the model "
        "expects (and give its other forward arguments with inputs=)."
    )


def _no_sites_message(module: nn.Module, trace: Trace, batch: int) -> str:
    classes = sorted({c.label for c in trace.calls if c.kind == "module" and c.path})
    last = trace.last_mixing()
    passed = []  # activations that ran but cannot be sites, and why
    for call in trace.calls:
        if not trace.is_activation(call):
            continue
        if call.order > last:
            passed.append(f"{call.name!r} (after the last mixing layer: part of the output)")
        elif not _per_example(call.shape, batch):
            passed.append(f"{call.name!r} (shape {call.shape}: the batch of {batch} is not its "
                          "first axis)")  # fmt: skip
    found = (
        f" Activations that ran but cannot be sites: {', '.join(passed[:6])}"
        + (", ..." if len(passed) > 6 else "") + "." if passed else ""
    )  # fmt: skip
    return (
        f"{type(module).__name__} has no hidden activation to use as a site: no activation "
        "module (a known type, or a parameter-free module acting as an element-wise "
        "nonlinearity) and no functional activation (F.relu, torch.tanh, ...) with the batch "
        f"on its first axis runs before its last mixing layer.{found} Module classes it ran: "
        f"{', '.join(classes) or '(none)'}. Name sites with sites=[...]: a module path (its "
        "output), 'path:input', a module class, or a predicate (path, module) -> bool."
    )


def _unknown_site(
    spec: str, found: Mapping[str, Any], modules: Mapping[str, Call]
) -> SiteNotFoundError:
    paths = list(modules)
    error = SiteNotFoundError(spec, found)
    shown = ", ".join(repr(p) for p in paths[:12]) + (", ..." if len(paths) > 12 else "")
    error.args = (
        f"{error.args[0][:-1]}; or any module path (for its output; 'path:input' for its "
        f"input): {shown}.",
    )
    return error


def _layer(site: str, modules: Mapping[str, nn.Module], root: nn.Module) -> str | None:
    """The layer of a site: its activation module's owner when that is a block.

    A block is a module with its own forward (a ResNet ``Bottleneck``); an activation
    owned by the model itself or by a container (exactly ``Sequential``, ``ModuleList``,
    ``ModuleDict``; a subclass such as torchvision's ``Conv2dNormActivation`` counts as a
    block, as an ONNX export, which names only the class, must count it) is a layer of
    its own (None).
    """
    path = site.split("#", 1)[0]
    if "." not in path:
        return None
    owner_path = path.rsplit(".", 1)[0]
    owner = modules.get(owner_path)
    if owner is None or owner is root or type(owner) in _CONTAINERS:
        return None
    return owner_path
