"""Finding the Python behind a spec: ``"module:function"`` callables and operator classes.

A workflow's code usually sits next to its YAML file, so a ``module`` is looked up in the spec's
folder first, then in the DAGs folder, then on ``sys.path`` — the order a DAG author expects. Any
failure becomes a :class:`~airflow_wfe.core.spec.problems.Problem` that names the step and the key.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_wfe.core.spec.problems import KeyPath, Problem

__all__ = ["ResolveError", "resolve_callable", "resolve_class", "search_path"]


class ResolveError(Exception):
    """Internal: carries the problem up to the compiler, which gathers them into a SpecError."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@contextmanager
def search_path(folders: Sequence[Path]) -> Iterator[None]:
    """Put ``folders`` first on ``sys.path`` while resolving, then restore it exactly."""
    saved = list(sys.path)
    sys.path[:0] = [str(folder) for folder in folders if folder.is_dir()]
    try:
        yield
    finally:
        sys.path[:] = saved


def _import(module_name: str, where: KeyPath) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ResolveError(
                Problem(
                    f"module {module_name!r} not found (looked in the spec's folder, the DAGs "
                    "folder and sys.path)",
                    where,
                    code="unresolved",
                )
            ) from None
        raise ResolveError(
            Problem(f"importing {module_name!r} failed: {exc}", where, code="unresolved")
        ) from None
    except Exception as exc:  # noqa: BLE001 - user code may raise anything at import
        raise ResolveError(
            Problem(
                f"importing {module_name!r} failed: {type(exc).__name__}: {exc}",
                where,
                code="unresolved",
            )
        ) from None


def resolve_callable(reference: str, where: KeyPath) -> Callable[..., Any]:
    """The function named by ``"package.module:function"`` (dots after the colon walk attributes)."""
    module_name, _, attribute = reference.partition(":")
    target: Any = _import(module_name, where)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ResolveError(
                Problem(f"{module_name!r} has no attribute {attribute!r}", where, code="unresolved")
            )
        target = getattr(target, part)
    if not callable(target):
        raise ResolveError(Problem(f"{reference!r} is not callable", where, code="unresolved"))
    return target  # type: ignore[no-any-return]


def resolve_class(path: str, where: KeyPath) -> type[Any]:
    """The class named by a dotted path, e.g. an operator class."""
    module_name, _, name = path.rpartition(".")
    module = _import(module_name, where)
    target = getattr(module, name, None)
    if not isinstance(target, type):
        raise ResolveError(
            Problem(f"{path!r} is not a class in {module_name!r}", where, code="unresolved")
        )
    return target
