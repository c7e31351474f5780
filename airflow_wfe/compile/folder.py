"""``load_workflows()``: the one call in a DAG file that turns a folder of YAML workflows into DAGs.

Each file is loaded, validated and compiled on its own, so one broken file never takes the others
down. Its problems (file, line, key path) still reach Airflow's import errors: the broken files are
gathered into one placeholder DAG whose validation fails with their :class:`SpecError`; Airflow
records that failure as the import error of this DAG file and keeps bagging the valid workflows of the
same file. The placeholder itself never becomes a DAG. ``wfe validate`` shows the same problems before
deployment.
"""

from __future__ import annotations

import inspect
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from airflow_wfe.exceptions import SpecError
from airflow_wfe.spec.problems import Problem

__all__ = ["WorkflowLoadWarning", "configured_dags_folder", "load_workflows"]

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
    from airflow_wfe.compile.build import build_dag
    from airflow_wfe.spec.loader import load_spec

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
        target["wfe_workflow_errors"] = _broken_placeholder(error)
    else:
        target.pop("wfe_workflow_errors", None)
    return dags


def _broken_placeholder(error: SpecError) -> Any:
    """A DAG object that fails Airflow's per-DAG validation with ``error``.

    Airflow validates every DAG of a file separately and turns a failure into the file's import
    error without dropping the file's other DAGs: the one way a DAG file can report the problems of
    some workflows while serving the rest. It never passes validation, so it never becomes a DAG.
    """
    from airflow.sdk import DAG

    class BrokenWorkflowFiles(DAG):
        def validate(self) -> None:
            raise error

    return BrokenWorkflowFiles(dag_id="wfe_broken_workflow_files", schedule=None)
