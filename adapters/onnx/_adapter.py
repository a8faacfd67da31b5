"""The :class:`OnnxAdapter` (see :mod:`directionkit.adapters.onnx`) and :func:`from_model`.

The class holds the adapter's state and its public face; the work is done by the
modules next to this one: loading (:mod:`._load`), the data input (:mod:`._inputs`),
the class scores (:mod:`._outputs`), a fixed batch axis (:mod:`._batch`), the sites
(:mod:`._sites`), the weights (:mod:`._weights`), onnxruntime (:mod:`._runtime`) and the
rewritten graphs it runs (:mod:`._rewrite`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from directionkit.adapter import (
    BINARY_KINDS,
    CPU_MEMORY_BUDGET,
    GPU_MEMORY_BUDGET,
    Interventions,
    LinearChain,
    RunOutput,
    Site,
    check_output_kind,
    check_request,
    check_unit_axes,
    check_unit_axes_named,
)
from directionkit.errors import DirectionKitWarning, InvalidParameterError, UnsupportedModelError
from directionkit.results import fingerprint

from ._batch import free_batch_axis, run_fixed_batch, warn_fixed_batch
from ._graph import ancestors, constants, static_tensors, value_types
from ._inputs import as_input, find_input
from ._load import checked_opset, load_model
from ._outputs import checked_kind, find_output, flatten_scores
from ._rewrite import Rewrite
from ._runtime import ORT_ERRORS, choose_providers, not_runnable, session_options
from ._sites import SiteInfo, discover, requested_sites
from ._weights import find_chain, weight_l1

log = logging.getLogger(__name__.rpartition(".")[0])  # the package's, as before the split


class OnnxAdapter:
    """Run an ONNX classifier under interventions, with onnxruntime.

    Parameters
    ----------
    model : str, os.PathLike, bytes or onnx.ModelProto
        The model.  External data (``model.onnx.data``) is read from next to the file,
        and only from inside its folder.  Neither the file nor a given ``ModelProto`` is
        ever modified.
    sites : sequence of str, optional
        Site names to use (see the module docs), or the names of any tensors of the
        graph; default: every hidden activation site.
    providers : sequence of str, optional
        onnxruntime execution providers.  Default: CUDA when onnxruntime-gpu is
        installed and a GPU is present, else CPU.
    output : str or int, optional
        The graph output holding the class scores, by name or index, when there are
        several (see the module docs for the default).
    device : {"cpu", "cuda"}, optional
        Shorthand for ``providers``.
    inputs : mapping of str to array-like or callable, optional
        The model's other inputs: a fixed value (``{"sr": 16000}``), or a callable
        ``value(x)`` making it for each batch ``x`` of the data input (``{"state":
        lambda x: np.zeros((2, len(x), 128), np.float32)}``).  The data go to the one
        graph input not named here.
    unit_axes : mapping of str to int, optional
        The unit axis of named sites (0 is the first axis after the batch), where the
        producing layer does not tell it.
    output_kind : str, optional
        What the scores are (see :data:`directionkit.adapter.ALL_KINDS`), where the
        graph does not tell it (a sigmoid inside a control-flow subgraph); default:
        detected.
    memory_budget : int, optional
        Bytes of site activations one session run may hold; M is chunked to fit.
        Default: 256 MiB when the session runs on the CPU, 1 GiB on CUDA (as
        :class:`~directionkit.adapters.torch.TorchAdapter`; on the CPU the B6 ResNet ran
        2.6-2.7 s at 256 MiB against 2.8-3.6 s at 1 GiB, ConvNet-11 no slower).
    graph_optimization : bool
        Keep onnxruntime's graph optimisations on (the default); off is for checks.
    io_binding : bool, optional
        Bind the data batch to the device once for all interventions (default: on
        for CUDA).
    cpu_memory_arena : bool
        Use onnxruntime's CPU memory arena (the default): runs reuse its memory, faster
        for large tensors (B4: 1.4x), but an arena keeps the peak of its session's runs
        for the session's life, so the adapter keeps only the two most recently used
        rewritten sessions (one per set of intervened and recorded sites).  Off, a run's
        memory is freed after it (``benchmarks/RESULTS.md``, B4, B8).

    Attributes
    ----------
    output_name : str
        The output read as class scores.
    output_kind : {"logits", "probabilities", "log-probabilities", "sigmoid-probabilities"}
        What that output holds; probabilities are returned as their logarithm.
    output_description : str
        The same, in words for the results' attrs.
    identity : str
        A content hash of the model, recorded in an analysis's attrs.
    assumptions : list of str
        What the adapter had to assume without evidence (recorded with results).
    """

    def __init__(
        self,
        model: Any,
        sites: Sequence[str] | None = None,
        providers: Sequence[str] | None = None,
        output: str | int | None = None,
        *,
        device: str | None = None,
        memory_budget: int | None = None,
        graph_optimization: bool = True,
        io_binding: bool | None = None,
        cpu_memory_arena: bool = True,
        inputs: Mapping[str, Any] | None = None,
        unit_axes: Mapping[str, int] | None = None,
        output_kind: str | None = None,
    ) -> None:
        self._extras, self._unit_axes, self._given_kind = _checked_arguments(
            sites, output, inputs, unit_axes, output_kind, device
        )
        self.assumptions: list[str] = []
        self._kind_checked = False
        self._rows_singly = False  # one intervention per run (extra inputs hold the batch)
        self._dims_cache: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = {}
        self._model = load_model(model)
        self.identity = fingerprint(np.frombuffer(self._model.SerializeToString(), np.uint8))
        self._opset = checked_opset(self._model)
        self._graph = self._model.graph
        self._types = value_types(self._model)
        self._consts = constants(self._graph)
        self._producers = {out: i for i, node in enumerate(self._graph.node) for out in node.output}
        self._static = static_tensors(self._graph)
        self._input, self._input_dtype, self._input_dims, self._input_types, self._batch_extras = (
            find_input(self._graph, self._extras)
        )
        self.output_name, self.output_kind = find_output(self, output)
        self.output_description = f"output {self.output_name!r}"
        if self._given_kind is not None:
            self.output_kind = self._given_kind
            self._kind_checked = True
        self._fixed_batch: int | None = self._input_dims[0]
        self._fixed_reason = ""
        fixed_run_seconds = free_batch_axis(self) if self._fixed_batch is not None else None
        flatten_scores(self)
        self._keep = ancestors(self._graph.node, self._producers, [self.output_name])
        self._site_info: dict[str, SiteInfo] = {}  # filled by discover() and site_of()
        self._site_ops: dict[str, str] = {}
        found = discover(self, required=sites is None)
        if sites is not None:
            found = requested_sites(self, sites, found)
        self._sites: dict[str, Site] = {
            name: dataclasses.replace(s, depth=depth)
            for depth, (name, s) in enumerate(found.items())
        }
        check_unit_axes_named(self._unit_axes, self._sites)
        #: the ``device`` asked for (None: CUDA when present); :attr:`device` is the one used
        self.device_asked = device
        self._providers = choose_providers(providers, device)
        self._options = session_options(graph_optimization, cpu_memory_arena)
        self.memory_budget = CPU_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        self._sessions: dict[tuple[Any, ...], Rewrite] = {}
        if fixed_run_seconds is not None:
            warn_fixed_batch(self, fixed_run_seconds)
        self._active_device = "cpu"
        self._chain = find_chain(self)  # one walk along the graph
        self._io_binding = io_binding
        try:  # fail early, and learn the device
            self._session_for(frozenset(), frozenset())
        except ORT_ERRORS as err:
            raise not_runnable(self._graph, err) from err
        if memory_budget is None and self._active_device != "cpu":
            self.memory_budget = GPU_MEMORY_BUDGET

    # -- properties ---------------------------------------------------------------
    @property
    def sites(self) -> Mapping[str, Site]:
        """The sites, in topological (forward) order."""
        return self._sites

    @property
    def onnx_model(self) -> Any:
        """The model as loaded (an ``onnx.ModelProto``, external data read in); not to be
        changed: the adapter's sessions are built from it."""
        return self._model

    @property
    def site_ops(self) -> Mapping[str, str]:
        """The op type producing each site's tensor (e.g. ``"Relu"``), for figure labels."""
        return dict(self._site_ops)

    @property
    def device(self) -> str:
        """``"cuda:0"`` when the CUDA execution provider runs the model, else ``"cpu"``."""
        return self._active_device

    @property
    def prefix_cache(self) -> bool:
        """True: rows are expanded at the first intervened site where the graph allows."""
        return True

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The model input's per-example shape (None for a free dimension)."""
        return self._input_dims[1:]

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions use."""
        return list(self._providers)

    # -- the seam -----------------------------------------------------------------
    def run(
        self,
        x: Any,
        interventions: Interventions | None = None,
        record: Sequence[str] = (),
    ) -> RunOutput:
        """Logits ``(M, B, C)`` under ``interventions`` and recorded activations ``(B, n_units)``.

        See :mod:`directionkit.adapter` for the semantics.
        """
        array = as_input(x, self._input, self._input_dims, self._input_dtype)
        check_request(self._sites, interventions, record)
        if self._fixed_batch is not None:
            out = run_fixed_batch(self, array, interventions, record)
        else:
            try:
                out = self._run_free(array, interventions, record)
            except ORT_ERRORS:
                m = 1 if interventions is None else interventions.n_interventions
                if not self._batch_extras or self._rows_singly or m == 1:
                    raise
                # an input given by inputs= holds the batch, and M*B expanded rows do not
                # match it: one intervention per session run from now on
                log.info("The model's other inputs %s hold the batch: running one "
                         "intervention per session run.", sorted(self._batch_extras))  # fmt: skip
                self._rows_singly = True
                out = self._run_free(array, interventions, record)
        return checked_kind(self, out)

    def _run_free(
        self, array: np.ndarray, interventions: Interventions | None, record: Sequence[str]
    ) -> RunOutput:
        """A run with a free batch axis: pieces of examples and chunks of rows that fit the
        memory budget (see :meth:`_example_piece` and :meth:`_chunk_size`)."""
        rewrite = self._session_for(
            frozenset(interventions.sites if interventions else ()), frozenset(record),
            along=frozenset(interventions.basis if interventions else ()),
        )  # fmt: skip
        m_total = 1 if interventions is None else interventions.n_interventions
        b = array.shape[0]
        numel = self._row_numel(rewrite if interventions is not None else None, array)
        piece = self._example_piece(interventions, b, numel)
        parts: list[np.ndarray] = []
        recorded: dict[str, list[np.ndarray]] = {name: [] for name in record}
        for lo in range(0, b, piece):
            # pieces of examples that each take every row: the prefix runs once per example
            x = array[lo : lo + piece]
            chunk = 1 if self._rows_singly else self._chunk_size(interventions, x.shape[0], numel)
            bound = rewrite.bind_input(x) if self._use_io_binding else None
            logits = []
            for start in range(0, m_total, chunk):
                rows = (
                    None
                    if interventions is None
                    else interventions.rows(start, min(start + chunk, m_total))
                )
                out, rec = rewrite.run(
                    x, rows, record if start == 0 else (), bound,
                    noise_rows=None if piece == b else (lo, b),
                )  # fmt: skip
                logits.append(out)
                for name, value in rec.items():
                    recorded[name].append(value)
            parts.append(np.concatenate(logits, axis=0))
        return RunOutput(
            np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0],
            {name: np.concatenate(v) for name, v in recorded.items()},
        )

    def record_elements(self, x: Any, sites: Sequence[str]) -> dict[str, np.ndarray]:
        """The clean, unreduced activations ``(B, *site shape)`` of ``sites`` for batch ``x``.

        The sites' tensors become extra outputs of a rewritten graph, as for recording,
        without the spatial mean.
        """
        array = as_input(x, self._input, self._input_dims, self._input_dtype)
        check_request(self._sites, None, sites)
        rewrite = self._session_for(frozenset(), frozenset(sites), elements=True)
        fixed, b = self._fixed_batch, array.shape[0]
        if fixed is None:
            return rewrite.run(array, None, sites, None)[1]
        parts: dict[str, list[np.ndarray]] = {name: [] for name in sites}
        for start in range(0, b, fixed):
            piece = array[start : start + fixed]
            real = len(piece)
            if real < fixed:
                piece = np.concatenate([piece, np.repeat(piece[-1:], fixed - real, axis=0)])
            for name, value in rewrite.run(piece, None, sites, None)[1].items():
                parts[name].append(value[:real])
        return {name: np.concatenate(values) for name, values in parts.items()}

    def unit_weight_l1(self, site: str) -> np.ndarray:
        """L1 norm of each unit's raw incoming filter, from the initializers of the producer.

        The producer is the Conv, Gemm or MatMul reached from the activation's input
        through element-wise ops (bias ``Add``, ``BatchNormalization``, ``Mul`` by a
        constant, ``Identity``; at a residual ``Add`` of two computed tensors, the one
        computed last, like the torch adapter's "last Linear/Conv called").  This is the
        paper's "L1-norm of the filter weights" (A.3): a BatchNormalization or per-unit
        ``Mul`` on the way is not included (see :meth:`unit_weight_l1_folded`).  Biases
        are not included.

        The dynamo exporter folds an eval-mode BatchNorm into the Conv before it and
        marks that Conv as coming from the BatchNorm module; the raw filter is then not
        in the model, and this raises :class:`~directionkit.errors.UnsupportedModelError`.
        (Other exporters that fold BatchNorm leave no such mark: their Conv weights are
        the folded ones, and are reported as they are.)
        """
        l1, from_batchnorm = weight_l1(self, site, folded=False)
        if from_batchnorm:
            raise UnsupportedModelError(
                f"The exporter folded a BatchNorm into the layer producing site {site!r}, so "
                "its raw filter is not in the model; unit_weight_l1_folded() gives the folded "
                "norm."
            )
        return l1

    def unit_weight_l1_folded(self, site: str) -> np.ndarray:
        """Like :meth:`unit_weight_l1`, with BatchNorm and per-unit ``Mul``/``Div`` folded in.

        ``|W[c]|_1 * |gamma[c] / sqrt(var[c] + eps)|``, as the torch adapter's
        ``unit_weight_l1_folded``; for a Conv into which the exporter already folded a
        BatchNorm, its weights as they are.
        """
        return weight_l1(self, site, folded=True)[0]

    def linear_chain(self) -> LinearChain | None:
        """The model as a chain of affine layers with ReLU sites, or None if it is not one.

        Recognised along the data path from the input: optional ``Cast``/``Flatten``/
        ``Reshape`` to ``(B, features)``, then affine layers (``Gemm``, or ``MatMul``
        with an optional ``Add`` of a constant bias) each followed by a ``Relu`` site,
        ending in an affine layer and optionally a ``Softmax`` (whose log is the
        adapter's output, so the chain's logits give the same accuracy and loss).
        The core then computes ablation curves and importance incrementally.  None for a
        binary classifier's single score (the chain would give its one column).
        """
        return None if self.output_kind in BINARY_KINDS else self._chain

    # -- sessions --------------------------------------------------------------------
    def _session_for(
        self,
        intervened: frozenset[str],
        record: frozenset[str],
        elements: bool = False,
        along: frozenset[str] = frozenset(),
    ) -> Rewrite:
        key = (intervened, record, along, elements)
        if key not in self._sessions:
            rewrite = Rewrite(self, intervened, record, elements, along)
            active = rewrite.session.get_providers()
            if "CUDAExecutionProvider" in self._providers and (
                "CUDAExecutionProvider" not in active
            ):
                warnings.warn(
                    "directionkit: the CUDA execution provider could not be used (no GPU, or "
                    "its libraries are missing); running on CPU (the result's attrs say so).",
                    DirectionKitWarning,
                    stacklevel=4,
                )
                self._providers = ["CPUExecutionProvider"]
            self._active_device = "cuda:0" if "CUDAExecutionProvider" in active else "cpu"
            self._sessions[key] = rewrite
            while len(self._sessions) > _max_sessions():  # the least recently used goes
                self._sessions.pop(next(iter(self._sessions)))
        else:
            self._sessions[key] = self._sessions.pop(key)  # most recently used last
        return self._sessions[key]

    @property
    def _use_io_binding(self) -> bool:
        if self._io_binding is not None:
            return self._io_binding
        return self._active_device.startswith("cuda")

    # -- memory: M rows x B examples are cut to fit memory_budget (prefix caching kept) --
    def _row_numel(self, rewrite: Rewrite | None, x: np.ndarray) -> int:
        """Site elements per example and row of the part of the graph that runs on M*B
        rows: from the expansion point on (counting the site just before it, for the
        expanded tensor), every site when the rows expand at the input or without
        interventions; for inputs like ``x`` (free dims are read from a run on it)."""
        names = list(self._sites)
        first = 0
        if rewrite is not None and rewrite.expand_at is not None and not rewrite.at_input:
            tensors = [self._site_info[n].tensor for n in names]
            if rewrite.expand_at in tensors:  # expanded at a site: from that site on
                first = tensors.index(rewrite.expand_at)
            else:  # at another tensor: from the site just before it, as its stand-in
                after = [i for i, n in enumerate(names)
                         if self._site_info[n].producer >= rewrite.expand_node]  # fmt: skip
                first = max(0, (after[0] if after else len(names)) - 1)
        dims = self.site_dims(x, names[first:])
        return max(1, sum(int(np.prod(dims[n])) for n in names[first:]))

    def site_dims(self, x: np.ndarray, names: Sequence[str]) -> dict[str, tuple[int, ...]]:
        """Each site's per-example shape for inputs like ``x``: from shape inference, or,
        for the dims it leaves free (an image size, a sequence length), from a clean run
        on one example of that input size (once per input size)."""
        dims: dict[str, tuple[int, ...]] = {}
        unknown = []
        for name in names:
            static = self._site_info[name].dims
            if all(d is not None for d in static):
                dims[name] = tuple(int(d) for d in static)  # type: ignore[arg-type]
            else:
                unknown.append(name)
        if unknown:
            key = tuple(int(d) for d in x.shape[1:])
            cache = self._dims_cache.setdefault(key, {})
            missing = [n for n in unknown if n not in cache]
            if missing:
                for name, value in self.record_elements(x[:1], missing).items():
                    cache[name] = tuple(int(d) for d in np.shape(value)[1:])
            dims.update({n: cache[n] for n in unknown})
        return dims

    def _example_piece(self, interventions: Interventions | None, batch: int, numel: int) -> int:
        """Examples per session run: all, unless the M rows of the whole batch overflow the
        budget; then pieces of examples that each take every row (cutting the rows instead
        would re-run the layers before the first intervened site for every chunk).  Noise
        is drawn for the whole batch, so noisy interventions keep the batch and cut rows."""
        if interventions is not None and interventions.has_noise:
            return batch
        m = 1 if interventions is None else interventions.n_interventions
        per_example = 4 * 3 * numel * m
        return max(1, min(batch, self.memory_budget // per_example))

    def _chunk_size(self, interventions: Interventions | None, batch: int, numel: int) -> int:
        if interventions is None:
            return 1
        per_row = 4 * batch * numel * 3
        return max(1, min(interventions.n_interventions, self.memory_budget // per_row))


def _checked_arguments(
    sites: Any, output: Any, inputs: Any, unit_axes: Any, output_kind: Any, device: Any
) -> tuple[dict[str, Any], dict[str, int], str | None]:
    """``(inputs, unit_axes, output_kind)`` as given to :class:`OnnxAdapter`, checked, with
    its other parameters that can be checked before the model is read."""
    if sites is not None and (isinstance(sites, str) or not all(isinstance(s, str) for s in sites)):
        raise InvalidParameterError(
            f"The 'sites' parameter of OnnxAdapter must be a sequence of site or tensor "
            f"names. Got {sites!r} instead."
        )
    if output is not None and (isinstance(output, bool) or not isinstance(output, str | int)):
        raise InvalidParameterError(
            "The 'output' parameter of OnnxAdapter must be the name or index of a graph "
            f"output (a callable works with torch models only). Got {output!r} instead."
        )
    if inputs is not None and (
        not isinstance(inputs, Mapping) or not all(isinstance(k, str) for k in inputs)
    ):
        raise InvalidParameterError(
            "The 'inputs' parameter of OnnxAdapter must map input names to values or to "
            "callables x -> value (an ONNX model's inputs are named; a callable returning "
            f"all of them works with torch models only). Got {type(inputs).__name__}."
        )
    extras: dict[str, Any] = dict(inputs or {})
    checked_axes = check_unit_axes(unit_axes, "OnnxAdapter")
    given_kind = check_output_kind(output_kind, "OnnxAdapter")
    if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
        raise InvalidParameterError(
            f"The 'device' parameter of OnnxAdapter must be 'cpu' or 'cuda'. "
            f"Got {device!r} instead."
        )
    return extras, checked_axes, given_kind


def _max_sessions() -> int:
    """:data:`directionkit.adapters.onnx.MAX_SESSIONS`, read from the package at each use
    (as before the split), so that setting it there takes effect."""
    limit: int = sys.modules[__name__.rpartition(".")[0]].MAX_SESSIONS
    return limit


def from_model(
    model: Any, sites: Sequence[str] | None, device: str | None, example_input: Any
) -> OnnxAdapter | None:
    """An :class:`OnnxAdapter` when ``model`` is ONNX (path, bytes, ModelProto), else None.

    Examples
    --------
    >>> from_model(object(), None, None, None) is None
    True
    """
    del example_input
    if isinstance(model, onnx.ModelProto | bytes | bytearray):
        return OnnxAdapter(model, sites=sites, device=device)
    if isinstance(model, str | os.PathLike) and Path(model).suffix.lower() == ".onnx":
        return OnnxAdapter(model, sites=sites, device=device)
    return None
