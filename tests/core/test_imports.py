"""The import graph of layers/, consumers/ and bench/: dependencies point down, no cycles.

Read from the source with ast, so an import inside a function counts as much as one at
the top of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("layers", "consumers", "bench")


@dataclass(frozen=True)
class Import:
    """One import of one of our modules by another."""

    importer: str
    imported: str
    type_checking: bool
    """Under `if TYPE_CHECKING:`: for the type checker only, never run."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
}


def _ours(name: str) -> str | None:
    """The module of ours that importing name runs: itself, or the nearest package."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str | None]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield _ours(alias.name)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, *([node.module] if node.module else [])])
    for alias in node.names:
        # `from package import module` imports the module; `from module import name`
        # runs the module.
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in MODULES else _ours(base)


def imports_of(module: str, source: str | None = None) -> Iterator[Import]:
    """Every import of our modules in module (or in source, read as module), wherever
    it is in the code."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8") if source is None else source)

    def walk(node: ast.AST, type_checking: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(module, child):
                    if target is not None and target != module:
                        yield Import(module, target, type_checking)
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for inner in child.body:
                    yield from walk_one(inner, True)
                for inner in child.orelse:
                    yield from walk_one(inner, type_checking)
            else:
                yield from walk(child, type_checking)

    def walk_one(node: ast.stmt, type_checking: bool) -> Iterator[Import]:
        wrapper = ast.Module(body=[node], type_ignores=[])
        return walk(wrapper, type_checking)

    return walk(tree, False)


ALL_IMPORTS = [found for module in sorted(MODULES) for found in imports_of(module)]


def _cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, list[str]] = {module: [] for module in MODULES}
    for importer, imported in sorted(edges):
        graph[importer].append(imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in graph[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_the_walk_sees_imports_in_functions_and_type_checking_blocks() -> None:
    cli = {(i.imported, i.type_checking) for i in ALL_IMPORTS if i.importer == "bench.command"}
    assert ("bench.__main__", False) in cli  # imported inside _run()
    # No module of ours imports for the type checker only any more: a made-up one does.
    source = "if TYPE_CHECKING:\n    from .layer import RedisChannelLayer\nfrom . import keys\n"
    fetching = {(i.imported, i.type_checking) for i in imports_of("layers.redis.fetching", source)}
    assert fetching == {("layers.redis.layer", True), ("layers.redis.keys", False)}
    assert len(MODULES) > 80


@pytest.mark.parametrize(
    ("lower", "upper"), [("layers", {"consumers", "bench"}), ("consumers", {"bench"})]
)
def test_dependencies_point_down(lower: str, upper: set[str]) -> None:
    # Counted wherever the import is, even in a function; only the type checker's are not.
    upward = [
        f"{i.importer} imports {i.imported}"
        for i in ALL_IMPORTS
        if i.importer.split(".")[0] == lower
        and not i.type_checking
        and i.imported.split(".")[0] in upper
    ]
    assert upward == [], f"{lower} must not depend on the packages built on it"


def test_no_import_cycles() -> None:
    # Imports for the type checker count here: a helper typed against the class that
    # builds it is still a circle between the two modules.
    edges = {(i.importer, i.imported) for i in ALL_IMPORTS}
    assert _cycles(edges) == []
