"""The house's layout, enforced: every module lives in a room on a floor, imports only from
its own floor and the ones below it, and no chain of imports comes back to where it began.

Imports are read from the source (``ast``), all of them: at the top of a module, inside a
function (a lazy import is still an arrow), and under ``TYPE_CHECKING``, which count for
the floors but not for circles (a module may name, for its annotations only, a type of a
module that imports it: nothing is imported at run time).  A deprecated
module path (a shim that forwards to the new home by name) is the one exception: it sits
on the top floor, and holds nothing but its forwarding ``__getattr__``.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The installed package name of each source folder (pyproject's package-dir).
FOLDERS = {
    "directionkit": ROOT / "directionkit",
    "directionkit.adapters": ROOT / "adapters",
    "directionkit.reference_models": ROOT / "reference_models",
}
#: Rooms, from the ground floor up.  A module belongs to the room of the longest prefix
#: of its dotted name.  What each holds is in the README's Layout section.
FLOORS: list[tuple[str, ...]] = [
    ("directionkit._version", "directionkit.errors", "directionkit._utils"),
    ("directionkit.metrics",),
    ("directionkit.adapter",),
    ("directionkit.results",),
    ("directionkit.testing",),
    ("directionkit.experiments",),
    ("directionkit.directions",),
    ("directionkit.adapters",),
    ("directionkit.reference_models",),
    ("directionkit.report",),
    ("directionkit.api",),
    ("directionkit.preprocessing",),
    ("directionkit.population",),
    ("directionkit.paper",),
    ("directionkit.cli",),
    ("directionkit",),
]
#: Old public paths kept for a deprecation period: each forwards every name to its new
#: home with a DeprecationWarning.
DEPRECATED = {
    "directionkit.store": "directionkit.results",
    "directionkit.plots": "directionkit.report.plots",
    "directionkit.compare": "directionkit.report",
    "directionkit.experiments.paper": "directionkit.paper",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if package == "directionkit" and parts[0] in ("adapters", "reference_models"):
                continue  # a stray copy, never the installed one
            if parts[-1] == "__init__":
                parts.pop()
            elif parts[-1] == "__main__":
                continue  # `python -m`: runs the package, imported by nothing
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes under ``if TYPE_CHECKING:``."""
    return {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }


def _imports(name: str, path: Path, types: bool = True) -> Iterator[tuple[str, int]]:
    """The modules of the package that ``name`` imports, and the line of each import;
    those under ``TYPE_CHECKING`` only with ``types``."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = set() if types else _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from a.b import c` imports a.b, and a.b.c when c is a module
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if target in MODULES and target != name:
                yield target, node.lineno


GRAPH = {name: dict(_imports(name, path)) for name, path in MODULES.items()}
#: The imports that run: what a circle is made of.
RUNTIME = {name: dict(_imports(name, path, types=False)) for name, path in MODULES.items()}


def _room(name: str) -> tuple[int, str]:
    if name in DEPRECATED:
        return len(FLOORS) - 1, name  # the top floor: it may name any home
    best = max(
        ((floor, room) for floor, rooms in enumerate(FLOORS) for room in rooms
         if name == room or name.startswith(room + ".")),
        key=lambda found: len(found[1]),
    )  # fmt: skip
    return best


def test_every_module_has_a_room() -> None:
    for name in MODULES:
        assert _room(name), name  # max() of nothing raises: a module no room holds


def test_no_import_points_up_a_floor() -> None:
    upward = []
    for name, targets in GRAPH.items():
        floor, room = _room(name)
        for target, line in targets.items():
            to_floor, to_room = _room(target)
            if to_floor > floor:
                upward.append(f"{MODULES[name].relative_to(ROOT)}:{line} {room} -> {to_room}")
    assert upward == []


def _cycle_from(start: str) -> list[str] | None:
    """A shortest chain of imports from ``start`` back to it, if any (breadth first)."""
    paths = {target: [start, target] for target in RUNTIME[start]}
    queue = list(paths)
    while queue:
        here = queue.pop(0)
        if here == start:
            return paths[here]
        for target in RUNTIME[here]:
            if target not in paths:
                paths[target] = [*paths[here], target]
                queue.append(target)
    return None


def test_no_import_circle() -> None:
    circles = {tuple(c) for name in RUNTIME if (c := _cycle_from(name)) is not None}
    assert sorted(" -> ".join(c) for c in circles) == []


def test_the_graph_test_sees_a_circle_and_an_upward_arrow() -> None:
    """The checks above can fail: a planted circle and a planted upward import are found."""
    saved = [{k: dict(v) for k, v in graph.items()} for graph in (GRAPH, RUNTIME)]
    try:
        for graph in (GRAPH, RUNTIME):
            graph["directionkit.metrics"]["directionkit.api"] = 1
            graph["directionkit.api"]["directionkit.metrics"] = 1
        with pytest.raises(AssertionError):
            test_no_import_circle()
        with pytest.raises(AssertionError):
            test_no_import_points_up_a_floor()
    finally:
        for graph, kept in zip((GRAPH, RUNTIME), saved, strict=True):
            graph.clear()
            graph.update(kept)


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_a_deprecated_path_only_forwards(old: str) -> None:
    """Its ``__getattr__`` comes from ``moved``, its homes are named as strings (imported
    on first use), and it holds no code of its own."""
    tree = ast.parse(MODULES[old].read_text())
    assert not [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert set(GRAPH[old]) == {"directionkit._utils.lazy"}
    assert DEPRECATED[old] in MODULES[old].read_text()


def test_pyproject_lists_every_package() -> None:
    """setuptools installs only the packages pyproject names: a new folder must be listed."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {n for n, p in MODULES.items() if p.name == "__init__.py"}
    assert set(config["packages"]) == packages


def test_the_readme_describes_every_room() -> None:
    """The README's Layout section names each room by its folder or file."""
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[: layout.find("\n## ", 1)] if "\n## " in layout[1:] else layout
    for rooms in FLOORS[:-1]:
        for room in rooms:
            last = room.rsplit(".", 1)[-1]
            path = MODULES[room]
            shown = f"{last}/" if path.name == "__init__.py" else path.name
            assert shown in layout, f"{room} ({shown}) is not in the README's Layout section"
