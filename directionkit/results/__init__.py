"""Results and their storage: the data model of an analysis (:data:`SCHEMA`), zarr stores
written atomically with an integrity record over every byte, ownership markers and
one-writer locks, recovery of a write killed half-way, and activation stores read lazily.

This floor knows xarray and zarr, and nothing of models: the result object users hold
(:class:`directionkit.Analysis`) wraps what it reads.

Examples
--------
>>> import tempfile, xarray as xr
>>> from directionkit.results import open_dataset, write_zarr
>>> with tempfile.TemporaryDirectory() as tmp:
...     path = write_zarr(xr.Dataset({"accuracy": 0.9}), f"{tmp}/a.zarr")
...     float(open_dataset(path)["accuracy"])
0.9
"""

from directionkit.results._activations import ACTIVATION_STORE, ActivationWriter, open_activations
from directionkit.results._atomic import atomic_directory, check_writable, recover, replaceable
from directionkit.results._integrity import INTEGRITY_ATTR, check_integrity
from directionkit.results._ownership import MARKER, writer_lock
from directionkit.results._schema import (
    DIGEST_ATTR,
    POPULATION_DIMS,
    SCHEMA,
    VERSION_ATTR,
    HoldsDataset,
    fingerprint,
    population_dims,
)
from directionkit.results._stores import open_dataset, read_analysis, resolve_store, write_zarr

__all__ = [
    "ACTIVATION_STORE",
    "DIGEST_ATTR",
    "INTEGRITY_ATTR",
    "MARKER",
    "POPULATION_DIMS",
    "SCHEMA",
    "VERSION_ATTR",
    "ActivationWriter",
    "HoldsDataset",
    "atomic_directory",
    "check_integrity",
    "check_writable",
    "fingerprint",
    "open_activations",
    "open_dataset",
    "population_dims",
    "read_analysis",
    "recover",
    "replaceable",
    "resolve_store",
    "writer_lock",
    "write_zarr",
]
