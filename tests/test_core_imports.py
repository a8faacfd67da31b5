"""The core never imports a deep-learning framework (CONVENTIONS §1)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import directionkit

BANNED = {"torch", "onnx", "onnxruntime", "onnxscript", "tensorflow", "jax"}
CORE = Path(directionkit.__file__).parent


def test_no_core_module_imports_a_framework() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in BANNED
            ]
    assert offenders == []


def test_importing_directionkit_loads_no_framework() -> None:
    code = (
        "import sys, directionkit, directionkit.metrics, directionkit.results;"
        f"print(sorted(m for m in {sorted(BANNED)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_written_out() -> None:
    for name in directionkit.__all__:
        assert hasattr(directionkit, name), name
        obj = getattr(directionkit, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"


def test_show_imports_neither_matplotlib_nor_the_experiments(tmp_path: Path) -> None:
    """``directionkit show`` reads a store: the lazy rooms keep the figures (matplotlib)
    and the engine (experiments, tqdm) out of its process, so it answers in under 1 s
    (benchmarks/bench_cli.py measures it)."""
    import xarray as xr

    directionkit.Analysis(xr.Dataset({"accuracy": 0.9})).save(tmp_path / "a.zarr")
    code = (
        "import sys\nfrom directionkit.cli import main\n"
        f"assert main(['show', {str(tmp_path / 'a.zarr')!r}]) == 0\n"
        "heavy = ('matplotlib', 'directionkit.experiments', 'directionkit.api._analyze', "
        "'tqdm', 'scipy')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
