"""The state of one forward pass and the hooks that read and edit its sites.

A site is read where :class:`_Hook` says: a module's output or input (a forward hook or
pre-hook), or a functional activation call (:class:`_RunFunctions`, a torch function
mode); :func:`_visit` records it and applies the interventions to it, after the rows
were expanded from ``B`` to ``M * B`` at the pass's expansion point.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from directionkit.adapter import Interventions, Site
from directionkit.errors import InvalidDataError, UnsupportedModelError

from ._trace import FUNCTIONAL_ACTIVATIONS, FunctionWatch

if TYPE_CHECKING:
    from ._adapter import TorchAdapter

#: Where a pass expands B rows to M*B: at the first intervened site's output, at the
#: input of the module with this path (a pre-hook), or at the model input ("").
_AT_SITE: str | None = None
_AT_INPUT = ""


class _Unexpandable(Exception):
    """Rows cannot be expanded at the point a pass tried; the next point outwards is tried."""


@dataclass(frozen=True)
class _Hook:
    """Where a site is read: a module's output or input (its ``call``-th call), or the
    ``index``-th functional activation call of a pass."""

    where: str  # "output", "input" or "function"
    module: nn.Module | None = None
    call: int = 0
    index: int = -1


@dataclass
class _Pass:
    """The state of one forward pass through the hooks."""

    interventions: Interventions | None = None
    record: frozenset[str] = frozenset()
    batch_size: int = 0
    expanded: bool = False
    expand_at: str | None = _AT_SITE
    calls: dict[int, int] = field(default_factory=dict)
    functions: int = 0  # functional activation calls seen (outside activation modules)
    inside_activation: int = 0
    recorded: dict[str, np.ndarray] = field(default_factory=dict)
    elements: bool = False  # record unreduced activations
    visited: set[str] = field(default_factory=set)  # the sites the pass reached


@contextlib.contextmanager
def _hooked(adapter: TorchAdapter, state: _Pass) -> Iterator[None]:
    """Hooks on the site modules, eval mode, inference mode; all undone in finally."""
    modules = list(adapter.module.modules())
    training = [m.training for m in modules]
    handles = []
    functional = any(h.where == "function" for h in adapter._hooks.values())
    try:
        if state.expand_at:  # a module path: expand its input
            block = adapter.module.get_submodule(state.expand_at)
            handles.append(block.register_forward_pre_hook(_make_expander(state), with_kwargs=True))
        hooked: set[int] = set()
        for hook in adapter._hooks.values():
            if hook.module is None or id(hook.module) in hooked:
                continue
            hooked.add(id(hook.module))
            handles.append(hook.module.register_forward_pre_hook(_make_entry(adapter, state)))
            handles.append(hook.module.register_forward_hook(_make_hook(adapter, state)))
        if functional:  # functional calls inside activation modules are not sites
            for module in adapter._activation_modules:
                if id(module) not in hooked:
                    handles.append(module.register_forward_pre_hook(_make_entry(adapter, state)))
                    handles.append(module.register_forward_hook(_make_exit(state)))
        adapter.module.eval()
        with torch.inference_mode(), _RunFunctions(adapter, state) if functional else _nothing():
            yield
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in zip(modules, training, strict=True):
            module.training = flag


def _make_expander(state: _Pass):  # type: ignore[no-untyped-def]
    """A forward pre-hook repeating a module's batch-holding tensor arguments M times."""

    def expander(
        module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        b = state.batch_size
        if state.expanded:
            # a second call of the module in one pass: its input may be expanded rows
            # or an unrelated tensor, so it is left to an outer point
            raise _Unexpandable(
                f"module {state.expand_at!r} runs again after the rows were expanded"
            )
        x = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if not isinstance(x, torch.Tensor) or x.ndim == 0 or x.shape[0] != b:
            raise _Unexpandable(
                f"the first tensor argument of module {state.expand_at!r} is not a batch of {b}"
            )
        assert state.interventions is not None
        m = state.interventions.n_interventions
        state.expanded = True
        return _repeat_batch(args, b, m), _repeat_batch(kwargs, b, m)

    return expander


def _make_entry(adapter: TorchAdapter, state: _Pass):  # type: ignore[no-untyped-def]
    """A pre-hook: marks the pass inside an activation module, and reads input sites."""
    activations = {id(m) for m in adapter._activation_modules}

    def entry(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if id(module) in activations:
            state.inside_activation += 1
        key = adapter._names.get(id(module), "")
        call = state.calls.get(id(module), 0)
        name = _call_name(key, call) + ":input"
        # the first tensor argument, as the trace recorded it
        at = next((i for i, a in enumerate(args) if isinstance(a, torch.Tensor)), None)
        if name not in adapter._hooks or at is None:
            return None
        edited = _visit(adapter, state, name, args[at])
        return None if edited is None else (*args[:at], edited, *args[at + 1 :])

    return entry


def _make_exit(state: _Pass):  # type: ignore[no-untyped-def]
    def leave(module: nn.Module, inputs: Any, output: Any) -> None:
        state.inside_activation -= 1

    return leave


def _make_hook(adapter: TorchAdapter, state: _Pass):  # type: ignore[no-untyped-def]
    activations = {id(m) for m in adapter._activation_modules}

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        if id(module) in activations:
            state.inside_activation -= 1
        count = state.calls.get(id(module), 0)
        state.calls[id(module)] = count + 1
        name = _call_name(adapter._names.get(id(module), ""), count)
        if name not in adapter._hooks or not isinstance(output, torch.Tensor):
            return None
        return _visit(adapter, state, name, output)

    return hook


def _visit(
    adapter: TorchAdapter, state: _Pass, name: str, output: torch.Tensor
) -> torch.Tensor | None:
    """Record and edit the value of site ``name``; None leaves it unchanged."""
    if adapter._sites is None or name not in adapter._sites:
        return None
    state.visited.add(name)
    site = adapter._sites[name]
    iv = state.interventions
    m = 1 if iv is None else iv.n_interventions
    b = state.batch_size
    if name in state.record:
        row0 = output[:b] if state.expanded else output
        if not state.elements:  # average each unit over its positions: (B, n_units)
            axis = 1 + site.unit_axis_in(row0.ndim - 1)
            row0 = row0.movedim(axis, -1)
            if row0.ndim > 2:
                row0 = row0.mean(dim=tuple(range(1, row0.ndim - 1)))
        state.recorded[name] = _numpy(row0)
    if iv is None or name not in iv.sites:
        return None
    if not state.expanded:
        if state.expand_at is not _AT_SITE:
            raise _Unexpandable(f"site {name!r} runs before {state.expand_at!r}")
        if output.shape[0] != b:
            raise InvalidDataError(f"Site {name!r} has batch size {output.shape[0]}, expected {b}.")
        grouped = output.unsqueeze(0)
    else:
        grouped = output.reshape(m, b, *output.shape[1:])
    edited = _apply(grouped, iv, name, site)
    state.expanded = True
    return edited.reshape(m * b, *output.shape[1:])


def _apply(grouped: torch.Tensor, iv: Interventions, name: str, site: Site) -> torch.Tensor:
    """The interventions of site ``name`` on ``grouped`` of shape (M or 1, B, ...): on its
    units, or on its projections along a basis (see :meth:`Interventions.apply`)."""
    basis = iv.basis.get(name)
    if basis is None:
        return _edit(grouped, iv, name, site)
    axis = 2 + site.unit_axis_in(grouped.ndim - 2)
    u = torch.as_tensor(np.asarray(basis), dtype=grouped.dtype, device=grouped.device)
    p = _along(grouped, u, axis)  # (M or 1, B, ...) with k on the unit axis
    change = _edit(p, iv, name, site).sub_(p)  # p' - p, in the new tensor _edit made
    return grouped + _along(change, u.T, axis)


def _along(values: torch.Tensor, rows: torch.Tensor, axis: int) -> torch.Tensor:
    """``values`` with its ``axis`` (of size ``rows.shape[1]``) replaced by its products with
    ``rows``: ``values @ rows.T`` along that axis, in the same layout, by one matmul (a
    channel axis before the positions is the left operand, a last axis the right)."""
    shape = values.shape
    pre = int(np.prod(shape[:axis]))
    post = int(np.prod(shape[axis + 1 :]))
    out_shape = (*shape[:axis], rows.shape[0], *shape[axis + 1 :])
    if post == 1:
        return (values.reshape(pre, shape[axis]) @ rows.T).reshape(out_shape)
    # the axis moved last (one copy, unless it already is last in memory: the projections
    # made here are, so projecting them back copies nothing), then one large matmul
    moved = values.movedim(axis, -1)
    flat = moved.reshape(-1, shape[axis])
    return (flat @ rows.T).reshape(*moved.shape[:-1], rows.shape[0]).movedim(-1, axis)


def _edit(grouped: torch.Tensor, iv: Interventions, name: str, site: Site) -> torch.Tensor:
    """``a * scale + shift + noise_std * eps`` on ``grouped`` of shape (M or 1, B, ...),
    whose unit axis holds the site's units or its directions' projections."""
    m = iv.n_interventions
    shape = [m] + [1] * (grouped.ndim - 1)
    shape[2 + site.unit_axis_in(grouped.ndim - 2)] = iv.width(name)

    def term(values: Any) -> torch.Tensor:
        return torch.as_tensor(
            np.asarray(values), dtype=grouped.dtype, device=grouped.device
        ).reshape(shape)

    expected = None if site.shape is None else iv.term_shape(site, site.shape)
    if expected is not None and tuple(grouped.shape[2:]) != expected and name in iv.fill:
        raise InvalidDataError(
            f"Site {name!r} has activations of shape {tuple(grouped.shape[2:])} per example; "
            f"its 'fill' template was made for {expected} (inputs of another size?)."
        )
    shift = iv.shift_with_fill(site, tuple(grouped.shape[2:]))
    out = grouped * term(iv.scale[name])  # a new (M, B, ...) tensor: added to in place
    if np.any(shift != 0):  # zero-ablation has none: skip a pass over M*B rows
        out.add_(torch.as_tensor(shift, dtype=grouped.dtype, device=grouped.device))
    noise_std = np.asarray(iv.noise_std[name])
    if np.any(noise_std != 0):
        full = (m, *grouped.shape[1:])
        eps = np.stack([iv.standard_normal(name, r, full[1:]) for r in range(m)])
        out.add_(term(noise_std) * torch.from_numpy(eps).to(grouped.device, grouped.dtype))
    return out


class _RunFunctions(FunctionWatch):
    """Edits functional activation sites during a pass (see :class:`_Hook`)."""

    def __init__(self, adapter: TorchAdapter, state: _Pass) -> None:
        super().__init__()
        self.adapter = adapter
        self.state = state

    def seen(self, name: str, args: Sequence[Any], output: Any) -> Any:
        state = self.state
        if state.inside_activation > 0 or name not in FUNCTIONAL_ACTIVATIONS:
            return output
        index = state.functions
        state.functions += 1
        calls = self.adapter._functional
        site, function = calls[index] if index < len(calls) else (None, name)
        if function != name:  # counted by position: another path would edit the wrong call
            raise UnsupportedModelError(
                f"The model's forward called {name}() where it called {function}() when the "
                "sites were found: it takes another path for these inputs, so functional "
                "sites cannot be told apart. Name module sites instead (sites=[...])."
            )
        if site is None or not isinstance(output, torch.Tensor):
            return output
        edited = _visit(self.adapter, state, site, output)
        return output if edited is None else edited


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def _call_name(path: str, call: int) -> str:
    return path if call == 0 else f"{path}#{call}"


def _repeat_batch(values: Any, b: int, m: int) -> Any:
    """Tensors (in a tuple or dict) whose first axis holds the batch, repeated M times."""

    def repeat(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == b:
            return value.repeat(m, *([1] * (value.ndim - 1)))
        return value

    if isinstance(values, dict):
        return {k: repeat(v) for k, v in values.items()}
    return tuple(repeat(v) for v in values)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    """A CPU numpy copy, float64 kept, other float dtypes as float32."""
    dtype = torch.float64 if tensor.dtype == torch.float64 else torch.float32
    return tensor.detach().to("cpu", dtype).numpy()
