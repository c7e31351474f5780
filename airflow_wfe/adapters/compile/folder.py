"""``load_workflows()`` turns a folder of YAML workflows into DAGs; ``report_workflow_errors()``
turns the folder's broken files into an Airflow import error.

Airflow deactivates every DAG of a DAG file that has an import error, so the two jobs live in two DAG
files: the loader's file serves every valid workflow (a broken one is skipped, logged and raised as a
warning), and the reporter's file, which defines no DAG, carries the broken files' problems (file,
line, key path) as its import error. One broken workflow therefore never takes the others down, and
still shows up where Airflow users look for broken DAGs.
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from airflow_wfe.core.spec.problems import Problem
from airflow_wfe.exceptions import SpecError

__all__ = [
    "WorkflowLoadWarning",
    "configured_dags_folder",
    "load_workflows",
    "report_workflow_errors",
]

log = logging.getLogger("airflow_wfe.workflows")

PATTERNS = ("*.yaml", "*.yml")


class WorkflowLoadWarning(UserWarning):
    """A workflow file in the folder could not be compiled; the message says where and why."""


def configured_dags_folder() -> Path | None:
    """Airflow's DAGs folder, the second place a step's module is looked up."""
    value = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER")
    if value:
        return Path(value)
    try:
        from airflow.sdk import conf

        return Path(str(conf.get("core", "dags_folder")))
    except Exception:  # noqa: BLE001 - the DAGs folder only widens the search path
        return None


def load_workflows(
    folder: str | os.PathLike[str] = ".", *, namespace: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Compile every ``*.yaml`` / ``*.yml`` workflow in ``folder`` into an Airflow DAG.

    Args:
        folder: the workflows' folder; a relative path is relative to the calling DAG file.
        namespace: where to put the DAGs (default: the caller's module globals, where Airflow's
            DagBag looks for them).

    Returns:
        ``{dag_id: dag}`` of the workflows that compiled.

    Example:
        In ``dags/workflows.py``::

            from airflow_wfe import load_workflows

            load_workflows("workflows")
    """
    from airflow_wfe.adapters.compile.build import build_dag
    from airflow_wfe.core.spec.loader import load_spec

    caller = inspect.currentframe()
    caller = caller.f_back if caller is not None else None
    if caller is None:  # pragma: no cover - only without frame support
        base, caller_globals = Path.cwd(), {}
    else:
        base = Path(caller.f_code.co_filename).resolve().parent
        caller_globals = caller.f_globals
    target = namespace if namespace is not None else caller_globals
    root = Path(folder)
    root = root if root.is_absolute() else base / root
    dags: dict[str, Any] = {}
    problems: list[Problem] = []
    files = sorted({path for pattern in PATTERNS for path in root.glob(pattern)})
    dags_folder = configured_dags_folder()
    for path in files:
        try:
            dag = build_dag(load_spec(path), dags_folder=dags_folder)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if dag.dag_id in dags:
            problems.append(
                Problem(
                    f"DAG id {dag.dag_id!r} is already defined by another workflow file",
                    ("name",),
                    code="duplicate-dag-id",
                    file=str(path),
                )
            )
            continue
        dags[dag.dag_id] = dag
        target[f"wfe_workflow__{dag.dag_id}"] = dag
    if problems:
        error = SpecError(str(root), problems)
        log.error("wfe workflows not loaded: %s", error)
        warnings.warn(str(error), WorkflowLoadWarning, stacklevel=2)
    return dags


def report_workflow_errors(folder: str | os.PathLike[str] = ".") -> None:
    """Raise the problems of every broken workflow file in ``folder`` as one error.

    Put it alone in its own DAG file, next to the one that calls :func:`load_workflows`: Airflow then
    shows the problems as that file's import error, while the valid workflows keep running.

    Raises:
        SpecError: listing every problem of every broken file, each with its file and line.

    Example:
        In ``dags/workflow_errors.py`` (a DAG file that defines no DAG)::

            from airflow_wfe import report_workflow_errors

            report_workflow_errors("workflows")
    """
    from airflow_wfe.adapters.compile.check import check_file

    caller = inspect.currentframe()
    caller = caller.f_back if caller is not None else None
    base = Path(caller.f_code.co_filename).resolve().parent if caller else Path.cwd()
    root = Path(folder)
    root = root if root.is_absolute() else base / root
    dags_folder = configured_dags_folder()
    problems: list[Problem] = []
    for path in sorted({path for pattern in PATTERNS for path in root.glob(pattern)}):
        problems.extend(check_file(path, dags_folder=dags_folder).errors)
    if problems:
        raise SpecError(str(root), problems)
