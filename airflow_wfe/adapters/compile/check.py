"""Everything ``wfe validate`` checks in a workflow file, as one list of located problems.

Three layers, each only when the one before it passed: the file parses into a valid spec (schema,
with file/line/key path), the spec is a sound workflow (graph and governance rules), and the code it
names can be imported (callables, operator classes), exactly as the DAG loader will need it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from airflow_wfe.adapters.compile.resolve import (
    ResolveError,
    resolve_callable,
    resolve_class,
    search_path,
)
from airflow_wfe.core.spec.loader import LoadedSpec, load_spec
from airflow_wfe.core.spec.models import OperatorSpec
from airflow_wfe.core.spec.problems import Problem, Severity
from airflow_wfe.core.spec.validate import validate_spec
from airflow_wfe.exceptions import SpecError

__all__ = ["FileCheck", "check_file", "resolution_problems"]


@dataclass(frozen=True)
class FileCheck:
    """The outcome for one file: the loaded spec (when it parsed) and every problem found."""

    path: Path
    loaded: LoadedSpec | None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)


def resolution_problems(loaded: LoadedSpec, dags_folder: Path | None) -> list[Problem]:
    """Import every callable and operator class the spec names; report the ones that fail."""
    problems: list[Problem] = []
    folders = [loaded.path.parent] + ([dags_folder] if dags_folder else [])
    with search_path(folders):
        for step_id, step in loaded.spec.steps.items():
            for key in ("run", "compensate"):
                target = getattr(step, key)
                try:
                    if isinstance(target, OperatorSpec):
                        resolve_class(target.operator, ("steps", step_id, key, "operator"))
                    elif isinstance(target, str):
                        resolve_callable(target, ("steps", step_id, key))
                except ResolveError as exc:
                    problems.append(exc.problem)
    return problems


def _located(loaded: LoadedSpec, problems: list[Problem]) -> tuple[Problem, ...]:
    file = str(loaded.path)
    ordered = sorted(problems, key=lambda p: p.severity is not Severity.ERROR)
    return tuple(p.located(file, loaded.line_of(p.path)) for p in ordered)


def check_file(
    path: str | Path, *, dags_folder: Path | None = None, imports: bool = True
) -> FileCheck:
    """Check one workflow file completely; never raises for a bad file, only reports."""
    file = Path(path)
    try:
        loaded = load_spec(file)
    except SpecError as exc:
        return FileCheck(file, None, tuple(exc.problems))
    problems = validate_spec(loaded.spec)
    if imports and not any(p.severity is Severity.ERROR for p in problems):
        problems += resolution_problems(loaded, dags_folder)
    return FileCheck(file, loaded, _located(loaded, problems))
