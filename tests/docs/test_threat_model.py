"""docs/threat-model.md stays honest: every test it names as proof exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::([\w*\[\]-]+))?`")


def _references() -> list[tuple[str, str | None]]:
    text = (REPO / "docs" / "threat-model.md").read_text(encoding="utf-8")
    return sorted(set(REFERENCE.findall(text)))


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_the_threat_model_names_tests() -> None:
    """The threat model cites plenty of tests (the check below is not vacuous)."""
    assert len(_references()) >= 30


@pytest.mark.parametrize(("path", "name"), _references())
def test_every_cited_test_exists(path: str, name: str) -> None:
    """Each `tests/...py::test_name` in the threat model is a real test (a `*` matches a prefix)."""
    file = REPO / path
    assert file.is_file(), f"{path} does not exist"
    if not name:
        return
    names = _test_names(file)
    if name.endswith("*"):
        assert any(n.startswith(name[:-1]) for n in names), f"no test {name} in {path}"
    else:
        assert name.split("[", maxsplit=1)[0] in names, f"no test {name} in {path}"
