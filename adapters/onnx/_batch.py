"""A batch axis fixed in the file: made symbolic in the private copy when that changes
nothing (checked against the original), or else kept, with a warning, and run one
intervention per session run on pieces of the fixed size."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from directionkit.adapter import Interventions, RunOutput

from ._graph import PREFIX, np_dtype, static_tensors, value_types
from ._inputs import extra_feeds
from ._runtime import ORT_ERRORS, serialise

if TYPE_CHECKING:
    from ._adapter import OnnxAdapter

log = logging.getLogger(__name__.rpartition(".")[0])  # the package's, as before the split


def free_batch_axis(adapter: OnnxAdapter) -> float | None:
    """Make a fixed batch axis symbolic in the private copy, if that changes nothing.

    Exporters without dynamic shapes fix the batch (``torch.onnx.export`` gives the
    example's batch, often 1 or 2), which would force one intervention per session
    run.  The copy gets a symbolic batch axis and is kept only if it runs, on a
    batch of another size and on each example alone, and gives the same scores as
    the original model on its own fixed-size batches.  Returns the seconds one
    run of the original took when the batch stays fixed (for the warning), None when
    it was freed or the model does not run at all.
    """
    fixed = adapter._fixed_batch
    assert fixed is not None
    dims = adapter._input_dims[1:]
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures here are expected and reported by us
    cpu = ["CPUExecutionProvider"]
    reference = _reference(adapter)
    try:
        original = ort.InferenceSession(serialise(reference), options, providers=cpu)
    except ORT_ERRORS:
        return None  # the session built later reports why the model does not load
    if any(d is None for d in dims):
        adapter._fixed_reason = f"its other input dims {dims} are not all known"
        return _time_run(adapter, original, None)
    candidate = onnx.ModelProto()
    candidate.CopyFrom(reference)
    _make_batch_symbolic(adapter, candidate, fixed)
    _free_reshape_targets(adapter, candidate, fixed)
    rng = np.random.default_rng(0)
    n = 3 if fixed != 3 else 2  # a size other than the fixed one
    x = rng.random((n, *dims)).astype(adapter._input_dtype)  # type: ignore[arg-type]
    want = _fixed_size_scores(adapter, original, x, fixed)
    if want is None:
        return None  # the model fails on such input; running it says why
    try:
        free = ort.InferenceSession(serialise(candidate), options, providers=cpu)
        got = _free_scores(adapter, free, x)
    except ORT_ERRORS as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        adapter._fixed_reason = f"with a free batch axis it fails: {first[:300]}"
        return _time_run(adapter, original, x)
    if not _same_scores(got, want):
        adapter._fixed_reason = (
            "with a free batch axis its outputs differ from those of its fixed-size "
            "batches (the graph mixes examples, or has the batch size built in)"
        )
        return _time_run(adapter, original, x)
    adapter._model = candidate
    adapter._graph = candidate.graph
    adapter._types = value_types(candidate)
    adapter._static = static_tensors(candidate.graph)
    adapter._input_dims = (None, *dims)
    adapter._fixed_batch = None
    log.info("The model's input %r had a fixed batch size of %d; it runs with a free "
             "batch axis (checked against the original).", adapter._input, fixed)  # fmt: skip
    return None


def _reference(adapter: OnnxAdapter) -> onnx.ModelProto:
    """A copy of the model whose outputs include the class scores (a ZipMap's input)."""
    reference = onnx.ModelProto()
    reference.CopyFrom(adapter._model)
    if adapter.output_name not in {o.name for o in reference.graph.output}:  # e.g. a ZipMap's
        elem = np_dtype(adapter._types.get(adapter.output_name))
        reference.graph.output.append(
            helper.make_tensor_value_info(
                adapter.output_name, helper.np_dtype_to_tensor_dtype(elem), None
            )
        )
    return reference


def _make_batch_symbolic(adapter: OnnxAdapter, candidate: onnx.ModelProto, fixed: int) -> None:
    """Give the inputs' and outputs' batch axes a symbolic size (in place)."""
    symbol = f"{PREFIX}batch"
    for value in (*candidate.graph.input, *candidate.graph.output):
        shape = value.type.tensor_type.shape if value.type.HasField("tensor_type") else None
        if (
            shape is not None
            and len(shape.dim)
            and (value.name == adapter._input or shape.dim[0].dim_value == fixed)
        ):
            shape.dim[0].Clear()
            shape.dim[0].dim_param = symbol
        if shape is not None and callable(adapter._extras.get(value.name)):
            # another input made per batch (a recurrent state (2, B, 128)): every dim
            # of the fixed batch's size may be its batch axis; the check below decides
            for dim in shape.dim:
                if dim.HasField("dim_value") and dim.dim_value == fixed:
                    dim.Clear()
                    dim.dim_param = symbol
    del candidate.graph.value_info[:]  # shapes inferred with the fixed batch


def _free_reshape_targets(adapter: OnnxAdapter, candidate: onnx.ModelProto, fixed: int) -> None:
    """Replace the batch size built into ``Reshape`` targets (in place)."""
    for index, node in enumerate(candidate.graph.node):
        # exporters bake the batch into Reshape targets (x.view(2, 64) becomes shape
        # [2, 64]): -1 infers it, or 0 copies the input's first dim where -1 is taken
        # (and allowzero is off); checked below with everything else
        allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
        reshape = node.op_type == "Reshape" and len(node.input) > 1
        target = adapter._consts.get(node.input[1]) if reshape else None
        if target is None or target.ndim != 1 or not target.size or int(target[0]) != fixed:
            continue
        free_dim = -1 if -1 not in target[1:] else 0 if not allowzero else None
        if free_dim is not None:
            freed = np.array(target, np.int64)
            freed[0] = free_dim
            name = f"{PREFIX}free_batch_shape_{index}"
            candidate.graph.initializer.append(numpy_helper.from_array(freed, name))
            node.input[1] = name


def _fixed_size_scores(
    adapter: OnnxAdapter, original: Any, x: np.ndarray, fixed: int
) -> np.ndarray | None:
    """The original's scores for ``x``, on padded batches of its fixed size (None: it
    fails on such input)."""
    n, out = len(x), adapter.output_name
    pieces = []
    try:
        for start in range(0, n, fixed):
            piece = x[start : start + fixed]
            padded = np.concatenate([piece, np.repeat(piece[-1:], fixed - len(piece), 0)])
            feeds = extra_feeds(adapter._extras, adapter._input_types, padded)
            scores = original.run([out], {adapter._input: padded, **feeds})[0]
            pieces.append(np.asarray(scores)[: len(piece)])
    except ORT_ERRORS:
        return None
    return np.concatenate(pieces)


def _free_scores(adapter: OnnxAdapter, free: Any, x: np.ndarray) -> list[np.ndarray]:
    """The freed copy's scores for ``x`` as one batch, then for each example alone."""
    out, name = adapter.output_name, adapter._input

    def feeds(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {name: batch, **extra_feeds(adapter._extras, adapter._input_types, batch)}

    got = [np.asarray(free.run([out], feeds(x))[0])]
    got += [
        np.asarray(free.run([out], feeds(one))[0]) for one in (x[i : i + 1] for i in range(len(x)))
    ]
    return got


def _same_scores(got: Sequence[np.ndarray], want: np.ndarray) -> bool:
    """Whether the freed copy's scores (whole batch, then each example) are the original's."""
    same = got[0].shape == want.shape and np.allclose(got[0], want, rtol=1e-4, atol=1e-5)
    return same and all(
        g.shape == want[i : i + 1].shape and np.allclose(g, want[i : i + 1], rtol=1e-4, atol=1e-5)
        for i, g in enumerate(got[1:])
    )


def _time_run(adapter: OnnxAdapter, session: Any, x: np.ndarray | None) -> float:
    """Seconds one run of the original (fixed-batch) session takes, 0 if it cannot run."""
    if x is None:
        return 0.0
    fixed = adapter._fixed_batch
    assert fixed is not None
    piece = np.resize(x, (fixed, *x.shape[1:])).astype(x.dtype)
    start = time.perf_counter()
    feeds = {adapter._input: piece, **extra_feeds(adapter._extras, adapter._input_types, piece)}
    session.run([adapter.output_name], feeds)
    return time.perf_counter() - start


def _duration(seconds: float) -> str:
    """``"3.2 h"``: a rough duration for a message."""
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def warn_fixed_batch(adapter: OnnxAdapter, seconds: float) -> None:
    """Warn (in the log) that the batch stays fixed, with the cost and how to re-export."""
    fixed = adapter._fixed_batch
    assert fixed is not None
    examples = 10_000
    interventions = 10 * 21 + sum(s.n_units for s in adapter._sites.values())
    runs = -(-examples // fixed) * interventions
    if seconds > 0:
        total = runs * seconds
        estimate = (
            f" One run took {seconds * 1e3:.2g} ms here, so ablation curves and per-unit "
            f"importance on {examples:,} examples ({interventions} interventions, {runs:,} "
            f"runs) would take at least {_duration(total)}."
        )
    else:
        estimate = f" Ablation curves and importance on {examples:,} examples: {runs:,} runs."
    log.warning(
        "The model's input %r has a fixed batch size of %d, and the batch axis cannot be "
        "freed (%s); OnnxAdapter runs one intervention on %d examples per session run, "
        "which is slow.%s Re-export the model with a dynamic batch axis: "
        "torch.onnx.export(model, (x,), 'model.onnx', dynamo=True, "
        "dynamic_shapes=({0: torch.export.Dim('batch')},)), or with the legacy exporter "
        "dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}}.",
        adapter._input, fixed, adapter._fixed_reason, fixed, estimate,
    )  # fmt: skip


def run_fixed_batch(
    adapter: OnnxAdapter, x: np.ndarray, interventions: Interventions | None, record: Sequence[str]
) -> RunOutput:
    """One intervention, and ``fixed`` examples (padded), per session run."""
    fixed = adapter._fixed_batch
    assert fixed is not None
    rewrite = adapter._session_for(
        frozenset(interventions.sites if interventions else ()), frozenset(record),
        along=frozenset(interventions.basis if interventions else ()),
    )  # fmt: skip
    b = x.shape[0]
    m_total = 1 if interventions is None else interventions.n_interventions
    rows_out = []
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in record}
    for row in range(m_total):
        parts = []
        for start in range(0, b, fixed):
            piece = x[start : start + fixed]
            real = len(piece)
            if real < fixed:
                piece = np.concatenate([piece, np.repeat(piece[-1:], fixed - real, axis=0)])
            iv = None
            if interventions is not None:
                iv = interventions.rows(row, row + 1)
            out, rec = rewrite.run(
                piece, iv, record if row == 0 else (), None, noise_rows=(start, b)
            )
            parts.append(out[:, :real])
            for name, value in rec.items():
                recorded[name].append(value[:real])
        rows_out.append(np.concatenate(parts, axis=1))
    return RunOutput(
        np.concatenate(rows_out, axis=0),
        {name: np.concatenate(v) for name, v in recorded.items()},
    )
