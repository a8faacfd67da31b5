"""The ONNX adapter: audit a model from its ``.onnx`` file alone, with onnxruntime.

The adapter never touches the caller's file or ``ModelProto``; it rewrites a copy.
For every set of intervened sites it builds (once, then caches) a graph in which each
intervened site tensor ``a`` is followed by::

    a' = Reshape(a, (M or 1, B, ...)) * scale + shift + noise  ->  Reshape(a', (M*B, ...))

``scale`` and ``shift`` are new graph inputs of shape ``(M, 1, C, 1, 1)`` for a conv
site (``(M, 1, U)`` for a dense one) and ``noise`` is ``noise_std * eps``, so one
``InferenceSession.run`` evaluates M interventions.  The batch grows from B to M*B
rows at the first intervened site; everything before it runs once per data batch
(prefix caching).  Where a tensor computed before that site is consumed after it
(a residual connection, or a shape computed from an early tensor), the rows are
expanded at the latest earlier tensor that everything after it depends on (in a
ResNet, the input of the block holding the site), so only the blocks from there on
run M times; failing that, at the model input.  Recorded sites become extra outputs, reduced
over space in the graph for conv sites.

Sites
-----
Outputs of activation nodes (:data:`ACTIVATION_OPS`) that lie on the path to the
model's output, excluding the activation that produces the output (a final
Softmax or Sigmoid): no Conv/Gemm/MatMul between it and the output.  A rank-4
activation is a conv site (unit = channel, axis 1); rank 2 and 3 have their units
on the last axis.  Names follow the PyTorch module paths when the graph carries
them, so a torch model and its export report the same site names:

* the dynamo exporter's ``pkg.torch.onnx.name_scopes`` metadata (an activation
  module decomposed into several nodes, e.g. GELU at low opsets, is one site: the
  output of its last node; a module called twice gives ``name`` and ``name#1``);
* the legacy exporter's node names: ``/3/relu/Relu`` is ``3.relu``, its second
  call ``/3/relu_1/Relu`` is ``3.relu#1``; ``/features/features.2/Relu`` is ``features.2``;
* otherwise the node's name, or its output tensor's name.

A site's :attr:`~directionkit.adapter.Site.layer` (counted by ``scope="last:K"``)
follows the torch adapter's rule where the dynamo exporter's class metadata allows:
the block owning the activation module (a module with its own forward, not the model
and not a Sequential/ModuleList/ModuleDict).  Without that metadata (legacy exports,
other producers) every site is a layer of its own.  A site's
:attr:`~directionkit.adapter.Site.shape` is its tensor's per-example shape when shape
inference fixes it.  Per-element ``fill`` templates are fed as the ``shift`` input,
``shift + (1 - scale) * fill`` of shape ``(M, 1, *element shape)``.

The output
----------
The float output of shape ``(B, C)``, or ``(B, C, 1, 1)`` as CNNs ending in a 1x1
convolution and global pooling give it (read as ``(B, C)``); ``output=`` picks one
when there are several.  When it holds probabilities (it comes out of a Softmax or
Sigmoid), the adapter returns their logarithm as the class scores, so accuracy is
unchanged and the core's cross-entropy is ``-log p[y]`` (for a Sigmoid's per-class
probabilities ``-log(s[y] / sum(s))``, see :data:`directionkit.adapter.OUTPUT_KINDS`); it
says so once in the log and in :attr:`OnnxAdapter.output_kind`.  scikit-learn models
converted by skl2onnx output a ``ZipMap`` (a sequence of dicts) by default; the adapter
then reads the probability tensor that feeds it.

Files from elsewhere
--------------------
What onnxruntime runs is audited: a model that fails ``onnx.checker`` (an old IR
version, say) gets a warning, not a refusal; one onnxruntime cannot load (a
custom-domain operator without its library) is an :class:`UnsupportedModelError`
naming the domain.  A batch axis fixed in the file (``torch.onnx.export`` without
dynamic shapes) is made symbolic in the private copy, batch sizes built into
``Reshape`` targets included, and kept only if the copy gives the original's scores
on a batch of another size and on each example alone; otherwise the adapter runs one
intervention per session run and warns, with the cost and how to re-export.
External data must lie inside the model file's folder: locations with ``..``,
absolute paths and symlinks that resolve outside it are refused.

Examples
--------
>>> import numpy as np
>>> from onnx import TensorProto, helper, numpy_helper
>>> w1 = numpy_helper.from_array(np.eye(2, 3, dtype=np.float32), "w1")
>>> w2 = numpy_helper.from_array(np.ones((3, 2), np.float32), "w2")
>>> graph = helper.make_graph(
...     [helper.make_node("MatMul", ["x", "w1"], ["h"]),
...      helper.make_node("Relu", ["h"], ["a"], name="act"),
...      helper.make_node("MatMul", ["a", "w2"], ["logits"])],
...     "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
...     [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])], [w1, w2])
>>> adapter = OnnxAdapter(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
>>> list(adapter.sites)
['act']
>>> iv = Interventions.zero_ablate(adapter.sites, {"act": [[True, False, False], [False] * 3]})
>>> adapter.run(np.ones((4, 2), np.float32), iv).logits[:, 0]
array([[1., 1.],
       [2., 2.]], dtype=float32)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from directionkit.adapter import (
    BINARY_KINDS,
    CPU_MEMORY_BUDGET,
    GPU_MEMORY_BUDGET,
    LOGARITHM_TAKEN,
    OUTPUT_KIND_NOTES,
    OUTPUT_KINDS,
    Interventions,
    LinearChain,
    RunOutput,
    Site,
    binary_columns,
    binary_kind,
    check_output_kind,
    check_request,
    check_unit_axes,
    check_unit_axes_named,
    given_unit_axis,
    guessed_unit_axis,
    probabilities_by_value,
)
from directionkit.adapters._onnx_axes import unit_axis
from directionkit.adapters._onnx_sites import (
    ACTIVATION_OPS,
    CLASSES,
    TORCH_ACTIVATIONS,
    find_sites,
    literal_list,
    metadata,
)
from directionkit.errors import (
    DirectionKitWarning,
    InvalidDataError,
    InvalidParameterError,
    SiteNotFoundError,
    UnsupportedModelError,
)
from directionkit.store import fingerprint

__all__ = ["ACTIVATION_OPS", "TORCH_ACTIVATIONS", "OnnxAdapter", "from_model"]

log = logging.getLogger(__name__)

_MIXING_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "MatMulInteger", "Einsum"})
_OUTPUT_ACTIVATIONS = frozenset({"Softmax", "LogSoftmax", "Sigmoid"})
_PREFIX = "directionkit__"
_MAX_EXPANSION_CANDIDATES = 64  # tensors tried, latest first, before expanding at the input
#: Rewritten sessions kept (least recently used dropped): one per set of intervened and
#: recorded sites, so per-unit importance over many sites would otherwise hold one each,
#: each with its memory arena at its peak (B8: 2.5 GB with every session, 0.6 GB with 2).
MAX_SESSIONS = 2
MIN_OPSET = 7
#: What onnxruntime raises when it cannot load or run a model (its own classes, not builtins).
_ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    cls for cls in vars(_ort_state).values() if isinstance(cls, type) and issubclass(cls, Exception)
)


class _ShapeLookup(Mapping[str, Any]):
    """Tensor name -> static shape (None where unknown), read from the inferred types."""

    def __init__(self, types: Mapping[str, onnx.TypeProto]) -> None:
        self._types = types

    def __getitem__(self, name: str) -> tuple[int | None, ...] | None:
        return _tensor_shape(self._types.get(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)


@dataclass(frozen=True)
class _SiteInfo:
    """Where a site lives in the graph."""

    tensor: str
    rank: int
    dims: tuple[int | None, ...]  # per-example dims (without the batch axis); None = unknown
    dtype: np.dtype[Any]
    producer: int  # index of the node that produces ``tensor``
    entry: str = ""  # the tensor the activation was applied to (its weights come before)


def _load(model: Any) -> onnx.ModelProto:
    """A private, fully loaded copy of ``model`` (path, bytes or ModelProto)."""
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        source = "the given ModelProto"
        base = None
    elif isinstance(model, bytes | bytearray | memoryview):
        try:
            copy = onnx.load_model_from_string(bytes(model))
        except Exception as err:  # protobuf raises its own DecodeError
            raise UnsupportedModelError(f"The given bytes are not an ONNX model: {err}") from err
        source, base = "the given bytes", None
    elif isinstance(model, str | os.PathLike):
        path = Path(model)
        if not path.is_file():
            raise UnsupportedModelError(f"No ONNX model at {str(path)!r}: no such file.")
        try:
            copy = onnx.load(str(path), load_external_data=False)
        except Exception as err:
            raise UnsupportedModelError(
                f"{str(path)!r} is not an ONNX model (or is truncated): {err}"
            ) from err
        source, base = repr(str(path)), path.parent
    else:
        raise UnsupportedModelError(
            "OnnxAdapter needs a path to an .onnx file, its bytes, or an onnx.ModelProto. "
            f"Got {type(model).__name__} instead."
        )
    if not copy.graph.node:
        raise UnsupportedModelError(f"{source} is not an ONNX model: its graph has no nodes.")
    external = [
        t
        for t in onnx.external_data_helper._get_all_tensors(copy)
        if onnx.external_data_helper.uses_external_data(t)
    ]
    if external and base is None:
        raise UnsupportedModelError(
            f"{source} refers to external data files; pass the path of the .onnx file so "
            "they can be found next to it."
        )
    if external:
        assert base is not None
        for tensor in external:
            _check_external_location(tensor, base, source)
        try:
            onnx.external_data_helper.load_external_data_for_model(copy, str(base))
        except (OSError, ValueError, onnx.checker.ValidationError) as err:
            raise UnsupportedModelError(
                f"The external data of {source} could not be read (it is looked for next to "
                f"the model file, e.g. 'model.onnx.data'): {err}"
            ) from err
    try:
        onnx.checker.check_model(copy)
    except onnx.checker.ValidationError as err:
        # onnxruntime is the judge of what runs: a model it loads is audited (the session
        # built next fails with a clear error otherwise), but the user hears of the defect
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        try:  # before the graph is read: a damaged tensor would fail there less clearly
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            ort.InferenceSession(_serialise(copy), options, providers=["CPUExecutionProvider"])
        except _ORT_ERRORS as ort_err:
            raise _not_runnable(copy.graph, ort_err, f"{source} fails onnx.checker ({first}) "
                                "and ") from ort_err  # fmt: skip
        log.warning(
            "%s fails onnx.checker (%s); auditing it anyway, as long as onnxruntime runs it.",
            source, first,
        )  # fmt: skip
    return copy


def _not_runnable(
    graph: onnx.GraphProto, err: BaseException, prefix: str = ""
) -> UnsupportedModelError:
    """The error for a model onnxruntime cannot load or run, with the likely reason."""
    custom = sorted({n.domain for n in graph.node} - {"", "ai.onnx", "ai.onnx.ml"})
    hint = (
        f"it uses operators of the custom domain(s) {custom}, which need their "
        "onnxruntime extension library"
        if custom
        else "the file may be damaged, or made by an exporter newer than this "
        f"onnxruntime ({ort.__version__})"
    )
    return UnsupportedModelError(
        f"{prefix}onnxruntime cannot run this model ({hint}): {str(err).strip()}"
    )


def _check_external_location(tensor: onnx.TensorProto, base: Path, source: str) -> None:
    """Refuse external data stored anywhere but inside the model file's folder.

    Checked here on resolved paths (``..``, absolute paths and symlinks pointing out of
    the folder), whatever the installed ``onnx`` loader checks, so that a model file
    cannot make the audit read other files of the machine.
    """
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    folder = base.resolve()
    try:
        resolved: Path | None = (folder / location).resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop
        resolved = None
    if (
        not location
        or Path(location).is_absolute()
        or resolved is None
        or not resolved.is_relative_to(folder)
    ):
        where = "cannot be resolved" if resolved is None else f"resolves to {str(resolved)!r}"
        raise UnsupportedModelError(
            f"{source} stores tensor {tensor.name!r} in {location!r}, which is not a file "
            f"inside the model's folder {str(folder)!r} (it {where}). External data must sit "
            "next to the model file; refused."
        )


def _duration(seconds: float) -> str:
    """``"3.2 h"``: a rough duration for a message."""
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _class_scores_shape(shape: Sequence[int | None] | None) -> bool:
    """``(batch, classes)``, or that followed by static singleton dims (``(N, C, 1, 1)``)."""
    return shape is not None and len(shape) >= 2 and all(d == 1 for d in shape[2:])


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Initializers and Constant-node values, by tensor name."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """The tensors a control-flow node's bodies read that they do not make themselves:
    outer-scope tensors, which the node depends on as much as on its inputs."""
    reads: set[str] = set()
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
        for graph in graphs:
            made = {i.name for i in graph.input} | {i.name for i in graph.initializer}
            for inner in graph.node:
                reads.update(t for t in (*inner.input, *_subgraph_reads(inner))
                             if t and t not in made)  # fmt: skip
                made.update(inner.output)
    return reads


def _rename_in_bodies(node: onnx.NodeProto, renames: Mapping[str, str]) -> None:
    """Make a control-flow node's bodies read the renamed (edited) outer tensors, where
    they do not make a tensor of that name themselves."""
    for attribute in node.attribute:
        graphs = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
        for graph in graphs:
            made = {i.name for i in graph.input} | {i.name for i in graph.initializer}
            for inner in graph.node:
                for i, tensor in enumerate(inner.input):
                    if tensor in renames and tensor not in made:
                        inner.input[i] = renames[tensor]
                _rename_in_bodies(inner, {k: v for k, v in renames.items() if k not in made})
                made.update(inner.output)


def _static_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors that depend on no graph input: initializers, constants, and what nodes
    compute from them alone (a bias reshaped to ``(1, C, 1, 1)``)."""
    inputs = {i.name for i in graph.input} - {init.name for init in graph.initializer}
    static = {init.name for init in graph.initializer}
    for node in graph.node:
        if all(t in static for t in node.input if t) and not (set(node.input) & inputs):
            static.update(node.output)
    return static


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    if model.ir_version < 4:  # IR 3 lists every initializer as an input; old files may not
        upgraded = onnx.ModelProto()
        upgraded.CopyFrom(model)
        upgraded.ir_version = 4  # the same graph, initializers read as constants
        model = upgraded
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # shape inference is a help, not a requirement
        inferred = model
    graph = inferred.graph
    types = {}
    for info in (*graph.value_info, *graph.input, *graph.output):
        types[info.name] = info.type
    for init in graph.initializer:
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
    return types


