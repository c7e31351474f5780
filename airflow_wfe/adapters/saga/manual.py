"""``wfe compensate``: compensating a run by hand, through the run's own saga tasks.

The request is recorded first, as a fact of its own together with the run's move to COMPENSATING (the
requesting user as actor, one store transaction), then the run's saga tasks are cleared the way
Airflow's own "clear task instances" does, so Airflow's scheduler runs them again as ordinary tasks in
the grid. ``saga__begin`` reads the open request from the store
(:meth:`~airflow_wfe.store.contract.Store.open_compensation_request`) and compensates every step that
succeeded, even though no step failed.
"""

from __future__ import annotations

import getpass
from typing import Any

from airflow_wfe.adapters.saga.tasks import SAGA_BEGIN, is_saga_task
from airflow_wfe.core.states import RunState
from airflow_wfe.exceptions import DagNotFoundError, StateError

__all__ = [
    "AUTO_REASON_PREFIX",
    "MANUAL_REASON_PREFIX",
    "NO_AUTO_COMPENSATION_TAG",
    "compensate_failed_run",
    "request_compensation",
]

#: Start of the reason of a manual request's transition: what a person reads in the run's history
#: (the saga recognises the request by its stored fact, not by this text).
MANUAL_REASON_PREFIX = "manual compensation requested"
#: Start of the reason of an automatic request (a run Airflow failed without running its saga:
#: its ``dagrun_timeout``, or marked failed by hand).
AUTO_REASON_PREFIX = "automatic compensation"
#: A DAG tag that turns automatic compensation off for the DAG (``wfe compensate`` still works).
NO_AUTO_COMPENSATION_TAG = "wfe:no-auto-compensation"


def _saga_tasks(dag_id: str, dag: Any = None) -> list[str]:
    """The saga task ids of ``dag`` (default: the DAG's latest version); an error when it has none."""
    if dag is None:
        from airflow.models.dagbag import DBDagBag
        from airflow.utils.session import create_session

        with create_session() as session:
            latest = DBDagBag(load_op_links=False).get_latest_version_of_dag(
                dag_id, session=session
            )
            if latest is None:
                raise DagNotFoundError(dag_id, "is not in Airflow's database (is it parsed?)")
            task_ids = list(latest.task_ids)
    else:
        task_ids = list(dag.task_ids)
    saga_tasks = sorted(task_id for task_id in task_ids if is_saga_task(task_id))
    if SAGA_BEGIN not in saga_tasks:
        raise StateError(
            f"DAG {dag_id!r} declares no compensation: nothing can undo its steps "
            "(declare them with compensate() or `compensate:` in YAML)"
        )
    return saga_tasks


def _clear(
    dag_id: str, run_id: str, task_ids: list[str], *, dag: Any = None, session: Any = None
) -> None:
    """Clear the task instances the way Airflow's "clear" does (the run is queued again).

    ``dag`` and ``session``: the run's DAG and an open Airflow session to clear through (the API
    server's request, whose own uncommitted change to the run a second session would wait on);
    without them the DAG's latest version is cleared through a session of its own.
    """
    if dag is not None and session is not None:
        dag.clear(task_ids=task_ids, run_id=run_id, session=session)
        return
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as own:
        latest = DBDagBag(load_op_links=False).get_latest_version_of_dag(dag_id, session=own)
        if latest is None:
            raise DagNotFoundError(dag_id, "disappeared from Airflow's database")
        latest.clear(task_ids=task_ids, run_id=run_id, session=own)


def compensate_failed_run(
    recorder: Any,
    dag_id: str,
    run_id: str,
    *,
    why: str,
    actor: str = "scheduler",
    dag: Any = None,
    session: Any = None,
) -> bool:
    """Compensate a run Airflow failed without its saga running (its ``dagrun_timeout``, or a
    person marking it failed), the way ``wfe compensate`` does: the request and the run's move
    FAILED → COMPENSATING recorded in one transaction, then the saga tasks cleared so the scheduler
    runs them (clearing resets the run's start, so the saga gets a whole ``dagrun_timeout`` of its
    own).

    Called where Airflow failed the run: on the scheduler's writer thread (a timeout), or inside
    the API server's request that marked it failed, whose ``session`` and run ``dag`` the clear
    goes through so it commits with the request. Only for a DAG whose saga exists and that does not
    carry :data:`NO_AUTO_COMPENSATION_TAG`. Returns whether a compensation was requested: nothing is
    when the run is not FAILED (already compensating or compensated: never twice) or no step
    succeeded (nothing to undo).
    """
    from airflow_wfe.core.states import StepState

    if RunState(recorder.store.get_run(dag_id, run_id).state) is not RunState.FAILED:
        return False
    states = recorder.store.step_states(dag_id, run_id)
    if StepState.SUCCEEDED not in states.values():
        return False
    tasks = _saga_tasks(dag_id, dag)
    reason = f"{AUTO_REASON_PREFIX}: {why}"
    recorder.request_compensation(dag_id, run_id, actor=actor, reason=reason, note=why)
    _clear(dag_id, run_id, tasks, dag=dag, session=session)
    return True


def request_compensation(
    dag_id: str, run_id: str, *, force: bool = False, reason: str | None = None
) -> dict[str, Any]:
    """Record a manual compensation request for the run and have Airflow run its saga again.

    Raises:
        RunNotFoundError: the run was never recorded.
        StateError: the run completed (without ``force``), or is already compensated/compensating,
            or its DAG declares no compensation (nothing the caller asks can change that: a 409).
        WfeError: the DAG is unknown to Airflow.
    """
    from airflow_wfe.engine.harness import get_recorder

    recorder = get_recorder()
    state = RunState(recorder.store.get_run(dag_id, run_id).state)
    if state is RunState.COMPLETED and not force:
        raise StateError(
            f"run {dag_id}/{run_id} COMPLETED: compensating it undoes a successful run; "
            "pass --force if that is what you want"
        )
    if state not in (RunState.FAILED, RunState.COMPLETED):
        raise StateError(
            f"run {dag_id}/{run_id} is {state}; manual compensation applies to a FAILED run "
            "(or a COMPLETED one with --force)"
        )
    actor = f"user:{getpass.getuser()}"
    why = f"{MANUAL_REASON_PREFIX} by {actor}" + (" (--force)" if force else "")
    if reason:
        why += f": {reason}"
    tasks = _saga_tasks(dag_id)
    # Record first: saga__begin may start the moment its task instance is cleared, and it must find
    # the request there.
    recorder.request_compensation(dag_id, run_id, actor=actor, reason=why, force=force, note=reason)
    _clear(dag_id, run_id, tasks)
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "state": "COMPENSATING",
        "actor": actor,
        "reason": why,
        "cleared": tasks,
    }
