"""The data model of an analysis: the variables and dims of :data:`SCHEMA`, the
population dims in front of them, and the attributes every store carries."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

import numpy as np
import xarray as xr

from directionkit.errors import InvalidDataError, InvalidParameterError
from directionkit.results._integrity import INTEGRITY_ATTR

#: Variable name -> dims: the public contract of an analysis.
SCHEMA: dict[str, tuple[str, ...]] = {
    "accuracy": (),
    "loss": (),
    "chance_accuracy": (),
    "near_chance": (),
    "ablation_accuracy": ("scope", "ordering", "fraction"),
    "ablation_order": ("scope", "ordering", "rank"),
    "ablation_auc": ("scope",),
    "ablation_auc_corrected": ("scope",),
    "noise_accuracy": ("repeat", "noise_scale"),
    "class_mean": ("unit", "class"),
    "selectivity": ("unit",),
    "mutual_info": ("unit",),
    "importance_loss": ("unit",),
    "importance_accuracy": ("unit",),
    "weight_l1": ("unit",),
    "unit_mean": ("unit",),
    "unit_std": ("unit",),
}
#: Dims a population of analyses adds in front of a variable's :data:`SCHEMA` dims: models
#: of a sweep or an experiment (``model``), checkpoints over training (``epoch``).
POPULATION_DIMS = ("model", "epoch")
VERSION_ATTR = "directionkit_version"
#: Root attribute of a store :func:`write_zarr` wrote: its random id and the SHA-256 of
#: every metadata and chunk file (:mod:`directionkit.results._integrity`), which
#: :func:`open_dataset` checks.
DIGEST_ATTR = INTEGRITY_ATTR


def fingerprint(*arrays: Any) -> str:
    """A content hash of arrays (dtype, shape and bytes), for model and data identity.

    Anything ``numpy.asarray`` accepts; torch tensors are detached and copied to the
    CPU first (without importing torch), so ones that require grad hash too.

    Examples
    --------
    >>> import numpy as np
    >>> fingerprint(np.arange(3)) == fingerprint(np.arange(3))
    True
    >>> fingerprint(np.arange(3)) == fingerprint(np.arange(3.0))
    False
    >>> fingerprint(np.zeros(2))[:7]
    'sha256:'
    """
    digest = hashlib.sha256()
    for array in arrays:
        if hasattr(array, "detach") and hasattr(array, "cpu"):  # a torch tensor, maybe on
            array = array.detach().cpu()  # a GPU or requiring grad: hash its values
        a = np.ascontiguousarray(array)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return "sha256:" + digest.hexdigest()


def _json_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attrs as they come back from zarr's JSON: tuples become lists, numpy scalars Python."""

    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(type(value).__name__)

    try:
        return dict(json.loads(json.dumps(attrs, default=default, allow_nan=True)))
    except (TypeError, ValueError) as err:
        raise InvalidParameterError(
            f"The attrs of an Analysis must be JSON-serialisable (str, numbers, lists, dicts, "
            f"None). Got a value of type {err}."
        ) from err


def _schema_dims(dims: tuple[str, ...], expected: tuple[str, ...]) -> bool:
    """Whether ``dims`` are ``expected`` after distinct :data:`POPULATION_DIMS`."""
    if len(dims) < len(expected):
        return False
    lead = dims[: len(dims) - len(expected)]
    return (
        dims[len(lead) :] == expected
        and all(d in POPULATION_DIMS for d in lead)
        and len(set(lead)) == len(lead)
    )


def population_dims(dataset: xr.Dataset) -> tuple[str, ...]:
    """The :data:`POPULATION_DIMS` that ``dataset`` has, in that order.

    Examples
    --------
    >>> import xarray as xr
    >>> population_dims(xr.Dataset({"ablation_auc": (("epoch", "scope"), [[0.5]])}))
    ('epoch',)
    """
    return tuple(d for d in POPULATION_DIMS if d in dataset.dims)


def _strings_as_objects(dataset: xr.Dataset) -> xr.Dataset:
    """Text as object arrays: zarr 3 stores them with its specified variable-length type."""
    text = [
        name
        for name, var in dataset.variables.items()
        if var.dtype.kind in "US" or var.dtype.kind == "T"
    ]
    if not text:
        return dataset
    return dataset.assign_coords(
        {n: dataset[n].astype(object) for n in text if n in dataset.coords}
    ).assign({n: dataset[n].astype(object) for n in text if n in dataset.data_vars})


class HoldsDataset(Protocol):
    """What the report floor accepts besides a Dataset: an object holding an analysis'
    labelled results, such as :class:`directionkit.Analysis` (which lives above it)."""

    @property
    def dataset(self) -> xr.Dataset: ...


def check_schema(dataset: xr.Dataset) -> None:
    """Raise unless every variable named in :data:`SCHEMA` has the dims given there, after
    any :data:`POPULATION_DIMS`.  The store of one experiment of the paper (attrs
    ``experiment``) follows its experiment's own layout, judged by its own rule, and is
    not checked.

    Examples
    --------
    >>> check_schema(xr.Dataset({"selectivity": ("unit", [0.5])}))
    >>> check_schema(xr.Dataset({"selectivity": ("x", [0.5])}))
    Traceback (most recent call last):
    ...
    directionkit.errors.InvalidDataError: Variable 'selectivity' of an Analysis must have dims ('unit',), after any of the population dims ('model', 'epoch'). Got ('x',) instead.
    """  # noqa: E501
    checked = {} if dataset.attrs.get("experiment") else dataset.data_vars
    for name, var in checked.items():
        expected = SCHEMA.get(str(name))
        if expected is not None and not _schema_dims(tuple(map(str, var.dims)), expected):
            raise InvalidDataError(
                f"Variable {name!r} of an Analysis must have dims {expected}, after any "
                f"of the population dims {POPULATION_DIMS}. Got {tuple(var.dims)} instead."
            )
