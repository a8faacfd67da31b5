"""The ``directionkit`` command: parses arguments and calls the public API, nothing else."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from directionkit.cli._commands import COMMANDS as _COMMANDS
from directionkit.cli._messages import _cli_message, _third_party_message, _warnings_printed
from directionkit.cli._parser import _parser
from directionkit.errors import DirectionKitError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``directionkit`` console script.

    Examples
    --------
    >>> main(["show", "/nonexistent/run.zarr"])
    2
    """
    args = _parser().parse_args(argv)
    try:
        with _warnings_printed(args.command):
            return _run(args)
    except BrokenPipeError:  # `directionkit show X | head`: the reader left, nothing to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # python flushes stdout at exit: into nothing
        return 0


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command; DirectionKitErrors become one line and status 2."""
    try:
        return _COMMANDS[args.command](args) or 0
    except DirectionKitError as err:
        print(f"directionkit: error: {_cli_message(str(err), args.command)}", file=sys.stderr)
        return 2
    except Exception as err:
        known = _third_party_message(err, getattr(args, "path", None))
        if known is None:
            raise  # a bug of ours: the traceback is what a report needs
        print(f"directionkit: error: {known}", file=sys.stderr)
        return 2
