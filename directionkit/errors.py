"""The exception tree of directionkit.

Every error the library raises on purpose is a :class:`DirectionKitError`.  Each
subclass also subclasses the builtin a caller would naturally catch
(``ValueError``, ``KeyError``, ``TypeError``), so ``except ValueError`` keeps
working for code that does not know about directionkit.

Examples
--------
>>> from directionkit.errors import InvalidParameterError, DirectionKitError
>>> issubclass(InvalidParameterError, ValueError)
True
>>> try:
...     raise InvalidParameterError("bad")
... except DirectionKitError as err:
...     print(type(err).__name__, err)
InvalidParameterError bad
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DirectionKitError",
    "DirectionKitWarning",
    "InvalidDataError",
    "InvalidParameterError",
    "SiteNotFoundError",
    "StoreError",
    "UnsupportedModelError",
]


class DirectionKitError(Exception):
    """Base class of every error raised on purpose by directionkit."""


class DirectionKitWarning(UserWarning):
    """Something directionkit had to assume, or a measure it had to leave out.

    The same words are kept with the results (``attrs["assumptions"]`` or a ``*_note``
    attribute), so nobody reads a guess as a measurement.
    """


class InvalidParameterError(DirectionKitError, ValueError):
    """A parameter has a value outside its documented range or choices."""


class InvalidDataError(DirectionKitError, ValueError):
    """Activations, labels or curves have the wrong shape, dims, values or length."""


class SiteNotFoundError(DirectionKitError, KeyError):
    """A site name that the model does not have.

    Parameters
    ----------
    name : str
        The name that was asked for.
    valid : iterable of str
        The site names the model has; they are listed in the message.

    Examples
    --------
    >>> err = SiteNotFoundError("fc9", ["fc1", "fc2"])
    >>> print(err)
    Unknown site 'fc9'. Valid sites are: 'fc1', 'fc2'.
    """

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        listed = ", ".join(repr(v) for v in self.valid) or "(none)"
        super().__init__(f"Unknown site {name!r}. Valid sites are: {listed}.")

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class UnsupportedModelError(DirectionKitError, TypeError):
    """A model object of a type no installed adapter understands."""


class StoreError(DirectionKitError, OSError):
    """A path that is not a readable directionkit store, or one that cannot be written."""
