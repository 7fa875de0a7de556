"""The package's shape holds: no import cycle (lazy imports included), the core does no I/O, the mock stays independent."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "flagsync"

#: What the pure core may import besides itself: no I/O, no clock, no logging libraries.
CORE_MAY_IMPORT = {
    *("__future__", "array", "bisect", "collections", "contextlib", "dataclasses", "datetime", "enum", "fractions"),
    *("functools", "hashlib", "hmac", "itertools", "math", "operator", "re", "struct", "sys", "types", "typing"),
    *("uuid", "zoneinfo"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: frozenset[str] = frozenset()) -> set[str]:
    """Every module `path` imports, anywhere in the file (a function-level import counts: it is a dependency too).

    `from package import submodule` depends on the submodule (one of `modules`), not on the package's __init__.
    """
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = {f"{base}.{alias.name}" for alias in node.names}
            submodules = names & modules
            found.update(submodules)
            if submodules != names:
                found.add(base)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts}
    names = frozenset(modules)
    return {name: {m for m in _imports(path, names) if m in modules and m != name} for name, path in modules.items()}


def test_there_is_no_import_cycle() -> None:
    """No module of flagsync imports, however indirectly, a module that imports it back."""
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for neighbour in sorted(graph[node]):
            if state.get(neighbour) == 1:
                cycles.append([*stack[stack.index(neighbour) :], neighbour])
            elif neighbour not in state:
                visit(neighbour)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_graph_is_not_empty() -> None:
    """The cycle check sees the package (so it cannot pass vacuously)."""
    graph = _graph()
    assert "flagsync.cli" in graph and "flagsync.present.runs" in graph["flagsync.cli"]


@pytest.mark.parametrize("path", sorted(PACKAGE.joinpath("core").glob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_nothing_with_side_effects(path: Path) -> None:
    """flagsync/core imports only the standard library's pure parts and itself: no I/O, no clock source, no logging."""
    outside = {m.split(".")[0] for m in _imports(path)} - {"flagsync"} - CORE_MAY_IMPORT
    assert not outside, f"{path.name} imports {sorted(outside)}"
    inside = {m for m in _imports(path) if m.startswith("flagsync.") and not m.startswith(("flagsync.core", "flagsync.errors"))}
    assert not inside, f"{path.name} imports {sorted(inside)} from outside the core"


def test_the_mock_never_imports_flagsync() -> None:
    """mocks/ implements the wire contract on its own, so a mismatch with the client shows in the contract tests."""
    offenders = [p.name for p in (REPO / "mocks").rglob("*.py") if any(m.split(".")[0] == "flagsync" for m in _imports(p))]
    assert not offenders
