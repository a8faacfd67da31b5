"""The exception tree: every error is a DirectionKitError and the builtin users expect."""

from __future__ import annotations

import pytest

from directionkit import errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InvalidParameterError, ValueError),
        (errors.InvalidDataError, ValueError),
        (errors.UnsupportedModelError, TypeError),
        (errors.StoreError, OSError),
    ],
)
def test_errors_subclass_the_builtin_and_the_base(cls: type, builtin: type) -> None:
    assert issubclass(cls, errors.DirectionKitError)
    assert issubclass(cls, builtin)


def test_site_not_found_message_is_readable_not_repr_quoted() -> None:
    err = errors.SiteNotFoundError("x", [])
    assert isinstance(err, KeyError)
    assert str(err) == "Unknown site 'x'. Valid sites are: (none)."
    assert err.name == "x" and err.valid == ()
