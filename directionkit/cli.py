"""The ``directionkit`` command: parses arguments and calls the public API, nothing else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from directionkit._version import __version__
from directionkit.errors import DirectionKitError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="directionkit",
        description="Measure how much a trained network relies on single directions "
        "(Morcos et al., ICLR 2018).",
    )
    parser.add_argument("--version", action="version", version=f"directionkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="train a small MLP on the bundled digits data and measure its hidden units",
    )
    demo.add_argument("--out", required=True, help="where to write the analysis (zarr store)")
    demo.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    show = commands.add_parser("show", help="summarise a saved analysis")
    show.add_argument("path", help="a zarr store written by directionkit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``directionkit`` console script.

    Examples
    --------
    >>> main(["show", "/nonexistent/run.zarr"])
    2
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            from directionkit._demo import digits_demo, summary

            result = digits_demo(hidden=args.hidden, seed=args.seed)
            path = result.save(args.out, overwrite=args.overwrite)
            print(summary(result))
            print(f"saved to {path}")
        elif args.command == "show":
            from directionkit.store import open as open_store

            print(open_store(args.path))
    except DirectionKitError as err:
        print(f"directionkit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
