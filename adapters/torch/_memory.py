"""The memory budget: M rows x B examples are cut into passes that fit
``memory_budget``, prefix caching kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from directionkit.adapter import Interventions

from ._hooks import _AT_INPUT, _AT_SITE
from ._passes import _expansion_candidates

if TYPE_CHECKING:
    from ._adapter import TorchAdapter


def _example_piece(adapter: TorchAdapter, interventions: Interventions | None, batch: int) -> int:
    """Examples per forward pass: all ``batch`` of them, unless their M rows overflow
    the budget; then pieces of examples that each take every row, so the layers before
    the expansion point still run once per example (cutting the rows instead would
    re-run them for every chunk of rows).  Counted from the learned expansion point,
    from the input until it is learned.  Noise is drawn for the whole batch, so noisy
    interventions keep the batch and cut the rows."""
    if interventions is None:  # a clean pass: every activation, one row
        return max(1, min(batch, adapter.memory_budget // (4 * 3 * _numel_from(adapter, "", ""))))
    if interventions.has_noise:
        return batch
    first, where, _ = _budget_point(adapter, interventions)
    per_example = 4 * 3 * _numel_from(adapter, where, first) * interventions.n_interventions
    # until the point is learned, at least two examples: a one-example pass cannot
    # teach it (one row broadcasts against any number of rows)
    least = 1 if where != _AT_INPUT or adapter._force_input_expansion else 2
    return max(min(batch, least), min(batch, adapter.memory_budget // per_example))


def _chunk_size(adapter: TorchAdapter, interventions: Interventions | None, batch: int) -> int:
    """Rows per pass: as many as fit the memory budget from the expansion point on.

    Until the point is learned the budget is counted from the input; when that fits
    only one row but counting from the site fits two, the pass takes two rows, so
    that the point can be learned (if the rows then expand at the input, that one
    pass holds up to twice the budget).
    """
    if interventions is None:
        return 1
    first, where, provisional = _budget_point(adapter, interventions)
    rows = _rows_fitting(adapter, batch, where, first)
    if provisional and rows <= 1:
        rows = min(2, _rows_fitting(adapter, batch, _AT_SITE, first))
    return max(1, min(interventions.n_interventions, rows))


def _budget_point(
    adapter: TorchAdapter, interventions: Interventions
) -> tuple[str, str | None, bool]:
    """The first intervened site, the expansion point the budget counts from, and
    whether that is provisional: the learned point; the input when expansion there is
    forced, or (provisionally) until the point is learned."""
    first = min(interventions.sites, key=lambda name: adapter.sites[name].depth)
    index = adapter._expansion.get(first)
    if adapter._force_input_expansion or index is None:
        return first, _AT_INPUT, not adapter._force_input_expansion
    return first, _expansion_candidates(adapter, first)[index], False


def _rows_fitting(adapter: TorchAdapter, batch: int, where: str | None, first: str) -> int:
    """How many rows of activations from expansion point ``where`` on fit the budget."""
    return adapter.memory_budget // (4 * batch * _numel_from(adapter, where, first) * 3)


def _numel_from(adapter: TorchAdapter, where: str | None, first: str) -> int:
    """Activation elements per example and row from expansion point ``where`` on."""
    names = list(adapter._site_numel)  # every activation, in forward order
    if where == _AT_INPUT or first not in names:
        start = 0
    elif where is _AT_SITE:
        start = names.index(first)
    else:
        start = min(
            (i for i, n in enumerate(names) if n == first or n.startswith(where + ".")),
            default=0,
        )
    return max(1, sum(adapter._site_numel[name] for name in names[start:]))
