"""What a sweep's models may be (anything ``analyze`` takes, a :class:`Checkpoint`, a
training run directory, a ``TrainConfig`` to train first) and how each is described.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from directionkit._utils.choices import DEFAULT_NOISE_SCALES, METRICS
from directionkit._utils.validation import check_int, parameter_error
from directionkit.api import analyze
from directionkit.errors import InvalidParameterError

#: ``data`` / ``train_data`` values that mean "this training run's own split".
RUN_SPLITS: tuple[str, ...] = ("train", "test")


#: Per-model metadata read from a training run's history (last epoch trained).
HISTORY_METADATA: tuple[str, ...] = ("train_accuracy", "train_loss", "test_accuracy", "test_loss")


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.,=+-]*$")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A model saved to a file, loaded on the worker by ``factory(path)``.

    Parameters
    ----------
    path : str
        The checkpoint file.
    factory : callable
        ``factory(path)`` returns the model (e.g. builds a ``torch.nn.Module`` and loads
        the state dict into it).  It must be picklable: a module-level function, or one
        defined in the script that runs the sweep (Dask pickles those by value).

    Examples
    --------
    >>> spec = Checkpoint("net.pt", factory=str.upper)
    >>> spec.factory(spec.path)
    'NET.PT'
    """

    path: str
    factory: Callable[[str], Any]


def _is_train_config(spec: Any) -> bool:
    # recognised by its type's home, so the core does not import torch to check it
    return type(spec).__name__ == "TrainConfig" and type(spec).__module__.startswith(
        "directionkit.reference_models"
    )


def _is_run_dir(spec: Any) -> bool:
    return isinstance(spec, str | os.PathLike) and (Path(spec) / "config.json").is_file()


def _describe(spec: Any) -> dict[str, Any]:
    """A JSON description of a model spec: what a rerun must match to resume."""
    if _is_train_config(spec):
        return {"kind": "train", "config": spec.to_dict()}
    if _is_run_dir(spec):
        return {"kind": "run", "path": os.path.abspath(os.fspath(spec))}
    if isinstance(spec, Checkpoint):
        factory = getattr(spec.factory, "__qualname__", type(spec.factory).__name__)
        return {"kind": "checkpoint", "path": os.path.abspath(spec.path), "factory": factory}
    if isinstance(spec, str | os.PathLike):
        return {"kind": "file", "path": os.path.abspath(os.fspath(spec))}
    return {"kind": "object", "type": f"{type(spec).__module__}.{type(spec).__qualname__}"}


def _config_of(spec: Any) -> dict[str, Any] | None:
    """The training config (as a dict) of a config or run directory, else None."""
    if _is_train_config(spec):
        return dict(spec.to_dict())
    if _is_run_dir(spec):
        from directionkit.reference_models.runs import read_config

        return read_config(spec)
    return None


def _check_models(models: Any) -> dict[str, Any]:
    func = "sweep"
    if isinstance(models, Mapping):
        named = dict(models)
    elif isinstance(models, Sequence) and not isinstance(models, str | bytes):
        named = {f"model_{i:04d}": m for i, m in enumerate(models)}
    else:
        raise parameter_error(
            "models", func, "a mapping of name -> model, or a sequence of TrainConfigs", models
        )
    if not named:
        raise parameter_error("models", func, "a non-empty mapping or sequence", models)
    for name in named:
        if not isinstance(name, str) or not _NAME.match(name):
            raise parameter_error(
                "models",
                func,
                "keyed by names made of letters, digits and _ . , = + - (not starting with "
                "'.' or '-'; each name becomes a folder of the store)",
                name,
            )
    return named


# analyze() parameters a sweep passes through; the rest are the sweep's own
_ANALYZE_KWARGS = tuple(
    name
    for name in inspect.signature(analyze).parameters
    if name not in ("model", "data", "train_data", "progress")
)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the root arrays look like: their coordinates, from analyze's parameters."""

    metrics: tuple[str, ...]
    scopes: tuple[str, ...]
    orderings: int
    fractions: np.ndarray
    noise_scales: np.ndarray
    noise_repeats: int


def _plan(kwargs: Mapping[str, Any], has_train_data: bool) -> _Plan:
    from directionkit.experiments._ablation import check_auc_fractions, check_fractions

    func = "sweep"
    unknown = sorted(set(kwargs) - set(_ANALYZE_KWARGS))
    if unknown:
        listed = ", ".join(repr(k) for k in _ANALYZE_KWARGS)
        raise InvalidParameterError(
            f"sweep() got unknown keyword arguments {unknown}; it passes these on to "
            f"analyze(): {listed}."
        )
    metrics = kwargs.get("metrics")
    chosen = list(METRICS) if metrics is None else list(metrics)
    if "noise" in chosen and not has_train_data:
        if metrics is not None:  # refused here, not once per model on the workers
            raise parameter_error(
                "train_data", func, "given when 'noise' is among the metrics (unit sd comes "
                "from the training data)", None,
            )  # fmt: skip
        chosen.remove("noise")
    scopes = kwargs.get("scopes", ("all",))
    if isinstance(scopes, str):
        raise parameter_error("scopes", func, "a sequence of scopes", scopes)
    scales = kwargs.get("noise_scales")
    return _Plan(
        metrics=tuple(chosen),
        scopes=tuple(str(s) for s in scopes),
        orderings=check_int(kwargs.get("orderings", 10), "orderings", func, minimum=1),
        fractions=(check_auc_fractions if "ablation" in chosen else check_fractions)(
            kwargs.get("fractions", 21), func
        ),
        noise_scales=np.asarray(DEFAULT_NOISE_SCALES if scales is None else scales, float),
        noise_repeats=check_int(kwargs.get("noise_repeats", 10), "noise_repeats", func, minimum=1),
    )
