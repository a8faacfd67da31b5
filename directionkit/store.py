"""Deprecated: moved to :mod:`directionkit.results` (stores, integrity, activation stores)
and :mod:`directionkit.api` (:class:`~directionkit.Analysis`, :func:`~directionkit.open`).

Every name of the old module still resolves here, with a :class:`DeprecationWarning`
naming its new home.
"""

from directionkit._utils.lazy import moved

__getattr__ = moved(
    __name__,
    (
        "directionkit.results",
        "directionkit.api",
        "directionkit.results._schema",
        "directionkit.results._stores",
        "directionkit.results._atomic",
        "directionkit.results._activations",
        "directionkit.api._analysis",
    ),
)

#: The old module's public names (``from ... import *`` warns for each).
__all__ = [
    "POPULATION_DIMS",
    "SCHEMA",
    "ActivationWriter",
    "Analysis",
    "fingerprint",
    "open",
    "open_activations",
    "open_dataset",
    "population_dims",
    "recover",
    "replaceable",
    "resolve_store",
    "write_zarr",
]
