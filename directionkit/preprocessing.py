"""Explicit input preprocessing for models we did not train (``directionkit analyze``).

A third-party model expects its inputs scaled, normalised and laid out its own way;
directionkit never guesses silently.  :func:`prepare_inputs` applies the steps a user
names — ``scale``, then ``(x - mean) / std`` per channel, then a ``layout`` — and checks
the result against the model's input shape, with an error that says what disagrees.
:func:`load_data` resolves the data names of the command line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from directionkit._utils.choices import LAYOUTS
from directionkit._utils.validation import check_choice, check_int, parameter_error
from directionkit.errors import InvalidDataError

__all__ = ["LAYOUTS", "load_data", "prepare_inputs"]

#: ``NCHW``: (batch, channels, height, width); ``NHWC``: channels last; ``flat``: (batch, features).
Layout = Literal["NCHW", "NHWC", "flat", "auto"]


def load_data(
    spec: str, split: str = "test", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` for a data name of the command line, ``X`` as float32.

    The named data sets give NCHW images in [0, 1]; a ``.npz`` file gives its arrays as
    stored: NCHW images, or flat ``(N, features)`` rows for an MLP.

    Parameters
    ----------
    spec : str
        ``"digits"``, ``"fashion-mnist"`` (from ``/usr/share/datasets/fashion-mnist``),
        a path to a ``.npz`` file (arrays ``x_train``/``y_train``/``x_test``/``y_test``;
        a file with only ``x``/``y`` has no splits and is the test split), a training run
        directory of ``directionkit train`` (its data set, with the shuffled labels it
        trained on for ``"train"``: see
        :func:`directionkit.reference_models.runs.run_data`), or a directory holding
        MNIST-format IDX files.
    split : {"train", "test"}
    limit : int, optional
        Keep only the first ``limit`` examples.  The loader reads only those where the
        format allows (IDX and ``.npz`` files are not decompressed past them).

    Examples
    --------
    >>> X, y = load_data("digits", "test", limit=100)
    >>> X.shape, y.shape
    ((100, 1, 8, 8), (100,))
    """
    from directionkit.reference_models.datasets import load
    from directionkit.reference_models.runs import is_run_dir, run_data

    if limit is not None:
        limit = check_int(limit, "limit", "load_data", minimum=1)
    if spec in ("digits", "fashion-mnist"):
        X, y = load(spec, split, limit=limit)
    elif spec.endswith(".npz"):
        X, y = load(Path(spec), split, limit=limit)
    elif is_run_dir(spec):
        X, y = run_data(spec, split)
    elif os.path.isdir(spec):
        X, y = load("mnist", split, root=spec, limit=limit)
    else:
        raise parameter_error(
            "data",
            "load_data",
            "'digits', 'fashion-mnist', a path to a .npz file, a training run directory "
            "or a directory of IDX files",
            spec,
        )
    return X[:limit], y[:limit]


def _per_channel(
    values: Sequence[float] | float, name: str, channels: int, unit: str = "channel"
) -> np.ndarray:
    array = np.atleast_1d(np.asarray(values, dtype=np.float32))
    if array.ndim != 1 or array.size not in (1, channels):
        raise parameter_error(
            name, "prepare_inputs", f"one value or one per {unit} ({channels})", values
        )
    if name == "std" and np.any(array <= 0):
        raise parameter_error(name, "prepare_inputs", "values > 0", values)
    return array


def _prepare_rows(
    X: np.ndarray,
    scale: float,
    mean: Sequence[float] | float | None,
    std: Sequence[float] | float | None,
    layout: Layout,
    input_shape: Sequence[int | None] | None,
) -> np.ndarray:
    """:func:`prepare_inputs` for flat ``(N, F)`` rows: scale, normalise per feature, check."""
    features = X.shape[1]
    if layout not in ("flat", "auto"):
        raise InvalidDataError(
            f"The inputs are flat rows of shape {X.shape} (N, features); they cannot be laid "
            f"out as {layout!r}. Use --layout flat (or auto), or give images (N, C, H, W)."
        )
    out = X.astype(np.float32) * np.float32(scale)
    if mean is not None:
        out = out - _per_channel(mean, "mean", features, "feature")[None, :]
    if std is not None:
        out = out / _per_channel(std, "std", features, "feature")[None, :]
    if input_shape is not None:
        expected = tuple(input_shape)
        fixed = None not in expected
        if fixed and len(expected) > 1 and math.prod(expected) == features:  # type: ignore[arg-type]
            # rows flattened from the model's own input shape (C order): laid back out
            return np.ascontiguousarray(out.reshape(len(out), *expected))
        if len(expected) != 1 or expected[0] not in (None, features):
            raise InvalidDataError(
                f"The inputs are flat rows of {features} features, but the model expects "
                f"{expected} per example ({_size(expected)} values): give rows of that many "
                "features (read in C order into the model's shape), or images."
            )
    return np.ascontiguousarray(out)


def _size(shape: tuple[int | None, ...]) -> str:
    return "any number of" if None in shape else str(math.prod(shape))  # type: ignore[arg-type]


