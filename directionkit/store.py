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
