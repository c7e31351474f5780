"""What the hooks read from Airflow's objects: a run's provenance, sensitive parameters, TI states.

Everything here reads; nothing writes to the store. The DAG-run hooks read in the scheduler's thread
(its session and objects are only valid there) and hand plain values to the writer
(:mod:`airflow_wfe.adapters.listeners.process`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["dag_run_facts", "mask_and_run_facts", "task_instance_states"]


def _template_context(ti: Any) -> Mapping[str, Any] | None:
    try:
        context = ti.get_template_context()
    except Exception:  # noqa: BLE001 - an ORM task instance has no template context
        return None
    return context if isinstance(context, Mapping) else None


def mask_and_run_facts(
    ti: Any, sensitive_values: Callable[[Any], list[str]]
) -> dict[str, str | None]:
    """Register sensitive run parameters with Airflow's masker; return the run's provenance.

    One template context serves both (building it processes the DAG's params, ~1 ms): run type,
    DAG version and, for a compiled workflow, its spec version and hash. Airflow masks connection
    passwords and sensitive variables itself, but not a parameter or run conf value named like a
    password (``sensitive_values`` finds them at any depth); once registered, it is masked in the task's logs and in any error the harness records.
    """
    context = _template_context(ti)
    run_type: str | None = None
    if context is not None:
        dag_run = context.get("dag_run")
        raw = getattr(dag_run, "run_type", None)
        run_type = None if raw is None else str(getattr(raw, "value", raw))
        _mask_sensitive(context, sensitive_values)
    version = getattr(ti, "dag_version_id", None)
    facts: dict[str, str | None] = {
        "run_type": run_type,
        "dag_version_id": None if version is None else str(version),
    }
    from airflow_wfe.adapters.compile.provenance import spec_info

    info = spec_info(ti.dag_id)
    if info is not None:
        facts["spec_version"] = info.version
        facts["spec_hash"] = info.content_hash
    return facts


def _mask_sensitive(
    context: Mapping[str, Any], sensitive_values: Callable[[Any], list[str]]
) -> None:
    # At any depth: ``params.db.password`` or ``conf.cfg.secret`` is as secret as a top-level
    # ``password``, and a task may quote it in a cost, a metric unit or an error. A ParamsDict
    # converts to its resolved values.
    values: list[str] = []
    for source in (context.get("params"), getattr(context.get("dag_run"), "conf", None)):
        if isinstance(source, Mapping):
            values += sensitive_values(dict(source))
    if values:
        from airflow.sdk.log import mask_secret

        for value in values:
            mask_secret(value)


def dag_run_facts(dag_run: Any) -> dict[str, str | None]:
    """Provenance of the run as the scheduler sees it: run type and the DAG version it was created on."""
    run_type = getattr(dag_run, "run_type", None)
    version = getattr(dag_run, "created_dag_version_id", None)
    return {
        "run_type": None if run_type is None else str(getattr(run_type, "value", run_type)),
        "dag_version_id": None if version is None else str(version),
    }


def task_instance_states(dag_run: Any) -> list[tuple[str, int, str, int]]:
    """(task_id, map_index, state, try_number) of every TI of the run.

    In the scheduler the run is attached to the loop's session, and the query must use that very
    session: opening another one there detaches the DagRun and kills the scheduler loop. Under
    ``dags test`` the run object is already detached, so a short session of our own is safe; either
    way the query only selects columns and never touches the DagRun object.
    """
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    query = select(
        TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state, TaskInstance.try_number
    ).where(TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id)
    session = object_session(dag_run)
    if session is not None:
        rows = session.execute(query).all()
    else:
        from airflow.utils.session import create_session

        with create_session() as own_session:
            rows = own_session.execute(query).all()
    from airflow_wfe.adapters.saga.tasks import is_saga_task

    result = []
    for task_id, map_index, state, try_number in rows:
        value = getattr(state, "value", state)
        if value is None or is_saga_task(task_id):
            continue
        result.append(
            (task_id, -1 if map_index is None else int(map_index), str(value), int(try_number or 0))
        )
    return result
