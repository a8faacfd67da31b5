"""onnxruntime: its errors, execution providers and session options, serialising a model."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import onnx
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

from directionkit.errors import DirectionKitWarning, InvalidParameterError, UnsupportedModelError

#: What onnxruntime raises when it cannot load or run a model (its own classes, not builtins).
ORT_ERRORS: tuple[type[Exception], ...] = tuple(
    cls for cls in vars(_ort_state).values() if isinstance(cls, type) and issubclass(cls, Exception)
)


def not_runnable(
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


def serialise(model: onnx.ModelProto) -> bytes:
    try:
        return model.SerializeToString()
    except ValueError as err:  # protobuf's 2 GB limit
        raise UnsupportedModelError(
            f"The rewritten model is too large to serialise in memory: {err}"
        ) from err


def choose_providers(providers: Sequence[str] | None, device: str | None) -> list[str]:
    """The execution providers asked for (checked), or those ``device`` implies."""
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


def session_options(graph_optimization: bool, cpu_memory_arena: bool) -> ort.SessionOptions:
    """The options of every session of the rewritten graphs."""
    options = ort.SessionOptions()
    # fatal only: the errors directionkit meets it reports itself (and some it expects:
    # a batch-holding input met by M*B rows, before going one row at a time)
    options.log_severity_level = 4
    # an arena keeps its peak for its session's life: few sessions are kept (B8)
    options.enable_cpu_mem_arena = bool(cpu_memory_arena)
    if not graph_optimization:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options
