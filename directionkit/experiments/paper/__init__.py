"""Deprecated: moved to :mod:`directionkit.paper`.

:mod:`directionkit.experiments` is the engine (ablation and noise curves driving an
adapter); the paper's experiments, which train networks, analyse them and write reports,
are :mod:`directionkit.paper`.  Every name of :mod:`directionkit.paper` still resolves
here, with a :class:`DeprecationWarning` naming its new home.
"""

from directionkit._utils.lazy import moved

__getattr__ = moved(__name__, ("directionkit.paper",))
