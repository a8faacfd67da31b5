"""Public names re-exported by a package and imported on first use (PEP 562), so that
importing a package, or one of its modules, costs only what that module needs: the
command line's ``show`` reads a store without importing matplotlib or the experiments.

Examples
--------
>>> getattr_, dir_ = attach("pkg", {"sqrt": "math"})
>>> getattr_("sqrt")(4.0)
2.0
>>> "sqrt" in dir_()
True
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def attach(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public names live in
    ``homes`` (name -> module); each is imported on first use, then kept as a plain
    attribute of the package."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        module = sys.modules.get(package)
        if module is not None:
            setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        module = sys.modules.get(package)
        return sorted({*(vars(module) if module is not None else {}), *homes})

    return __getattr__, __dir__


def moved(old: str, homes: Sequence[str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of a module path that moved: each name resolves from the first
    of ``homes`` that has it, with a :class:`DeprecationWarning` naming where to import it
    from now.

    Examples
    --------
    >>> import warnings
    >>> getattr_ = moved("oldmath", ["math"])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     getattr_("pi") > 3, str(caught[0].message)
    (True, 'oldmath is deprecated: import pi from math instead.')
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # the module's own (__all__, __path__), never a home's
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        for home in homes:
            module = importlib.import_module(home)
            if hasattr(module, name):
                warnings.warn(
                    f"{old} is deprecated: import {name} from {home} instead.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
