"""Loading a model into a private copy: its source, its external data (only from inside
the model file's folder), ``onnx.checker`` and the opset."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from directionkit.errors import UnsupportedModelError

from ._graph import opset
from ._runtime import ORT_ERRORS, not_runnable, serialise

log = logging.getLogger(__name__.rpartition(".")[0])  # the package's, as before the split

MIN_OPSET = 7


def load_model(model: Any) -> onnx.ModelProto:
    """A private, fully loaded copy of ``model`` (path, bytes or ModelProto)."""
    copy, source, base = _read(model)
    if not copy.graph.node:
        raise UnsupportedModelError(f"{source} is not an ONNX model: its graph has no nodes.")
    _load_external_data(copy, source, base)
    _check(copy, source)
    return copy


def _read(model: Any) -> tuple[onnx.ModelProto, str, Path | None]:
    """``(copy, how messages name the source, folder of its external data or None)``."""
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
    return copy, source, base


def _load_external_data(copy: onnx.ModelProto, source: str, base: Path | None) -> None:
    """Read the tensors stored in files next to the model, once their places are checked."""
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


def _check(copy: onnx.ModelProto, source: str) -> None:
    """``onnx.checker``: a failure is a warning when onnxruntime loads the model anyway."""
    try:
        onnx.checker.check_model(copy)
    except onnx.checker.ValidationError as err:
        # onnxruntime is the judge of what runs: a model it loads is audited (the session
        # built next fails with a clear error otherwise), but the user hears of the defect
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        try:  # before the graph is read: a damaged tensor would fail there less clearly
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            ort.InferenceSession(serialise(copy), options, providers=["CPUExecutionProvider"])
        except ORT_ERRORS as ort_err:
            raise not_runnable(copy.graph, ort_err, f"{source} fails onnx.checker ({first}) "
                               "and ") from ort_err  # fmt: skip
        log.warning(
            "%s fails onnx.checker (%s); auditing it anyway, as long as onnxruntime runs it.",
            source, first,
        )  # fmt: skip


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


def checked_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset, refused below :data:`MIN_OPSET`."""
    found = opset(model)
    if found < MIN_OPSET:
        raise UnsupportedModelError(
            f"The model uses ONNX opset {found}; OnnxAdapter supports opset "
            f"{MIN_OPSET} and later (convert it with onnx.version_converter)."
        )
    return found