def prepare_inputs(
    X: np.ndarray,
    *,
    scale: float = 1.0,
    mean: Sequence[float] | float | None = None,
    std: Sequence[float] | float | None = None,
    layout: Layout = "auto",
    input_shape: Sequence[int | None] | None = None,
) -> np.ndarray:
    """Scale, normalise and lay out NCHW images (or flat feature rows) for a model's input.

    Parameters
    ----------
    X : ndarray of shape (N, C, H, W) or (N, F)
        Images as :func:`load_data` gives them (float, [0, 1]), or flat rows of F
        features (e.g. a ``.npz`` made for an MLP), which stay flat, unless the model
        takes a fixed multi-axis shape of F values: then each row is laid out in that
        shape in C order (the inverse of ``x.reshape(len(x), -1)``).
    scale : float
        Multiply first (e.g. 255 for a model trained on raw pixel values).
    mean, std : float or sequence of float (one per channel; per feature for flat rows)
        Then ``(x - mean) / std``, per channel.
    layout : {"NCHW", "NHWC", "flat", "auto"}
        The model's layout.  ``"auto"`` picks the one that fits ``input_shape``
        (and is an error when none or several fit).  Flat rows take only ``"flat"``.
    input_shape : sequence of int or None, optional
        The model's per-example input shape (None for a free dimension).  When given,
        the result must fit it.

    Examples
    --------
    >>> X = np.ones((2, 1, 8, 8), np.float32)
    >>> prepare_inputs(X, scale=16, input_shape=(64,)).shape
    (2, 64)
    >>> prepare_inputs(X, mean=0.5, std=0.5, layout="NHWC").shape
    (2, 8, 8, 1)
    >>> prepare_inputs(X, layout="NHWC", input_shape=(1, 8, 8))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidDataError: With layout 'NHWC' ... (--layout NCHW).
    >>> prepare_inputs(np.ones((2, 64), np.float32), scale=2, input_shape=(64,)).shape
    (2, 64)
    >>> prepare_inputs(np.ones((2, 64), np.float32), input_shape=(1, 8, 8)).shape
    (2, 1, 8, 8)
    """
    X = np.asarray(X)
    check_choice(layout, "layout", "prepare_inputs", (*LAYOUTS, "auto"))
    if not np.isfinite(scale) or scale <= 0:
        raise parameter_error("scale", "prepare_inputs", "a finite float > 0", scale)
    if X.ndim == 2:
        return _prepare_rows(X, scale, mean, std, layout, input_shape)
    if X.ndim != 4:
        raise InvalidDataError(
            "Inputs must be images of shape (N, C, H, W) or flat rows of shape (N, features). "
            f"Got shape {X.shape}."
        )
    channels = X.shape[1]
    out = X.astype(np.float32) * np.float32(scale)
    if mean is not None:
        out = out - _per_channel(mean, "mean", channels)[None, :, None, None]
    if std is not None:
        out = out / _per_channel(std, "std", channels)[None, :, None, None]
    shapes = {
        "NCHW": out.shape[1:],
        "NHWC": (out.shape[2], out.shape[3], out.shape[1]),
        "flat": (int(np.prod(out.shape[1:])),),
    }
    expected = None if input_shape is None else tuple(input_shape)

    def fits(shape: tuple[int, ...]) -> bool:
        return (
            expected is not None
            and len(shape) == len(expected)
            and all(e is None or e == s for e, s in zip(expected, shape, strict=True))
        )

    if layout == "auto":
        if expected is None:
            layout = "NCHW"
        else:
            fitting = [name for name, shape in shapes.items() if fits(shape)]
            known = [e for e in expected if e is not None]
            sizes = int(np.prod(known)) if len(known) == len(expected) else None
            if not fitting and sizes is not None and sizes != int(np.prod(out.shape[1:])):
                # no layout can help: the images are another size than the model takes
                raise InvalidDataError(
                    f"The model takes {expected} per example ({sizes} values) but the data "
                    f"give {tuple(out.shape[1:])} ({int(np.prod(out.shape[1:]))} values): no "
                    "layout fits. Give data of the model's input size (resize or crop the "
                    "images first), or a model made for this data."
                )
            if len(fitting) != 1:
                raise InvalidDataError(
                    f"Cannot tell the model's input layout: it expects {expected} per example "
                    f"and the data give {dict(shapes)}; "
                    + ("none fits" if not fitting else f"{fitting} all fit")
                    + ". Pass --layout (and --scale/--mean/--std as the model needs)."
                )
            layout = fitting[0]  # type: ignore[assignment]
    elif expected is not None and not fits(shapes[layout]):
        fitting = [name for name, shape in shapes.items() if fits(shape)]
        hint = f" Pick the layout that fits (--layout {fitting[0]})." if fitting else ""
        raise InvalidDataError(
            f"With layout {layout!r} the inputs have shape {shapes[layout]} per example, but "
            f"the model expects {expected}.{hint}"
        )
    if layout == "NHWC":
        out = out.transpose(0, 2, 3, 1)
    elif layout == "flat":
        out = out.reshape(out.shape[0], -1)
    return np.ascontiguousarray(out)
