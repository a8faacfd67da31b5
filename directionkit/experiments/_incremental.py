"""Cumulative ablation of a plain ReLU MLP, computed incrementally along each ordering.

Along one ordering the clamped set only grows.  With ``S`` the first scoped site and
``W`` the layer consuming it, the consumer's pre-activation under a clamp mask is

    z = (keep * h + clamped * fill) @ W + b  =  z_clean - ((h - fill)[:, C] @ W[C, :])

so moving to the next fraction subtracts the newly clamped units' columns only: the
large matmul is done once per ordering instead of once per curve point.  Layers
after the consumer (and other scoped sites' masks) are recomputed per point, as they
depend on the whole edited activity; a later site's clamp mask is folded into the
weights of the layer after it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
from threadpoolctl import ThreadpoolController

from directionkit.adapter import LinearChain
from directionkit.experiments._data import Batches
from directionkit.experiments._engine import check_labels_fit, check_top_k, top_k_hits
from directionkit.experiments._progress import Tracker

#: Examples per block: an ordering's steps then work on a (units, BLOCK) array that
#: stays near the caches instead of streaming the whole batch through memory at every
#: step.  1,024 measured best of 256-2,048 on B1 (10x21: 1.37 s against 1.90 s at 256;
#: benchmarks/RESULTS.md): longer rows amortise each step's per-call overhead.
BLOCK = 1024


def _workers(tasks: int) -> int:
    """Worker threads for ``tasks`` independent pieces: one per usable core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(tasks, cores or 1))


