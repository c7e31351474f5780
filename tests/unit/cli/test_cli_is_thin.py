"""The CLI holds no assembly of its own: every command calls the application layer and prints its
model. A second face (REST, UI pages) then returns the same JSON by construction."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow_wfe.cli

CLI = Path(airflow_wfe.cli.__file__).parent
FILES = sorted(CLI.glob("*.py"))
#: Modules whose import would mean the CLI reads the store or builds JSON by itself.
FORBIDDEN_MODULES = ("airflow_wfe.store", "sqlalchemy", "pydantic", "alembic")
FORBIDDEN_NAMES = {"to_jsonable", "asdict", "canonical_json"}
#: Attribute calls that turn records into JSON-ready data.
FORBIDDEN_CALLS = {"to_dict", "to_json", "to_jsonable", "asdict"}


def _imports(tree: ast.AST) -> list[tuple[str, set[str]]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, set()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, {alias.name for alias in node.names}))
    return found


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_cli_module_neither_reads_the_store_nor_builds_json(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for module, names in _imports(tree):
        assert not module.startswith(FORBIDDEN_MODULES), f"{path.name} imports {module}"
        assert not names & FORBIDDEN_NAMES, f"{path.name} imports {names & FORBIDDEN_NAMES}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in FORBIDDEN_CALLS, (
                f"{path.name}:{node.lineno} calls .{node.func.attr}()"
            )
            if node.func.attr == "dumps":
                # One json.dumps in the whole CLI: print_json, over a model's own serialization.
                assert path.name == "text.py", f"{path.name}:{node.lineno} dumps JSON itself"
                (argument,) = node.args
                assert isinstance(argument, ast.Call)
                assert isinstance(argument.func, ast.Attribute)
                assert argument.func.attr == "model_dump", f"text.py:{node.lineno}"
        if isinstance(node, ast.Attribute) and node.attr == "__dict__":
            pytest.fail(f"{path.name}:{node.lineno} serializes an object's __dict__")


def test_every_file_was_checked() -> None:
    assert {p.name for p in FILES} >= {"main.py", "text.py", "audit.py", "demo.py", "local_run.py"}
