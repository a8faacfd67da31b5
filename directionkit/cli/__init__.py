"""The ``directionkit`` command line: parses arguments and calls the public API, nothing
else.  Every command imports what it needs when it runs, so ``directionkit --help``
answers before xarray, zarr or a framework is imported.

Examples
--------
>>> from directionkit.cli import main
>>> main(["show", "/nonexistent/run.zarr"])
2
"""

from directionkit.cli._main import main

__all__ = ["main"]