def _split(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` contiguous pieces of near-equal size.

    Examples
    --------
    >>> _split(5, 2)
    [range(0, 2), range(2, 5)]
    """
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]


def _split_blocks(n: int, parts: int) -> list[range]:
    """``range(n)`` in at most ``parts`` contiguous pieces, cut at multiples of BLOCK.

    Examples
    --------
    >>> _split_blocks(5000, 2), _split_blocks(1000, 2)
    ([range(0, 2048), range(2048, 5000)], [range(0, 1000)])
    """
    blocks = -(-n // BLOCK)
    cuts = [min(n, BLOCK * piece.start) for piece in _split(blocks, parts)]
    return [range(a, b) for a, b in itertools.pairwise([*cuts, n])]


_CONTROLLER: Any = None


def single_threaded_blas() -> Any:
    """A context in which BLAS runs single-threaded (threadpoolctl).

    The loaded libraries are found once per process: a fresh ``threadpool_limits``
    scans them again each time (~10 ms here), which the per-batch calls of the fast
    paths would pay every batch.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


def _as_matrix(x: Any, dtype: np.dtype[Any]) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    array = np.asarray(x, dtype=dtype)
    return array.reshape(array.shape[0], -1)


def _clamped_layer(
    weight: np.ndarray,
    bias: np.ndarray,
    clamped: np.ndarray,
    fill: np.ndarray,
    along: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The next layer with its clamped inputs folded in: ``(W^T, b)`` for ``W^T @ act + b``.

    A clamped input contributes the constant ``fill @ W`` instead of its activity, so
    its weight row is dropped and that constant moves into the bias.  ``along = (U, U W)``
    (a basis and its directions' weights, ``(k, n_out)``): a clamped direction ``i``
    contributes ``fill_i U_i W`` instead of ``(act U_i^T) U_i W``, so the weights lose
    ``U_c^T U_c W`` (``c`` the clamped directions).
    """
    if along is None:
        kept = weight * ~clamped[:, None]
        return np.ascontiguousarray(kept.T), bias + (fill * clamped) @ weight
    basis, through = along
    kept = weight - basis[clamped].T.astype(weight.dtype) @ through[clamped]
    return np.ascontiguousarray(kept.T), bias + (fill * clamped) @ through


class _OrderingPlan(NamedTuple):
    """One ordering's steps, its consumer rows reordered so that live rows come first.

    ``perm`` orders the consumer's outputs by when the ordering clamps them (never, then
    latest first), so at every point the outputs still feeding the next layer are a
    prefix of ``active`` rows: a clamped output's row is never updated or read again.
    Each step holds the newly clamped units of the first site, their weight columns
    (rows in ``perm`` order, cut to ``active``) and ``active``; each point's tail has
    its first layer's inputs in ``perm`` order, cut to that point's ``active``.
    """

    perm: np.ndarray
    steps: list[tuple[np.ndarray, np.ndarray, int]]
    tails: list[list[tuple[np.ndarray, np.ndarray]]]


def _plan_ordering(
    start: int,
    points: int,
    consumer_t: np.ndarray,
    first_mask: np.ndarray,
    next_mask: np.ndarray | None,
    tails: list[list[tuple[np.ndarray, np.ndarray]]],
) -> _OrderingPlan:
    """The :class:`_OrderingPlan` of the curve points ``start .. start + points``."""
    rows = range(start, start + points)
    n_out = consumer_t.shape[0]
    if next_mask is None:  # the consumer's outputs are not scoped: all stay live
        perm = np.arange(n_out)
        live = [n_out] * points
    else:
        clamped_at = np.full(n_out, points)
        for point, row in enumerate(rows):
            clamped_at[(clamped_at == points) & next_mask[row]] = point
        perm = np.argsort(-clamped_at, kind="stable")
        live = [int(np.count_nonzero(clamped_at > point)) for point in range(points)]
    reordered = consumer_t[perm]
    steps = []
    clamped = np.zeros(first_mask.shape[1], dtype=bool)
    for point, row in enumerate(rows):
        new = np.flatnonzero(first_mask[row] & ~clamped)
        clamped[new] = True
        steps.append((new, np.ascontiguousarray(reordered[: live[point], new]), live[point]))
    point_tails: list[list[tuple[np.ndarray, np.ndarray]]] = []
    for point, row in enumerate(rows):
        if not tails[row]:  # the consumer is the output layer
            point_tails.append([])
            continue
        (weight_t, bias), *later = tails[row]
        point_tails.append([(np.ascontiguousarray(weight_t[:, perm[: live[point]]]), bias), *later])
    return _OrderingPlan(perm, steps, point_tails)


def incremental_accuracy(
    chain: LinearChain,
    batches: Batches,
    names: list[str],
    ablated: np.ndarray,
    offsets: Mapping[str, int],
    n_units: Mapping[str, int],
    fill: Mapping[str, np.ndarray] | None,
    points_per_ordering: int,
    k: int = 1,
    tracker: Tracker | None = None,
) -> np.ndarray:
    """Top-``k`` accuracy of every row of ``ablated`` (rows grouped by ordering, masks growing).

    ``ablated`` is ``(orderings * points_per_ordering, total_units)`` with the points of
    one ordering consecutive and each point's clamped set containing the previous one's.
    Computed in the chain's dtype (float32 for a float32 model), activity laid out as
    ``(units, examples)`` so that the incremental updates read contiguous rows.
    """
    # Longer than ~80 lines on purpose: its two inner functions are the hot loop, and as
    # closures they read the per-call state (weights, masks, BLAS routine) as fast locals.
    dtype = np.result_type(*chain.weights)
    weights = [np.asarray(w, dtype) for w in chain.weights]
    biases = [np.asarray(b, dtype) for b in chain.biases]
    layer_of = {n: chain.site_layers[n] for n in names}
    first = min(layer_of.values())
    first_site = next(n for n in names if layer_of[n] == first)
    by_layer = {layer_of[n]: n for n in names}
    masks = {n: ablated[:, offsets[n] : offsets[n] + n_units[n]] for n in names}
    fills = {
        n: np.zeros(n_units[n], dtype) if fill is None else np.asarray(fill[n], dtype)
        for n in names
    }
    # along a basis, a site's "units" are its projections h @ U.T (see LinearChain.bases)
    bases = {n: np.asarray(chain.bases[n], np.float64) for n in names if n in chain.bases}
    # each basis with its directions' weights in the next layer, once, not per curve point
    along = {
        n: (u, (u @ weights[layer_of[n] + 1]).astype(dtype)) for n, u in bases.items()
    }
    # per curve point, the layers after the consumer with that point's masks folded in
    tails = [
        [
            _clamped_layer(weights[layer + 1], biases[layer + 1], masks[by_layer[layer]][row],
                           fills[by_layer[layer]], along.get(by_layer[layer]))
            if layer in by_layer
            else (np.ascontiguousarray(weights[layer + 1].T), biases[layer + 1])
            for layer in range(first + 1, len(weights) - 1)
        ]
        for row in range(ablated.shape[0])
    ]  # fmt: skip
    clean_consumer_t = np.ascontiguousarray(weights[first + 1].T)  # (n_out, n_units)
    first_basis = bases.get(first_site)
    consumer_t = (  # the consumer's weight of each unit (direction) of the first site
        clean_consumer_t if first_basis is None
        else np.ascontiguousarray(along[first_site][1].T)
    )  # fmt: skip
    # a next site along a basis clamps directions, not the consumer's outputs
    next_site = by_layer.get(first + 1, "")
    n_rows = ablated.shape[0]
    from scipy.linalg.blas import get_blas_funcs  # 0.3 s to import: where it is used

    gemm = get_blas_funcs("gemm", dtype=dtype)
    plans = [
        _plan_ordering(start, points_per_ordering, consumer_t, masks[first_site],
                       None if next_site in bases else masks.get(next_site), tails)
        for start in range(0, n_rows, points_per_ordering)
    ]  # fmt: skip

    def one_ordering(
        plan: _OrderingPlan, delta_t: np.ndarray, clean_t: np.ndarray, y: np.ndarray,
        part: range,
    ) -> np.ndarray:  # fmt: skip
        """Correct counts of the curve points of one ordering, on examples ``part``."""
        hits = np.zeros(points_per_ordering)
        # blocks of examples small enough that the ordering's steps stay in cache
        for lo in range(part.start, part.stop, BLOCK):
            hi = min(lo + BLOCK, part.stop)
            block_y = y[lo:hi]
            block_delta = delta_t[:, lo:hi]
            # consumer outputs in the ordering's row order; edited in place, C-ordered
            z_t = clean_t[plan.perm, lo:hi]
            relu = np.empty_like(z_t)
            for point in range(points_per_ordering):
                new, columns, active = plan.steps[point]
                if new.size and active:
                    # z_t[:active] -= columns @ (h - fill)[new], in place (one BLAS call);
                    # rows past `active` feed only clamped units: never read again
                    gemm(-1.0, block_delta[new].T, columns.T, beta=1.0,
                         c=z_t[:active].T, overwrite_c=True)  # fmt: skip
                out = z_t[:active]
                for layer, (weight_t, bias) in enumerate(plan.tails[point]):
                    live = np.maximum(out, 0, out=relu[:active] if layer == 0 else None)
                    out = weight_t @ live + bias[:, None]
                hits[point] += np.count_nonzero(
                    out.argmax(axis=0) == block_y if k == 1 else top_k_hits(out, block_y, k, 0)
                )
        return hits

    def prefix(x: Any, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch's first site activity less its fill, and the consumer's clean input."""
        h = _as_matrix(x, dtype)
        for layer in range(first + 1):
            h = np.maximum(h @ weights[layer] + biases[layer], 0)
        check_labels_fit(y, weights[-1].shape[1], batches.func)
        check_top_k(k, weights[-1].shape[1], batches.func)
        units = h if first_basis is None else (h @ first_basis.T).astype(dtype)
        delta_t = np.ascontiguousarray((units - fills[first_site][None, :]).T)  # (units, B)
        clean_t = clean_consumer_t @ np.ascontiguousarray(h.T) + biases[first + 1][:, None]
        return delta_t, clean_t, y

    correct = np.zeros(n_rows)
    total = 0
    starts = range(0, n_rows, points_per_ordering)
    # orderings are independent, and so are examples: (ordering, part of the batch) tasks
    # on worker threads (numpy releases the GIL) balance any number of orderings over the
    # cores; each with a single-threaded BLAS, which beats threading the small matmuls
    # themselves.  The orderings hold the GIL often enough not to fill two cores, so the
    # next batch's prefix runs beside them on its own thread
    workers = _workers(2 * len(starts))
    pending = iter(batches)
    following = next(pending, None)
    with ThreadPoolExecutor(workers) as pool, ThreadPoolExecutor(1) as ahead:
        ready = None if following is None else prefix(*following)  # BLAS on every core
        with single_threaded_blas():
            while ready is not None:
                delta_t, clean_t, y = ready
                following = next(pending, None)
                upcoming = None if following is None else ahead.submit(prefix, *following)
                parts = _split_blocks(y.shape[0], workers)
                jobs = [
                    [pool.submit(one_ordering, plan, delta_t, clean_t, y, part) for part in parts]
                    for plan in plans
                ]
                for start, ordering_jobs in zip(starts, jobs, strict=True):
                    for job in ordering_jobs:
                        correct[start : start + points_per_ordering] += job.result()
                    if tracker is not None:
                        tracker.advance(y.shape[0], points_per_ordering)
                total += y.shape[0]
                ready = None if upcoming is None else upcoming.result()
    return correct / total


def _hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per example ``(B, C)``: is the label among the top ``k`` scores."""
    return logits.argmax(axis=1) == labels if k == 1 else top_k_hits(logits, labels, k, 1)


class _Batch(NamedTuple):
    """One data batch of :func:`single_unit_scores`: site activity and clean results."""

    h_t: np.ndarray  # (units, B)
    z: np.ndarray  # (B, n_out), the consumer's clean pre-activation
    y: np.ndarray
    loss: np.ndarray  # clean per-example loss
    hit: np.ndarray  # clean per-example correctness


def single_unit_scores(
    chain: LinearChain,
    batches: Batches,
    site: str,
    k: int = 1,
    tracker: Tracker | None = None,
) -> tuple[np.ndarray, np.ndarray, float, float, int]:
    """Summed loss and (top-``k``) correct count with each unit of ``site`` alone clamped.

    Clamping unit ``u`` changes the consumer's pre-activation by the rank-1 term
    ``-h[:, u] W[u, :]``, so each unit costs one outer product plus the layers after
    the consumer, never the layers before the site — and only over the examples
    where ``h[:, u]`` is not already zero.

    Returns
    -------
    loss, correct : ndarray (n_units,)
        Summed cross-entropy and correct predictions with that unit clamped.
    clean_loss, clean_correct : float
        The same without any clamp.
    n : int
        Number of examples.
    """
    from directionkit.experiments._engine import cross_entropy, summed_cross_entropy

    dtype = np.result_type(*chain.weights)
    weights = [np.asarray(w, dtype) for w in chain.weights]
    biases = [np.asarray(b, dtype) for b in chain.biases]
    layer = chain.site_layers[site]
    consumer, consumer_b = weights[layer + 1], biases[layer + 1]
    basis = chain.bases.get(site)
    # along a basis, direction u's activity is h @ U_u and its weights U_u @ W
    through = consumer if basis is None else (np.asarray(basis) @ consumer).astype(dtype)
    n_units = through.shape[0]
    loss, correct = np.zeros(n_units), np.zeros(n_units)
    clean_loss, clean_correct, total = 0.0, 0.0, 0

    workers = _workers(n_units)

    def tail(z: np.ndarray, inplace: bool = False) -> np.ndarray:
        for later in range(layer + 2, len(weights)):
            z = np.maximum(z, 0, out=z if inplace else None) @ weights[later]
            z += biases[later]
            inplace = True  # z is ours from here on
        return z

    from scipy.linalg.blas import get_blas_funcs

    ger = get_blas_funcs("ger", dtype=dtype)

    def some_units(units: range, batch: _Batch) -> None:
        # clamping unit u to zero changes nothing where it is already zero (ReLU
        # sparsity): only the examples where it is active are recomputed
        for unit in units:
            active = np.flatnonzero(batch.h_t[unit])
            if active.size == 0:
                continue
            edited = batch.z[active]  # a copy, edited in place:
            # edited -= h[active, unit] (outer) consumer[unit], one BLAS rank-1 update
            ger(-1.0, through[unit], batch.h_t[unit, active], a=edited.T, overwrite_a=True)
            out = tail(edited, inplace=True)
            labels = batch.y[active]
            loss[unit] += summed_cross_entropy(out, labels) - float(batch.loss[active].sum())
            correct[unit] += int(
                np.count_nonzero(_hits(out, labels, k)) - np.count_nonzero(batch.hit[active])
            )

    with ThreadPoolExecutor(workers) as pool:
        for x, y in batches:
            h = _as_matrix(x, dtype)
            for earlier in range(layer + 1):
                h = np.maximum(h @ weights[earlier] + biases[earlier], 0)
            check_labels_fit(y, weights[-1].shape[1], batches.func)
            check_top_k(k, weights[-1].shape[1], batches.func)
            z = h @ consumer + consumer_b
            logits = tail(z)
            example_loss = cross_entropy(logits[None], y)[0]
            example_hit = _hits(logits, y, k)
            clean_loss += float(example_loss.sum())
            clean_correct += int(np.count_nonzero(example_hit))
            loss += float(example_loss.sum())
            correct += int(np.count_nonzero(example_hit))
            units = h if basis is None else (h @ np.asarray(basis).T).astype(dtype)
            batch = _Batch(np.ascontiguousarray(units.T), z, y, example_loss, example_hit)
            # disjoint units per worker thread, each with a single-threaded BLAS
            with single_threaded_blas():
                list(pool.map(some_units, _split(n_units, workers), [batch] * workers))
            total += y.shape[0]
            if tracker is not None:
                tracker.advance(y.shape[0], n_units)
    return loss, correct, clean_loss, clean_correct, total