def _tensor_shape(tp: onnx.TypeProto | None) -> tuple[int | None, ...] | None:
    """Static dims (None where symbolic), or None when the rank is unknown."""
    if tp is None or not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    # a dim_value of -1 (paddle2onnx's free batch axis) or 0 is not a size: unknown
    return tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
        for d in tp.tensor_type.shape.dim
    )


def _np_dtype(tp: onnx.TypeProto | None) -> np.dtype[Any]:
    if tp is None or not tp.HasField("tensor_type"):
        return np.dtype(np.float32)
    return np.dtype(helper.tensor_dtype_to_np_dtype(tp.tensor_type.elem_type))


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
        if sites is not None and (
            isinstance(sites, str) or not all(isinstance(s, str) for s in sites)
        ):
            raise InvalidParameterError(
                f"The 'sites' parameter of OnnxAdapter must be a sequence of site or tensor "
                f"names. Got {sites!r} instead."
            )
        if output is not None and (
            isinstance(output, bool) or not isinstance(output, str | int)
        ):
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
        self._extras: dict[str, Any] = dict(inputs or {})
        self._unit_axes = check_unit_axes(unit_axes, "OnnxAdapter")
        self._given_kind = check_output_kind(output_kind, "OnnxAdapter")
        self.assumptions: list[str] = []
        self._kind_checked = False
        self._rows_singly = False  # one intervention per run (extra inputs hold the batch)
        self._dims_cache: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = {}
        if device not in (None, "cpu", "cuda") and not str(device).startswith("cuda:"):
            raise InvalidParameterError(
                f"The 'device' parameter of OnnxAdapter must be 'cpu' or 'cuda'. "
                f"Got {device!r} instead."
            )
        self._model = _load(model)
        self.identity = fingerprint(np.frombuffer(self._model.SerializeToString(), np.uint8))
        self._opset = _opset(self._model)
        if self._opset < MIN_OPSET:
            raise UnsupportedModelError(
                f"The model uses ONNX opset {self._opset}; OnnxAdapter supports opset "
                f"{MIN_OPSET} and later (convert it with onnx.version_converter)."
            )
        self._graph = self._model.graph
        self._types = _value_types(self._model)
        self._consts = _constants(self._graph)
        self._producers = {out: i for i, node in enumerate(self._graph.node) for out in node.output}
        self._static = _static_tensors(self._graph)
        self._input, self._input_dtype, self._input_dims = self._find_input()
        self.output_name, self.output_kind = self._find_output(output)
        if self._given_kind is not None:
            self.output_kind = self._given_kind
            self._kind_checked = True
        self._fixed_batch: int | None = self._input_dims[0]
        self._fixed_reason = ""
        fixed_run_seconds = self._free_batch_axis() if self._fixed_batch is not None else None
        self._flatten_scores()
        self._keep = self._ancestors([self.output_name])
        found = self._discover(required=sites is None)
        if sites is not None:
            found = self._requested_sites(sites, found)
        self._sites: dict[str, Site] = {
            name: dataclasses.replace(s, depth=depth)
            for depth, (name, s) in enumerate(found.items())
        }
        check_unit_axes_named(self._unit_axes, self._sites)
        #: the ``device`` asked for (None: CUDA when present); :attr:`device` is the one used
        self.device_asked = device
        self._providers = self._choose_providers(providers, device)
        self._options = ort.SessionOptions()
        # fatal only: the errors directionkit meets it reports itself (and some it expects:
        # a batch-holding input met by M*B rows, before going one row at a time)
        self._options.log_severity_level = 4
        # an arena keeps its peak for its session's life: few sessions are kept (B8)
        self._options.enable_cpu_mem_arena = bool(cpu_memory_arena)
        if not graph_optimization:
            self._options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.memory_budget = CPU_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        self._sessions: dict[tuple[Any, ...], _Rewrite] = {}
        if fixed_run_seconds is not None:
            self._warn_fixed_batch(fixed_run_seconds)
        self._active_device = "cpu"
        self._chain = self._find_chain()  # one walk along the graph
        self._io_binding = io_binding
        try:  # fail early, and learn the device
            self._session_for(frozenset(), frozenset())
        except _ORT_ERRORS as err:
            raise _not_runnable(self._graph, err) from err
        if memory_budget is None and self._active_device != "cpu":
            self.memory_budget = GPU_MEMORY_BUDGET

    # -- properties ---------------------------------------------------------------
    @property
    def sites(self) -> Mapping[str, Site]:
        """The sites, in topological (forward) order."""
        return self._sites

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
        array = self._as_input(x)
        check_request(self._sites, interventions, record)
        if self._fixed_batch is not None:
            out = self._run_fixed_batch(array, interventions, record)
        else:
            try:
                out = self._run_free(array, interventions, record)
            except _ORT_ERRORS:
                m = 1 if interventions is None else interventions.n_interventions
                if not self._batch_extras or self._rows_singly or m == 1:
                    raise
                # an input given by inputs= holds the batch, and M*B expanded rows do not
                # match it: one intervention per session run from now on
                log.info("The model's other inputs %s hold the batch: running one "
                         "intervention per session run.", sorted(self._batch_extras))  # fmt: skip
                self._rows_singly = True
                out = self._run_free(array, interventions, record)
        return self._checked_kind(out)

    def _checked_kind(self, out: RunOutput) -> RunOutput:
        """On the first run, scores that no softmax made but that hold probabilities by their
        values (every row non-negative and summing to one) are taken as such, with a warning,
        as the torch adapter does."""
        if self._kind_checked:
            return out
        self._kind_checked = True
        if out.logits.shape[-1] == 1:  # one score per example: a binary classifier
            raw = out.logits
            if self.output_kind in LOGARITHM_TAKEN:  # the first run took log(p): undo it
                raw = np.exp(raw)
            self._kind_checked = False  # refused below: ask again next time
            kind = binary_kind(raw, self.output_description,
                               sigmoid=self.output_kind == "sigmoid-probabilities")  # fmt: skip
            self._kind_checked = True
            self.output_kind = kind
            log.info("Output %r: %s.", self.output_name, OUTPUT_KIND_NOTES[kind])
            return RunOutput(binary_columns(raw, kind), out.activations)
        if self.output_kind != "logits":
            return out
        found = probabilities_by_value(
            out.logits.reshape(-1, out.logits.shape[-1]), self.output_description
        )
        if found is None:
            return out
        guess, note = found
        self.assumptions.append(note)
        warnings.warn(note, DirectionKitWarning, stacklevel=3)
        self.output_kind = guess
        if guess not in LOGARITHM_TAKEN:
            return out
        logits = np.log(np.maximum(out.logits.astype(np.float32), np.finfo(np.float32).tiny))
        return RunOutput(logits, out.activations)

    def _run_free(
        self, array: np.ndarray, interventions: Interventions | None, record: Sequence[str]
    ) -> RunOutput:
        """A run with a free batch axis: pieces of examples and chunks of rows that fit the
        memory budget (see :meth:`_example_piece` and :meth:`_chunk_size`)."""
        rewrite = self._session_for(
            frozenset(interventions.sites if interventions else ()), frozenset(record)
        )
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
        array = self._as_input(x)
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
        l1, from_batchnorm = self._weight_l1(site, folded=False)
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
        return self._weight_l1(site, folded=True)[0]

    def _weight_l1(self, site: str, folded: bool) -> tuple[np.ndarray, bool]:
        """The L1 norms, and whether the producer carries an exporter-folded BatchNorm."""
        if site not in self._sites:
            raise SiteNotFoundError(site, self._sites)
        info = self._site_info[site]
        n_units = self._sites[site].n_units
        factor = np.ones(n_units)
        nodes = self._graph.node
        tensor = info.entry
        producers = self._producers
        while True:
            index = producers.get(tensor)
            if index is None:
                break
            node = nodes[index]
            op = node.op_type
            if op in ("Conv", "Gemm", "MatMul"):
                classes = literal_list(metadata(node).get(CLASSES))
                from_batchnorm = len(classes) >= 2 and "BatchNorm" in classes[-2]
                l1 = self._producer_l1(node, site, n_units)
                return (factor * l1 if folded else l1), from_batchnorm
            if op == "BatchNormalization":
                gamma, var = self._consts.get(node.input[1]), self._consts.get(node.input[4])
                eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
                if gamma is None or var is None:
                    break
                factor = factor * np.abs(gamma / np.sqrt(var.astype(np.float64) + eps))
                tensor = node.input[0]
            elif op in ("Add", "Sub", "Mul", "Div") and len(node.input) == 2:
                # a bias may be computed from constants (paddle2onnx reshapes it first)
                data = [t for t in node.input if t not in self._static]
                const = [t for t in node.input if t in self._static]
                if len(data) == 2 and op == "Add":  # a residual sum: the branch computed last
                    tensor = max(data, key=lambda t: producers.get(t, -1))
                    continue
                if len(data) != 1 or len(const) != 1:
                    break
                if op in ("Mul", "Div"):
                    if const[0] not in self._consts:
                        break
                    value = np.asarray(self._consts[const[0]], np.float64)
                    per_unit = self._per_unit(value, n_units)
                    if per_unit is None:
                        break
                    factor = factor * (np.abs(per_unit) if op == "Mul" else 1 / np.abs(per_unit))
                tensor = data[0]
            elif op in ("Identity", "Cast", "Dropout"):
                tensor = node.input[0]
            elif op == "Reshape" and self._keeps_last_axis(node):
                tensor = node.input[0]  # (N*T, U) -> (N, T, U): a Linear on 3-d input
            else:
                break
        raise UnsupportedModelError(
            f"No Conv, Gemm or MatMul with constant weights produces site {site!r}; its "
            "incoming weights are unknown."
        )

    def _keeps_last_axis(self, node: onnx.NodeProto) -> bool:
        """Whether a Reshape keeps the last axis, of the same known length."""
        before = _tensor_shape(self._types.get(node.input[0]))
        after = _tensor_shape(self._types.get(node.output[0]))
        return bool(before and after and before[-1] is not None and before[-1] == after[-1])

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

    def _find_chain(self) -> LinearChain | None:
        nodes, consts = self._graph.node, self._consts
        consumers: dict[str, list[int]] = {}
        for index in sorted(self._keep):
            for tensor in nodes[index].input:
                consumers.setdefault(tensor, []).append(index)
        site_of = {info.tensor: name for name, info in self._site_info.items()}
        weights: list[np.ndarray] = []
        biases: list[np.ndarray] = []
        site_layers: dict[str, int] = {}
        tensor, flat = self._input, len(self._input_dims) == 2
        while tensor != self.output_name:
            users = [i for i in consumers.get(tensor, []) if nodes[i].op_type != "Shape"]
            if len(users) != 1:
                return None
            node = nodes[users[0]]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            op, out = node.op_type, node.output[0]
            if op in ("Cast", "Identity") or (op in ("Flatten", "Reshape") and not weights):
                flat = flat or len(_tensor_shape(self._types.get(out)) or ()) == 2
            elif op == "Gemm" and flat and node.input[1] in consts and not attrs.get("transA"):
                if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                    return None
                w = np.asarray(consts[node.input[1]], np.float64)
                weights.append(w.T if attrs.get("transB") else w)
                b = consts.get(node.input[2]) if len(node.input) > 2 else None
                n_out = weights[-1].shape[1]
                bias = np.zeros(n_out) if b is None else np.asarray(b, np.float64).reshape(-1)
                if bias.size not in (1, n_out):
                    return None
                biases.append(np.broadcast_to(bias, n_out).copy())
            elif op == "MatMul" and flat and node.input[0] == tensor and node.input[1] in consts:
                weights.append(np.asarray(consts[node.input[1]], np.float64))
                biases.append(np.zeros(weights[-1].shape[1]))
            elif op == "Add" and weights and len(biases[-1]) and not biases[-1].any():
                other = [t for t in node.input if t != tensor]
                if len(other) != 1 or other[0] not in consts:
                    return None
                b = np.asarray(consts[other[0]], np.float64).reshape(-1)
                if b.size not in (1, weights[-1].shape[1]):
                    return None
                biases[-1] = np.broadcast_to(b, weights[-1].shape[1]).copy()
            elif op == "Relu" and out in site_of and weights:
                site_layers[site_of[out]] = len(weights) - 1
            elif op == "Softmax" and out == self.output_name and weights:
                pass
            else:
                return None
            if weights and weights[-1].ndim != 2:
                return None
            tensor = out
        if not weights or not all(name in site_layers for name in self._sites):
            return None
        return LinearChain(tuple(weights), tuple(biases), site_layers)

    # -- discovery -------------------------------------------------------------------
    def _find_input(self) -> tuple[str, np.dtype[Any], tuple[int | None, ...]]:
        initializers = {init.name for init in self._graph.initializer}
        inputs = [i for i in self._graph.input if i.name not in initializers]
        names = [i.name for i in inputs]
        unknown = sorted(set(self._extras) - set(names))
        if unknown:
            raise InvalidParameterError(
                f"The 'inputs' parameter of OnnxAdapter names {unknown}, which are not inputs "
                f"of the model; its inputs are {names}."
            )
        data = [i for i in inputs if i.name not in self._extras]
        if len(data) != 1:
            others = {i.name: "..." for i in data[1:]}
            hint = (
                f"pass the others with inputs={others} (fixed values, or callables x -> "
                f"value made for each batch x); the data go to the one input not named "
                f"({data[0].name!r})"
                if len(data) > 1
                else f"leave the data input (one of {names}) out of inputs="
            )
            raise UnsupportedModelError(
                f"The model has {len(inputs)} inputs {names} and {len(data)} of them are not "
                f"given by inputs=; directionkit feeds the data to exactly one: {hint}."
            )
        shape = _tensor_shape(data[0].type)
        if not shape:
            raise UnsupportedModelError(
                f"The model input {data[0].name!r} has no known rank; OnnxAdapter needs a "
                "tensor input of shape (batch, ...)."
            )
        self._input_types = {i.name: _np_dtype(i.type) for i in inputs}
        # extra inputs that may hold the batch (not a scalar): their rows would not match
        # M*B expanded rows, so expansion happens after they are used, or rows go singly
        self._batch_extras = {
            name
            for name, value in self._extras.items()
            if callable(value) or np.ndim(value) > 0
        }
        return data[0].name, _np_dtype(data[0].type), shape

    def _extra_feeds(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The values of the other inputs for the data batch ``x``."""
        feeds = {}
        for name, value in self._extras.items():
            made = value(x) if callable(value) else value
            if hasattr(made, "detach") and hasattr(made, "cpu"):  # a torch tensor
                made = made.detach().cpu().numpy()
            try:
                feeds[name] = np.asarray(made, dtype=self._input_types[name])
            except (TypeError, ValueError) as err:
                raise InvalidDataError(
                    f"The value of model input {name!r} (from inputs=) must be an array of "
                    f"{self._input_types[name]}: {err}"
                ) from err
        return feeds

    def _find_output(self, requested: str | int | None) -> tuple[str, str]:
        outputs = {o.name: o for o in self._graph.output}
        if isinstance(requested, int):
            names = list(outputs)
            if not -len(names) <= requested < len(names):
                raise InvalidParameterError(
                    f"The 'output' parameter of OnnxAdapter is the index {requested}; the model "
                    f"has {len(names)} outputs {names}."
                )
            requested = names[requested]
        if requested is not None:
            if requested not in outputs:
                raise InvalidParameterError(
                    f"The 'output' parameter of OnnxAdapter must name a graph output, one of "
                    f"{sorted(outputs)}. Got {requested!r} instead."
                )
            candidates = [requested]
        else:
            candidates = [
                name
                for name, info in outputs.items()
                if np.issubdtype(_np_dtype(info.type), np.floating)
                and _class_scores_shape(_tensor_shape(info.type))
                and info.type.HasField("tensor_type")
            ]
            if not candidates:  # skl2onnx: probabilities go through a ZipMap
                candidates = [
                    n.input[0] for n in self._graph.node if n.op_type == "ZipMap" and n.input
                ]
        if not candidates:
            found = [(o.name, _tensor_shape(o.type)) for o in self._graph.output]
            raise UnsupportedModelError(
                "The model has no output of class scores: no float output of shape (batch, "
                f"classes), or (batch, classes, 1, 1), among {found}."
            )
        # the softmax (or sigmoid) of another candidate holds the same scores
        distinct = [c for c in candidates if self._probability_source(c) not in candidates]
        candidates = distinct or candidates
        if len(candidates) > 1:
            named = [c for c in candidates if c.lower() == "logits"]
            listed = ", ".join(f"{c!r} {_tensor_shape(self._types.get(c))}" for c in candidates)
            if len(named) != 1:
                raise UnsupportedModelError(
                    f"The model has several outputs that could be class scores ({listed}) and "
                    "none is named 'logits'; directionkit will not guess. Pass output= the "
                    "name or index of the one holding the class scores."
                )
            chosen = named[0]
            note = (
                f"The model has several outputs that could be class scores ({listed}); the "
                f"class scores are read from {chosen!r} by its name (pass output= to choose)."
            )
            self.assumptions.append(note)
            warnings.warn(note, DirectionKitWarning, stacklevel=4)
        else:
            chosen = candidates[0]
        tp = self._types.get(chosen)
        if (
            requested is not None
            and tp is not None
            and (
                not np.issubdtype(_np_dtype(tp), np.floating)
                or not _class_scores_shape(_tensor_shape(tp) or (0, 0))
            )
        ):
            raise UnsupportedModelError(
                f"Output {chosen!r} is not class scores: expected a float tensor of shape "
                f"(batch, classes), got {_np_dtype(tp)} of shape {_tensor_shape(tp)}."
            )
        op = self._probability_op(chosen)
        kind = "logits" if op is None else OUTPUT_KINDS[op]
        if op is not None:
            log.info("Output %r comes from %s: %s.", chosen, op, OUTPUT_KIND_NOTES[kind])
        self.output_description = f"output {chosen!r}"
        return chosen, kind

    def _free_batch_axis(self) -> float | None:
        """Make a fixed batch axis symbolic in the private copy, if that changes nothing.

        Exporters without dynamic shapes fix the batch (``torch.onnx.export`` gives the
        example's batch, often 1 or 2), which would force one intervention per session
        run.  The copy gets a symbolic batch axis and is kept only if it runs, on a
        batch of another size and on each example alone, and gives the same scores as
        the original model on its own fixed-size batches.  Returns the seconds one
        run of the original took when the batch stays fixed (for the warning), None when
        it was freed or the model does not run at all.
        """
        fixed = self._fixed_batch
        assert fixed is not None
        dims = self._input_dims[1:]
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures here are expected and reported by us
        cpu = ["CPUExecutionProvider"]
        reference = onnx.ModelProto()
        reference.CopyFrom(self._model)
        if self.output_name not in {o.name for o in reference.graph.output}:  # e.g. a ZipMap's
            elem = _np_dtype(self._types.get(self.output_name))
            reference.graph.output.append(
                helper.make_tensor_value_info(
                    self.output_name, helper.np_dtype_to_tensor_dtype(elem), None
                )
            )
        try:
            original = ort.InferenceSession(_serialise(reference), options, providers=cpu)
        except _ORT_ERRORS:
            return None  # the session built later reports why the model does not load
        if any(d is None for d in dims):
            self._fixed_reason = f"its other input dims {dims} are not all known"
            return self._time_run(original, None)
        candidate = onnx.ModelProto()
        candidate.CopyFrom(reference)
        symbol = f"{_PREFIX}batch"
        for value in (*candidate.graph.input, *candidate.graph.output):
            shape = value.type.tensor_type.shape if value.type.HasField("tensor_type") else None
            if (
                shape is not None
                and len(shape.dim)
                and (value.name == self._input or shape.dim[0].dim_value == fixed)
            ):
                shape.dim[0].Clear()
                shape.dim[0].dim_param = symbol
            if shape is not None and callable(self._extras.get(value.name)):
                # another input made per batch (a recurrent state (2, B, 128)): every dim
                # of the fixed batch's size may be its batch axis; the check below decides
                for dim in shape.dim:
                    if dim.HasField("dim_value") and dim.dim_value == fixed:
                        dim.Clear()
                        dim.dim_param = symbol
        del candidate.graph.value_info[:]  # shapes inferred with the fixed batch
        for index, node in enumerate(candidate.graph.node):
            # exporters bake the batch into Reshape targets (x.view(2, 64) becomes shape
            # [2, 64]): -1 infers it, or 0 copies the input's first dim where -1 is taken
            # (and allowzero is off); checked below with everything else
            allowzero = any(a.name == "allowzero" and a.i for a in node.attribute)
            reshape = node.op_type == "Reshape" and len(node.input) > 1
            target = self._consts.get(node.input[1]) if reshape else None
            if target is None or target.ndim != 1 or not target.size or int(target[0]) != fixed:
                continue
            free_dim = -1 if -1 not in target[1:] else 0 if not allowzero else None
            if free_dim is not None:
                freed = np.array(target, np.int64)
                freed[0] = free_dim
                name = f"{_PREFIX}free_batch_shape_{index}"
                candidate.graph.initializer.append(numpy_helper.from_array(freed, name))
                node.input[1] = name
        rng = np.random.default_rng(0)
        n = 3 if fixed != 3 else 2  # a size other than the fixed one
        x = rng.random((n, *dims)).astype(self._input_dtype)  # type: ignore[misc]
        out = self.output_name
        pieces = []
        try:
            for start in range(0, n, fixed):
                piece = x[start : start + fixed]
                padded = np.concatenate([piece, np.repeat(piece[-1:], fixed - len(piece), 0)])
                feeds = {self._input: padded, **self._extra_feeds(padded)}
                scores = original.run([out], feeds)[0]
                pieces.append(np.asarray(scores)[: len(piece)])
        except _ORT_ERRORS:
            return None  # the model fails on such input; running it says why
        want = np.concatenate(pieces)
        try:
            free = ort.InferenceSession(_serialise(candidate), options, providers=cpu)
            got = [np.asarray(free.run([out], {self._input: x, **self._extra_feeds(x)})[0])]
            got += [
                np.asarray(free.run([out], {self._input: one, **self._extra_feeds(one)})[0])
                for one in (x[i : i + 1] for i in range(n))
            ]
        except _ORT_ERRORS as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            self._fixed_reason = f"with a free batch axis it fails: {first[:300]}"
            return self._time_run(original, x)
        same = got[0].shape == want.shape and np.allclose(got[0], want, rtol=1e-4, atol=1e-5)
        same = same and all(
            g.shape == want[i : i + 1].shape
            and np.allclose(g, want[i : i + 1], rtol=1e-4, atol=1e-5)
            for i, g in enumerate(got[1:])
        )
        if not same:
            self._fixed_reason = (
                "with a free batch axis its outputs differ from those of its fixed-size "
                "batches (the graph mixes examples, or has the batch size built in)"
            )
            return self._time_run(original, x)
        self._model = candidate
        self._graph = candidate.graph
        self._types = _value_types(candidate)
        self._static = _static_tensors(candidate.graph)
        self._input_dims = (None, *dims)
        self._fixed_batch = None
        log.info("The model's input %r had a fixed batch size of %d; it runs with a free "
                 "batch axis (checked against the original).", self._input, fixed)  # fmt: skip
        return None

    def _time_run(self, session: Any, x: np.ndarray | None) -> float:
        """Seconds one run of the original (fixed-batch) session takes, 0 if it cannot run."""
        if x is None:
            return 0.0
        fixed = self._fixed_batch
        assert fixed is not None
        piece = np.resize(x, (fixed, *x.shape[1:])).astype(x.dtype)
        start = time.perf_counter()
        session.run([self.output_name], {self._input: piece, **self._extra_feeds(piece)})
        return time.perf_counter() - start

    def _warn_fixed_batch(self, seconds: float) -> None:
        fixed = self._fixed_batch
        assert fixed is not None
        examples = 10_000
        interventions = 10 * 21 + sum(s.n_units for s in self._sites.values())
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
            self._input, fixed, self._fixed_reason, fixed, estimate,
        )  # fmt: skip

    def _flatten_scores(self) -> None:
        """Read ``(B, C, 1, ..., 1)`` class scores (a 1x1-conv head) as ``(B, C)``.

        A ``Flatten`` appended to the private copy gives the output the shape every
        consumer expects; probabilities stay probabilities (Flatten is looked through).
        """
        shape = _tensor_shape(self._types.get(self.output_name))
        if shape is None or len(shape) <= 2:
            return
        flat = f"{_PREFIX}scores"
        self._graph.node.append(helper.make_node("Flatten", [self.output_name], [flat], axis=1))
        elem = self._types[self.output_name].tensor_type.elem_type
        info = helper.make_tensor_value_info(flat, elem, list(shape[:2]))
        self._graph.output.append(info)
        self._types[flat] = info.type
        self._producers[flat] = len(self._graph.node) - 1
        log.info("Output %r has shape %s; reading it as (batch, classes).", self.output_name,
                 shape)  # fmt: skip
        self.output_name = flat

    def _probability_op(self, tensor: str) -> str | None:
        """The Softmax, LogSoftmax or Sigmoid that ``tensor`` comes straight out of, if any."""
        found = self._probability_node(tensor)
        return None if found is None else str(found.op_type)

    def _probability_source(self, tensor: str) -> str | None:
        """The tensor the Softmax (LogSoftmax, Sigmoid) producing ``tensor`` was applied to."""
        found = self._probability_node(tensor)
        return None if found is None else str(found.input[0])

    def _probability_node(self, tensor: str) -> onnx.NodeProto | None:
        nodes, producers = self._graph.node, self._producers
        seen = 0
        while tensor in producers and seen < 16:
            node = nodes[producers[tensor]]
            if node.op_type in ("Softmax", "LogSoftmax", "Sigmoid"):
                return node
            if node.op_type not in ("Identity", "Cast", "Reshape", "Flatten", "Squeeze"):
                return None
            tensor, seen = node.input[0], seen + 1
        return None

    def _ancestors(self, tensors: Iterable[str]) -> set[int]:
        """Indices of the nodes that ``tensors`` depend on."""
        producers = self._producers
        needed: set[int] = set()
        stack = [producers[t] for t in tensors if t in producers]
        while stack:
            index = stack.pop()
            if index in needed:
                continue
            needed.add(index)
            node = self._graph.node[index]
            # a control-flow node (If, Loop, Scan) also reads outer tensors inside its bodies
            inputs = [*node.input, *_subgraph_reads(node)]
            stack.extend(producers[t] for t in inputs if t in producers)
        return needed

    def _near_output(self) -> set[str]:
        """Tensors from which the output is reached without a Conv/Gemm/MatMul."""
        near = {self.output_name}
        for node in reversed(self._graph.node):
            if node.op_type not in _MIXING_OPS and any(o in near for o in node.output):
                near.update(t for t in node.input if t not in self._static)
        return near

    def _discover(self, required: bool = True) -> dict[str, Site]:
        """The hidden activation sites (see :mod:`directionkit.adapters._onnx_sites`)."""
        nodes = self._graph.node
        near = self._near_output()
        self._site_info: dict[str, _SiteInfo] = {}
        self._site_ops: dict[str, str] = {}
        sites: dict[str, Site] = {}
        for name, where in find_sites(nodes, self._keep, self._consts).items():
            if where.tensor in near:
                continue  # the output's own activation (a final Softmax/Sigmoid, class maps)
            site = self._site_of(
                name, where.tensor, where.node, where.layer, len(sites), where.entry
            )
            if site is not None:
                sites[name] = site
                self._site_ops[name] = where.op
        if not sites and required:
            ops = sorted({n.op_type for i, n in enumerate(nodes) if i in self._keep})
            inside = [n.op_type for n in nodes if n.op_type in ("If", "Loop", "Scan")]
            control = (
                f" Its {sorted(set(inside))} nodes hold subgraphs, whose activations "
                "directionkit cannot reach." if inside else ""
            )
            raise UnsupportedModelError(
                "The model has no hidden activation to use as a site: no node of type "
                f"{', '.join(sorted(ACTIVATION_OPS))} (nor a torch activation module or "
                f"function) before its last mixing layer. Its node types: {', '.join(ops)}."
                f"{control} Name tensors to use as sites with sites=[...]."
            )
        return sites

    def _site_of(
        self, name: str, tensor: str, index: int, layer: str | None, depth: int, entry: str = ""
    ) -> Site | None:
        """The site for ``tensor`` (produced by node ``index``), or None when it is not a
        per-example activation of known rank."""
        tp = self._types.get(tensor)
        shape = _tensor_shape(tp)
        if shape is None or len(shape) < 2:
            return None
        dims = shape[1:]
        axis, source, channels = self._unit_axis(name, tensor, shape)
        n_units = dims[axis]
        if n_units is None:
            raise UnsupportedModelError(
                f"The number of units of site {name!r} (tensor {tensor!r}, shape {shape}, "
                f"units on axis {axis + 1}) is not known from shape inference."
            )
        kind = "conv" if channels or len(dims) >= 3 else "dense"
        known = tuple(int(d) for d in dims if d is not None)
        self._site_info[name] = _SiteInfo(
            tensor, len(shape), dims, _np_dtype(tp), index,
            entry or self._graph.node[index].input[0],
        )  # fmt: skip
        return Site(
            name, int(n_units), kind, depth, layer, known if len(known) == len(dims) else None,
            axis, source,
        )  # fmt: skip

    def _unit_axis(
        self, name: str, tensor: str, shape: tuple[int | None, ...]
    ) -> tuple[int, str, bool]:
        """``(axis of one example's activation, what fixed it, made by a convolution)``."""
        rank = len(shape) - 1
        given = given_unit_axis(self._unit_axes, name, shape[1:])
        if given is not None:
            return given, "given", False
        shapes = _ShapeLookup(self._types)
        evidence = unit_axis(
            tensor, shape, self._graph.node, self._producers, self._static, shapes
        )
        if rank == 1:
            return 0, evidence.op if evidence is not None else "rank", False
        if evidence is not None and evidence.axis >= 1:
            return evidence.axis - 1, evidence.op, evidence.channels
        default, note = guessed_unit_axis(name, shape[1:])
        self.assumptions.append(note)
        warnings.warn(note, DirectionKitWarning, stacklevel=5)
        return default, "guess", rank >= 3

    def _requested_sites(self, sites: Sequence[str], found: dict[str, Site]) -> dict[str, Site]:
        """The named sites: found ones, or any tensor of the graph by its name."""
        chosen: dict[str, Site] = {}
        for name in sites:
            if name in found:
                chosen[name] = found[name]
                continue
            index = self._producers.get(name)
            site = None if index is None else self._site_of(name, name, index, None, 0)
            if site is None:
                error = SiteNotFoundError(name, found)
                error.args = (
                    f"{error.args[0][:-1]}; or any tensor of the graph holding a per-example "
                    "activation of known rank (a node output).",
                )
                raise error
            self._site_ops[name] = self._graph.node[index].op_type  # type: ignore[index]
            chosen[name] = site
        # forward (graph) order, as found sites are
        return dict(sorted(chosen.items(), key=lambda item: self._site_info[item[0]].producer))

    # -- sessions --------------------------------------------------------------------
    def _choose_providers(self, providers: Sequence[str] | None, device: str | None) -> list[str]:
        available = ort.get_available_providers()
        if providers is not None:
            unknown = [p for p in providers if p not in available]
            if unknown:
                raise InvalidParameterError(
                    f"The 'providers' parameter of OnnxAdapter names providers this "
                    f"onnxruntime does not have: {unknown}. Available: {available}."
                )
            return list(providers)
        wants_cuda = device is not None and device.startswith("cuda")
        if "CUDAExecutionProvider" in available and (device is None or wants_cuda):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if wants_cuda:
            warnings.warn(
                f"directionkit: device={device!r} was asked for, but this onnxruntime has no "
                "CUDA execution provider (install the onnx-gpu extra); running on CPU (the "
                "result's attrs say so: device, device_note).",
                DirectionKitWarning,
                stacklevel=4,
            )
        return ["CPUExecutionProvider"]

    def _session_for(
        self, intervened: frozenset[str], record: frozenset[str], elements: bool = False
    ) -> _Rewrite:
        key = (intervened, record) if not elements else (intervened, record, "elements")
        if key not in self._sessions:
            rewrite = _Rewrite(self, intervened, record, elements)
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
            while len(self._sessions) > MAX_SESSIONS:  # the least recently used goes
                self._sessions.pop(next(iter(self._sessions)))
        else:
            self._sessions[key] = self._sessions.pop(key)  # most recently used last
        return self._sessions[key]

    @property
    def _use_io_binding(self) -> bool:
        if self._io_binding is not None:
            return self._io_binding
        return self._active_device.startswith("cuda")

    # -- running ---------------------------------------------------------------------
    def _as_input(self, x: Any) -> np.ndarray:
        if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
            x = x.detach().cpu().numpy()
        try:
            array = np.asarray(x)
        except (TypeError, ValueError) as err:
            raise InvalidDataError(f"Model input must be array-like: {err}") from err
        if array.ndim == 0 or array.shape[0] == 0:
            raise InvalidDataError(
                f"Model input must have a non-empty batch axis. Got shape {array.shape}."
            )
        expected = self._input_dims[1:]
        if array.ndim != len(self._input_dims) or any(
            e is not None and e != g for e, g in zip(expected, array.shape[1:], strict=True)
        ):
            dims = ", ".join("?" if d is None else str(d) for d in expected)
            raise InvalidDataError(
                f"Model input of shape {array.shape} does not fit the model: its input "
                f"{self._input!r} has shape (batch, {dims})."
            )
        if array.dtype != self._input_dtype:
            if not np.can_cast(array.dtype, self._input_dtype, "same_kind") and not (
                np.issubdtype(array.dtype, np.integer)
                and np.issubdtype(self._input_dtype, np.floating)
            ):
                raise InvalidDataError(
                    f"Model input has dtype {array.dtype}; the model expects {self._input_dtype}."
                )
            array = array.astype(self._input_dtype)
        return np.ascontiguousarray(array)

    # -- memory: M rows x B examples are cut to fit memory_budget (prefix caching kept) --
    def _row_numel(self, rewrite: _Rewrite | None, x: np.ndarray) -> int:
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

    def _run_fixed_batch(
        self, x: np.ndarray, interventions: Interventions | None, record: Sequence[str]
    ) -> RunOutput:
        """One intervention, and ``fixed`` examples (padded), per session run."""
        fixed = self._fixed_batch
        assert fixed is not None
        rewrite = self._session_for(
            frozenset(interventions.sites if interventions else ()), frozenset(record)
        )
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

    # -- weights ---------------------------------------------------------------------
    @staticmethod
    def _per_unit(value: np.ndarray, n_units: int) -> np.ndarray | None:
        if value.size == 1:
            return np.full(n_units, float(value.reshape(())))
        squeezed = value.reshape(-1)
        return squeezed if squeezed.size == n_units else None

    def _producer_l1(self, node: onnx.NodeProto, site: str, n_units: int) -> np.ndarray:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            weight = self._consts.get(node.input[1])
            axis = 0
        elif node.op_type == "Gemm":
            weight = self._consts.get(node.input[1])
            axis = 0 if attrs.get("transB", 0) else 1
        else:  # MatMul: x @ W, W of shape (in, out)
            weight = self._consts.get(node.input[1])
            axis = weight.ndim - 1 if weight is not None else 0
        if weight is None:
            raise UnsupportedModelError(
                f"The {node.op_type} producing site {site!r} has no constant weights."
            )
        w = np.moveaxis(np.abs(np.asarray(weight, np.float64)), axis, 0)
        l1 = w.reshape(w.shape[0], -1).sum(axis=1)
        if l1.shape[0] != n_units:
            raise UnsupportedModelError(
                f"The {node.op_type} producing site {site!r} has {l1.shape[0]} outputs but "
                f"the site has {n_units} units."
            )
        return l1


class _Rewrite:
    """One rewritten copy of the graph, for a set of intervened and recorded sites."""

    def __init__(
        self,
        adapter: OnnxAdapter,
        intervened: frozenset[str],
        record: frozenset[str],
        elements: bool = False,
    ) -> None:
        self.adapter = adapter
        model = onnx.ModelProto()
        model.CopyFrom(adapter._model)
        graph = model.graph
        self.sites = [n for n in adapter.sites if n in intervened]  # forward order
        self.record = sorted(record, key=list(adapter.sites).index)
        info = adapter._site_info
        self.fixed = adapter._fixed_batch is not None
        #: the tensor at which B rows become M*B: the first intervened site where the graph
        #: allows, else the latest tensor before it that every later computation depends
        #: on (e.g. the input of a residual block), else the model input; None: no expansion
        self.expand_at: str | None = None
        expand_rank = len(adapter._input_dims)
        self.expand_node = -1  # the node producing expand_at (-1: the model input)
        if self.sites and not self.fixed:
            self.expand_at, self.expand_node, expand_rank = self._expansion_point(
                info[self.sites[0]].tensor, info[self.sites[0]].producer
            )
        new_nodes: dict[int, list[onnx.NodeProto]] = {}  # insert after node index
        renames: dict[str, str] = {}
        outputs: list[onnx.ValueInfoProto] = []
        self.inputs: dict[str, tuple[str, str, str]] = {}
        opset = adapter._opset
        for position, name in enumerate(self.sites):
            site, where = info[name], info[name].producer
            key = f"{_PREFIX}{position}"
            scale, shift, noise = f"{key}_scale", f"{key}_shift", f"{key}_noise"
            self.inputs[name] = (scale, shift, noise)
            for tensor in (scale, shift, noise):
                graph.input.append(
                    helper.make_tensor_value_info(
                        tensor, helper.np_dtype_to_tensor_dtype(site.dtype), None
                    )
                )
            expand = position == 0 and self.expand_at == site.tensor
            nodes, edited = _edit_nodes(key, site.tensor, site.rank, scale, shift, noise, expand)
            new_nodes.setdefault(where, []).extend(nodes)
            renames[site.tensor] = edited
        if self.expand_at is not None and self.expand_at != info[self.sites[0]].tensor:
            nodes, tiled = _tile_nodes(
                f"{_PREFIX}expand", self.expand_at, expand_rank, self.inputs[self.sites[0]][0]
            )
            new_nodes.setdefault(self.expand_node, []).extend(nodes)
            renames[self.expand_at] = tiled
        for name in self.record:
            site = info[name]
            tensor = site.tensor
            if site.rank > 2 and not elements:  # else unreduced, for record_elements
                # the mean over the position axes (space, tokens): (B, n_units) is left
                axes = [1 + a for a in adapter.sites[name].position_axes(site.rank - 1)]
                reduced = f"{_PREFIX}rec_{len(outputs)}"
                new_nodes.setdefault(site.producer, []).extend(
                    _reduce_mean_nodes(reduced, tensor, axes, opset)
                )
                tensor = reduced
            outputs.append(
                helper.make_tensor_value_info(
                    tensor, helper.np_dtype_to_tensor_dtype(site.dtype), None
                )
            )
        keep = adapter._ancestors([adapter.output_name, *(info[n].tensor for n in self.record)])
        ordered: list[onnx.NodeProto] = list(new_nodes.get(-1, []))
        for index, original in enumerate(graph.node):
            if index not in keep:
                continue  # pruned: other outputs, ai.onnx.ml post-processing, ...
            node = onnx.NodeProto()
            node.CopyFrom(original)
            for i, tensor in enumerate(node.input):  # consumers read the edited tensors
                if tensor in renames:
                    node.input[i] = renames[tensor]
            _rename_in_bodies(node, renames)  # ... inside an If/Loop's bodies too
            ordered.append(node)
            ordered.extend(new_nodes.get(index, []))
        del graph.node[:]
        graph.node.extend(ordered)
        del graph.value_info[:]
        scores = helper.make_tensor_value_info(
            adapter.output_name,
            helper.np_dtype_to_tensor_dtype(_np_dtype(adapter._types.get(adapter.output_name))),
            None,
        )
        del graph.output[:]
        graph.output.extend([scores, *outputs])
        self.record_outputs = [o.name for o in outputs]
        self.session = ort.InferenceSession(
            _serialise(model), adapter._options, providers=adapter._providers
        )

    @property
    def at_input(self) -> bool:
        """Whether the rows are expanded at the model input (no prefix is shared)."""
        return self.expand_at == self.adapter._input

    def _expansion_point(self, site: str, site_node: int) -> tuple[str, int, int]:
        """``(tensor, producing node, rank)`` where B rows can become M*B (see ``expand_at``).

        A tensor qualifies when no node computed after it reads both a tensor that
        depends on it and a batch-carrying tensor that does not (a residual ``Add``, a
        ``Reshape`` to an early tensor's shape): those two would have M*B and B rows.
        """
        adapter = self.adapter
        nodes = adapter._graph.node
        # tensors that depend on the model input, or on another input holding the batch
        data: set[str] = {adapter._input, *adapter._batch_extras}
        for node in nodes:
            if any(t in data for t in (*node.input, *_subgraph_reads(node))):
                data.update(node.output)
        earlier = [
            (nodes[i].output[0], i)
            for i in range(site_node - 1, -1, -1)
            if i in adapter._keep and nodes[i].output[0] in data
        ]
        candidates = [(site, site_node), *earlier[:_MAX_EXPANSION_CANDIDATES]]
        for tensor, index in candidates:
            rank = len(_tensor_shape(adapter._types.get(tensor)) or ())
            if rank >= 1 and not self._conflicts(tensor, index, data):
                return tensor, index, rank
        return adapter._input, -1, len(adapter._input_dims)

    def _conflicts(self, tensor: str, producer: int, data: set[str]) -> bool:
        nodes = self.adapter._graph.node
        after = {tensor}
        for node in nodes[producer + 1 :]:
            reads = [*node.input, *_subgraph_reads(node)]
            if any(t in after for t in reads):
                if any(t in data and t not in after for t in reads):
                    return True
                after.update(node.output)
        return False

    def bind_input(self, x: np.ndarray) -> Any:
        """The data batch as an OrtValue on the session's device (uploaded once)."""
        device = "cuda" if self.adapter.device.startswith("cuda") else "cpu"
        return ort.OrtValue.ortvalue_from_numpy(x, device, 0)

    def run(
        self,
        x: np.ndarray,
        interventions: Interventions | None,
        record: Sequence[str],
        bound: Any,
        noise_rows: tuple[int, int] | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One session run: logits ``(M, B, C)`` and recorded ``(B, n_units)``.

        ``noise_rows=(start, total)``: ``x`` is rows ``start..`` of a batch of ``total``
        (a fixed-size piece), so the noise drawn is that batch's, as other adapters draw it.
        """
        adapter = self.adapter
        b = x.shape[0]
        m = 1 if interventions is None else interventions.n_interventions
        feeds: dict[str, np.ndarray] = adapter._extra_feeds(x)
        if interventions is not None:  # the rewrite edits exactly the sites it names
            for name in self.sites:
                feeds.update(self._feeds(name, interventions, x, noise_rows))
        fetch = [adapter.output_name, *(self.record_outputs if record else ())]
        if bound is not None:
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(adapter._input, bound)
            for name, value in feeds.items():
                binding.bind_cpu_input(name, value)
            for name in fetch:
                binding.bind_output(name)
            self.session.run_with_iobinding(binding)
            values = binding.copy_outputs_to_cpu()
        else:
            values = self.session.run(fetch, {adapter._input: x, **feeds})
        scores = np.asarray(values[0])
        if scores.ndim != 2 or scores.shape[0] not in (b, m * b):
            raise UnsupportedModelError(
                f"Output {adapter.output_name!r} is not class scores of shape (batch, "
                f"classes): got shape {scores.shape} for a batch of {b}."
            )
        if adapter.output_kind in BINARY_KINDS:
            scores = binary_columns(scores, adapter.output_kind)
        elif adapter.output_kind in LOGARITHM_TAKEN:
            scores = np.log(np.maximum(scores.astype(np.float32), np.finfo(np.float32).tiny))
        if scores.shape[0] == b and m > 1:
            scores = np.broadcast_to(scores, (m, *scores.shape))
        recorded = {}
        if record:
            for name, value in zip(self.record, values[1:], strict=True):
                recorded[name] = np.asarray(value[:b], dtype=np.float32)
        return scores.reshape(m, b, scores.shape[-1]), recorded

    def _feeds(
        self,
        name: str,
        iv: Interventions,
        x: np.ndarray,
        noise_rows: tuple[int, int] | None,
    ) -> dict[str, np.ndarray]:
        adapter = self.adapter
        b = x.shape[0]
        info = adapter._site_info[name]
        site = adapter.sites[name]
        scale_name, shift_name, noise_name = self.inputs[name]
        dtype = info.dtype
        m = iv.n_interventions
        shape = [m] + [1] * info.rank
        shape[2 + site.unit_axis_in(info.rank - 1)] = site.n_units
        scale = np.asarray(iv.scale[name], dtype).reshape(shape)
        if name in iv.fill:
            # shift + (1 - scale) * fill, one value per element: (M, 1, *element shape)
            dims = info.dims
            given = iv.fill[name].shape
            if len(dims) != len(given) or any(
                d is not None and d != t for d, t in zip(dims, given, strict=True)
            ):
                raise InvalidDataError(
                    f"The 'fill' template of site {name!r} has shape {iv.fill[name].shape}; the "
                    f"site's tensor has shape (batch, {', '.join(map(str, dims))})."
                )
            shift = iv.shift_with_fill(site, iv.fill[name].shape).astype(dtype)
        else:
            shift = np.asarray(iv.shift[name], dtype).reshape(shape)
        noise_std = np.asarray(iv.noise_std[name])
        if np.any(noise_std != 0):
            dims = adapter.site_dims(x, [name])[name]
            # a piece of a larger batch draws that batch's noise and keeps its own rows
            start, total = noise_rows or (0, b)
            eps = np.stack(
                [iv.standard_normal(name, r, (total, *dims))[start : start + b] for r in range(m)]
            )
            if eps.shape[1] < b:  # the padded tail of a fixed-size batch
                eps = np.concatenate([eps, np.zeros((m, b - eps.shape[1], *dims), eps.dtype)], 1)
            noise = (eps * noise_std.astype(np.float32).reshape(shape)).astype(dtype)
        else:
            noise = np.zeros([1] * (info.rank + 1), dtype)
        return {scale_name: scale, shift_name: shift, noise_name: noise}


def _const(name: str, values: Sequence[int]) -> onnx.NodeProto:
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=numpy_helper.from_array(np.asarray(values, np.int64), name),
    )


def _edit_nodes(
    key: str, tensor: str, rank: int, scale: str, shift: str, noise: str, expand: bool
) -> tuple[list[onnx.NodeProto], str]:
    """Nodes computing ``(a grouped by M) * scale + shift + noise``, flattened back."""
    rest = list(range(1, rank))
    nodes = [
        helper.make_node("Shape", [tensor], [f"{key}_shape"]),
        _const(f"{key}_rest_idx", rest),
        helper.make_node("Gather", [f"{key}_shape", f"{key}_rest_idx"], [f"{key}_rest"], axis=0),
        _const(f"{key}_minus1", [-1]),
    ]
    if expand:  # (B, ...) -> (1, B, ...)
        nodes.append(_const(f"{key}_lead", [1]))
    else:  # (M*B, ...) -> (M, B, ...), M from the scale input
        nodes += [
            helper.make_node("Shape", [scale], [f"{key}_scale_shape"]),
            _const(f"{key}_zero", [0]),
            helper.make_node(
                "Gather", [f"{key}_scale_shape", f"{key}_zero"], [f"{key}_lead"], axis=0
            ),
        ]
    nodes += [
        helper.make_node(
            "Concat", [f"{key}_lead", f"{key}_minus1", f"{key}_rest"], [f"{key}_grouped_shape"],
            axis=0,
        ),
        helper.make_node("Concat", [f"{key}_minus1", f"{key}_rest"], [f"{key}_flat_shape"], axis=0),
        helper.make_node("Reshape", [tensor, f"{key}_grouped_shape"], [f"{key}_grouped"]),
        helper.make_node("Mul", [f"{key}_grouped", scale], [f"{key}_scaled"]),
        helper.make_node("Add", [f"{key}_scaled", shift], [f"{key}_shifted"]),
        helper.make_node("Add", [f"{key}_shifted", noise], [f"{key}_noisy"]),
        helper.make_node("Reshape", [f"{key}_noisy", f"{key}_flat_shape"], [f"{key}_edited"]),
    ]  # fmt: skip
    return nodes, f"{key}_edited"


def _tile_nodes(key: str, tensor: str, rank: int, scale: str) -> tuple[list[onnx.NodeProto], str]:
    """Nodes repeating the model input M times along the batch axis, M from ``scale``."""
    nodes = [
        helper.make_node("Shape", [tensor], [f"{key}_shape"]),
        _const(f"{key}_rest_idx", list(range(1, rank))),
        helper.make_node("Gather", [f"{key}_shape", f"{key}_rest_idx"], [f"{key}_rest"], axis=0),
        _const(f"{key}_one", [1]),
        _const(f"{key}_minus1", [-1]),
        _const(f"{key}_ones", [1] * rank),
        helper.make_node("Concat", [f"{key}_one", f"{key}_shape"], [f"{key}_unsq_shape"], axis=0),
        helper.make_node("Reshape", [tensor, f"{key}_unsq_shape"], [f"{key}_unsq"]),
        helper.make_node("Shape", [scale], [f"{key}_scale_shape"]),
        _const(f"{key}_zero", [0]),
        helper.make_node("Gather", [f"{key}_scale_shape", f"{key}_zero"], [f"{key}_m"], axis=0),
        helper.make_node("Concat", [f"{key}_m", f"{key}_ones"], [f"{key}_repeats"], axis=0),
        helper.make_node("Tile", [f"{key}_unsq", f"{key}_repeats"], [f"{key}_tiled"]),
        helper.make_node("Concat", [f"{key}_minus1", f"{key}_rest"], [f"{key}_flat_shape"],
                         axis=0),
        helper.make_node("Reshape", [f"{key}_tiled", f"{key}_flat_shape"], [f"{key}_out"]),
    ]  # fmt: skip
    return nodes, f"{key}_out"


def _reduce_mean_nodes(out: str, tensor: str, axes: list[int], opset: int) -> list[onnx.NodeProto]:
    if opset >= 18:
        return [
            _const(f"{out}_axes", axes),
            helper.make_node("ReduceMean", [tensor, f"{out}_axes"], [out], keepdims=0),
        ]
    return [helper.make_node("ReduceMean", [tensor], [out], axes=axes, keepdims=0)]


def _serialise(model: onnx.ModelProto) -> bytes:
    try:
        return model.SerializeToString()
    except ValueError as err:  # protobuf's 2 GB limit
        raise UnsupportedModelError(
            f"The rewritten model is too large to serialise in memory: {err}"
        ) from err


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
