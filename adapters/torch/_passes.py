"""Forward passes under interventions, with prefix caching.

The ``B`` rows of a batch become ``M * B`` at an expansion point: the first intervened
site, else the input of an enclosing module, else the model input
(:func:`_expansion_candidates`); :func:`_forward` learns the innermost point that works
from failing passes (see the package docs).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import numpy as np
import torch

from directionkit.adapter import LOGARITHM_TAKEN
from directionkit.errors import UnsupportedModelError

from ._hooks import (
    _AT_INPUT,
    _AT_SITE,
    _Hook,
    _hooked,
    _numpy,
    _Pass,
    _repeat_batch,
    _Unexpandable,
)
from ._inputs import _extra_inputs
from ._outputs import _scores

if TYPE_CHECKING:
    from ._adapter import TorchAdapter

# the logger keeps the name it had before the adapter became a package
log = logging.getLogger("directionkit.adapters.torch")

_CALL = re.compile(r"(?P<base>.*?)(?:#(?P<call>\d+))?")


def _forward(adapter: TorchAdapter, x: torch.Tensor, state: _Pass) -> np.ndarray:
    """Logits ``(M, B, C)``; with M > 1 expanded at the learned point of the first site."""
    iv = state.interventions
    m = 1 if iv is None else iv.n_interventions
    if iv is None or m == 1 or not iv.sites:
        return _pass(adapter, x, state)
    first = min(iv.sites, key=lambda name: adapter.sites[name].depth)
    candidates = _expansion_candidates(adapter, first)
    index = (
        len(candidates) - 1 if adapter._force_input_expansion else adapter._expansion.get(first, 0)
    )
    b = x.shape[0]
    while True:
        attempt = _Pass(iv, state.record, b, expand_at=candidates[index], elements=state.elements)
        try:
            logits = _pass(adapter, x, attempt)
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, _Unexpandable) as err:
            if index == len(candidates) - 1 or not (
                attempt.expanded or isinstance(err, _Unexpandable)
            ):
                raise  # the last point, or an error before any row was expanded
            log.info(
                "Rows cannot be expanded at %s for site %r (%s); trying %s.",
                _describe(candidates[index], first), first, err,
                _describe(candidates[index + 1], first),
            )  # fmt: skip
            index += 1
            continue
        if not adapter._force_input_expansion and (
            b > 1 or index > adapter._expansion.get(first, 0)
        ):
            # with B == 1 a 1-row tensor broadcasts against M rows, so a success
            # does not show the point works for larger batches; a failure does count
            adapter._expansion[first] = index
        state.recorded.update(attempt.recorded)
        return logits


def _pass(adapter: TorchAdapter, x: torch.Tensor, state: _Pass) -> np.ndarray:
    """One forward pass expanding rows at ``state.expand_at``."""
    m = 1 if state.interventions is None else state.interventions.n_interventions
    b = x.shape[0]
    inputs = x
    kwargs = _extra_inputs(adapter, x)
    if state.expand_at == _AT_INPUT and m > 1:
        inputs = x.repeat(m, *([1] * (x.ndim - 1)))
        kwargs = _repeat_batch(kwargs, b, m)
        state.expanded = True
    with _hooked(adapter, state):
        returned = adapter.module(inputs, **kwargs)
    wanted = set(state.record) | set(state.interventions.sites if state.interventions else ())
    missed = sorted(wanted - state.visited)
    if missed:  # its edits would have done nothing: refuse rather than report robustness
        raise UnsupportedModelError(
            f"Sites {missed} were not reached in this forward pass (they were when the "
            "sites were found): the model's forward takes another path for these inputs, "
            "so interventions there would change nothing."
        )
    out = _scores(adapter, returned)
    if state.expanded and m > 1 and out.shape[0] != m * b:
        raise _Unexpandable(f"the output has {out.shape[0]} rows, expected {m} x {b}")
    if out.shape[0] == b and m > 1:
        out = out.unsqueeze(0).expand(m, *out.shape)
    if adapter.output_kind == "binary-logit":  # one logit: the classes are [0, z]
        out = torch.cat([torch.zeros_like(out), out], dim=-1)
    elif adapter.output_kind == "binary-probability":  # p of class 1: [log(1-p), log p]
        p = out.clamp(torch.finfo(out.dtype).tiny, 1 - torch.finfo(out.dtype).eps)
        out = torch.cat([torch.log1p(-p), torch.log(p)], dim=-1)
    elif adapter.output_kind in LOGARITHM_TAKEN:
        out = torch.log(out.clamp_min(torch.finfo(out.dtype).tiny))
    return _numpy(out.reshape(m, b, out.shape[-1]))


def _expansion_candidates(adapter: TorchAdapter, site: str) -> tuple[str | None, ...]:
    """Where rows may expand for a first intervened ``site``, innermost first.

    The site itself (None), then the modules enclosing it, from the innermost
    outwards (for a functional site, the module whose forward calls it first), then
    the model input (``""``).
    """
    path = _site_path(site)
    parts = path.split(".") if path else []
    # a module's output or input is the site itself; a function's owner encloses it
    own = 0 if adapter._hooks.get(site, _Hook("output")).where == "function" else 1
    ancestors = tuple(".".join(parts[:k]) for k in range(len(parts) - own, 0, -1))
    return (_AT_SITE, *ancestors, _AT_INPUT)


def _site_path(site: str) -> str:
    """The module path a site belongs to: its module, or a function's owner."""
    base = site.removesuffix(":input")
    base = _CALL.fullmatch(base)["base"]  # type: ignore[index]
    if base.endswith(")"):  # "owner.relu()": the owner
        return base.rsplit(".", 1)[0] if "." in base else ""
    return base


def _describe(where: str | None, site: str) -> str:
    if where is _AT_SITE:
        return f"site {site!r}"
    return "the model input" if where == _AT_INPUT else f"the input of module {where!r}"
