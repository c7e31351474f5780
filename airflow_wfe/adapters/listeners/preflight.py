"""What the listener reads from Airflow for a run's pre-flight, and running it.

Two places start a governed run: the scheduler's ``on_dag_run_running`` (the ORM ``DagRun`` and its
serialized DAG, read in the loop's thread), and, under ``airflow dags test`` where no DAG-run hook
fires, the first task of the run (its ``RuntimeTaskInstance`` and template context). Both hand a
:class:`~airflow_wfe.engine.preflight.RunCandidate` of plain values to
:func:`~airflow_wfe.engine.preflight.run_preflight`, which runs where the store is written (the
scheduler's writer thread, or the task itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_wfe.core.values import plain
from airflow_wfe.engine.preflight import (
    DAG_BUDGET_ARG,
    PreflightResult,
    RunCandidate,
    run_preflight,
)

if TYPE_CHECKING:
    from airflow_wfe.engine.recorder import Recorder

__all__ = ["candidate_of_dag_run", "candidate_of_task", "preflight"]


def _params(dag: Any, conf: Mapping[str, Any] | None) -> tuple[dict[str, Any], str | None, int]:
    """The run's params (the DAG's defaults merged with ``conf``), validated against their schema.

    Airflow's own params classes do it (the SDK's ``ParamsDict`` in a task, the serialized one in the
    scheduler): merge, then ``validate``, as Airflow does when it creates a run.
    """
    params = getattr(dag, "params", None)
    if params is None:
        return {}, None, 0
    count = len(params)
    try:
        if hasattr(params, "deep_merge"):  # the scheduler's serialized params
            merged = params.deep_merge(dict(conf or {}))
        else:  # the Task SDK's ParamsDict: a copy, updated (setting a key validates it)
            import copy

            merged = copy.deepcopy(params)
            merged.update(dict(conf or {}))
        values = merged.validate()
    except Exception as exc:  # noqa: BLE001 - any validation error refuses the run, named
        return {}, f"params do not hold against the DAG's params schema: {exc}", count
    return plain(dict(values)), None, count


def _run_type(dag_run: Any) -> str | None:
    raw = getattr(dag_run, "run_type", None)
    return None if raw is None else str(getattr(raw, "value", raw))


def candidate_of_dag_run(dag_run: Any) -> RunCandidate:
    """The candidate as the scheduler sees it (call in the loop's thread: ORM objects)."""
    dag = getattr(dag_run, "dag", None)
    version = getattr(dag_run, "created_dag_version_id", None)
    definition_error = None
    if dag is None:
        definition_error = f"Airflow has no parsed definition of DAG {dag_run.dag_id!r}"
    elif version is None:
        definition_error = f"the run was created on no known version of DAG {dag_run.dag_id!r}"
    return _candidate(dag_run.dag_id, dag_run.run_id, dag, dag_run, version, definition_error)


def candidate_of_task(ti: Any) -> RunCandidate:
    """The candidate as a task process sees it (``dags test``: no DAG-run hook fired)."""
    dag = getattr(getattr(ti, "task", None), "dag", None)
    try:
        dag_run = ti.get_template_context().get("dag_run")
    except Exception:  # noqa: BLE001 - without a context, the conf is unknown (empty)
        dag_run = None
    definition_error = None if dag is not None else f"task {ti.task_id!r} carries no DAG"
    version = getattr(ti, "dag_version_id", None)
    return _candidate(ti.dag_id, ti.run_id, dag, dag_run, version, definition_error)


def _candidate(
    dag_id: str,
    run_id: str,
    dag: Any,
    dag_run: Any,
    version: Any,
    definition_error: str | None,
) -> RunCandidate:
    """What both sides read the same way: conf, params against their schema, tags, owner, user,
    the DAG's own budget."""
    conf = plain(dict(getattr(dag_run, "conf", None) or {}))
    params, params_error, count = _params(dag, conf) if dag is not None else ({}, None, 0)
    user = getattr(dag_run, "triggering_user_name", None)
    return RunCandidate(
        dag_id=dag_id,
        run_id=run_id,
        run_type=_run_type(dag_run),
        tags=tuple(sorted(getattr(dag, "tags", None) or ())),
        owner=_owner(dag),
        conf=conf,
        triggered_by=str(user) if user else None,
        dag_version=None if version is None else str(version),
        definition_error=definition_error,
        params=params,
        params_error=params_error,
        params_count=count,
        own_policies=_own_policies(dag),
    )


def _own_policies(dag: Any) -> tuple[str, ...]:
    """The policy documents the DAG carries (a YAML workflow's budget), from its ``default_args``:
    the same in the scheduler's serialized DAG and a task's parsed one."""
    default_args = getattr(dag, "default_args", None)
    text = default_args.get(DAG_BUDGET_ARG) if isinstance(default_args, Mapping) else None
    return (text,) if isinstance(text, str) and text else ()


def _owner(dag: Any) -> str | None:
    owner = getattr(dag, "owner", None)
    return str(owner) if owner else None


def preflight(recorder: Recorder, candidate: RunCandidate) -> PreflightResult:
    """Run the pre-flight of ``candidate`` with this process's policies (``[wfe] policy_path``,
    read again only when a file changed) and, for budgets, the store's cost ledger."""
    from airflow_wfe.config import get_settings
    from airflow_wfe.core.policy import load_policy_set_cached

    policy_set = load_policy_set_cached(get_settings().policy_path)
    return run_preflight(
        candidate,
        policy_set,
        lambda: recorder.store.spent(candidate.dag_id, candidate.run_id, tags=candidate.tags),
    )
