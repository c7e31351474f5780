"""docs/reliability.md names, for every guarantee and non-guarantee, the tests that prove it: each
named test must exist, so the page cannot promise what no test checks any more.

A table counts when its header starts with ``guarantee`` or ``not guaranteed``; its second column
names tests as ```tests/<path>.py::<name>``` (``Class::method`` for a method; a parametrized id in
brackets is ignored). The file is parsed with :mod:`ast`, never imported.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
#: A test reference: a path below tests/, then one or two names (class and method), maybe an id.
REFERENCE = re.compile(r"`(tests/[\w/.-]+\.py)((?:::\w+)+)(?:\[[^\]`]*\])?`")
HEADERS = ("guarantee", "not guaranteed")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def rows(text: str) -> list[tuple[str, list[str]]]:
    """``(guarantee, [test references])`` of every row of the guarantee tables in ``text``."""
    found: list[tuple[str, list[str]]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if cells[0] in HEADERS:
            in_table = True
            continue
        if not in_table or set(cells[0]) <= set("-: "):
            continue
        tests = "|".join(cells[1:2])
        found.append((cells[0], ["".join(match) for match in REFERENCE.findall(tests)]))
    return found


@cache
def _definitions(path: Path) -> set[str]:
    """Every test a file defines: ``name`` for functions, ``Class::name`` for methods."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return names


def missing(reference: str, root: Path = ROOT) -> str | None:
    """Why ``reference`` (``tests/x.py::name``) names no test, or None when it does."""
    file, _, name = reference.partition("::")
    path = root / file
    if not path.is_file():
        return f"{reference}: no file {file}"
    if not name.split("::")[-1].startswith("test"):
        return f"{reference}: {name} is not a test's name"
    if name not in _definitions(path):
        return f"{reference}: {file} defines no {name}"
    return None


def test_every_guarantee_names_a_test() -> None:
    table = rows(DOC.read_text())
    assert len(table) >= 40, "the guarantee tables of docs/reliability.md were not found"
    assert [guarantee for guarantee, tests in table if not tests] == []


def test_every_named_test_exists() -> None:
    problems = [
        problem
        for _, tests in rows(DOC.read_text())
        for reference in tests
        if (problem := missing(reference))
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("`tests/unit/test_reliability_doc.py::test_every_named_test_exists`", None),
        ("`tests/unit/test_reliability_doc.py::test_every_named_test_exists[an-id]`", None),
        ("`tests/unit/test_reliability_doc.py::test_gone`", "defines no test_gone"),
        ("`tests/unit/no_such_file.py::test_x`", "no file tests/unit/no_such_file.py"),
        ("`tests/unit/test_reliability_doc.py::rows`", "is not a test's name"),
    ],
)
def test_the_check_can_fail(cell: str, problem: str | None) -> None:
    """The checker on a table of its own: a good reference passes, each kind of bad one is named."""
    text = f"| guarantee | test | how |\n|---|---|---|\n| it holds | {cell} | somehow |\n"
    ((guarantee, (reference,)),) = rows(text)
    assert guarantee == "it holds"
    found = missing(reference)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found
