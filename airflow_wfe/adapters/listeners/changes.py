"""Changes the task hooks do not describe: made by hand in Airflow, triggers, the harness's errors.

A state set by hand through Airflow's UI or REST arrives in the API server as a listener call with no
user; Airflow's own audit log (``action_logging``) names the user, so the change is recorded as theirs.
When the state machine cannot follow such a change, a ``policy.violation`` event says so: the change is
never lost, and never silently turned into a legal-looking history.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_wfe.core.states import StepState

__all__ = [
    "after_manual_run_change",
    "manual_step_change",
    "record_plugin_error",
    "record_trigger",
    "trigger_of",
    "violation",
]

log = logging.getLogger("airflow_wfe.listener")


def record_plugin_error(hook: str, exc: BaseException) -> None:
    """Put the harness's own failure in the trail when the store can still take it."""
    from datetime import UTC, datetime

    from airflow_wfe.core.audit.events import AuditEvent, EventType
    from airflow_wfe.exceptions import IllegalTransitionError, StoreError

    if isinstance(exc, IllegalTransitionError | StoreError):
        return  # refusals are already in the trail; an unreachable store cannot take anything
    try:
        from airflow_wfe.engine.harness import get_runtime_store

        get_runtime_store().record_events(
            "plugin error",
            [
                AuditEvent(
                    type=EventType.PLUGIN_ERROR,
                    actor="plugin",
                    at=datetime.now(UTC),
                    payload={"hook": hook, "error": f"{type(exc).__name__}: {exc}"},
                )
            ],
        )
    except Exception as second:  # noqa: BLE001 - reporting a failure must not fail
        log.warning("wfe could not audit the failure: %s: %s", type(second).__name__, second)


def manual_step_change(
    recorder: Any, ti: Any, target: StepState, reason: str, map_index: int, try_number: int | None
) -> None:
    from sqlalchemy.orm import object_session

    from airflow_wfe.adapters.listeners.airflow_log import latest_user, sync_soon

    session = object_session(ti)
    user = latest_user(session, ti.dag_id, ti.run_id, ti.task_id)
    actor = f"user:{user}" if user else "user"
    written = recorder.reconcile_step(
        ti.dag_id,
        ti.run_id,
        ti.task_id,
        target,
        actor=actor,
        reason=f"set by hand in Airflow: {reason}",
        map_index=map_index,
        try_number=try_number,
    )
    sync_soon(recorder.store, session, force=True)
    if written:
        return
    current = recorder.store.step_states(ti.dag_id, ti.run_id).get((ti.task_id, map_index))
    if current is not None and current is not target:
        violation(
            recorder,
            ti.dag_id,
            ti.run_id,
            actor,
            f"step {ti.task_id} set to {target} by hand in Airflow while {current} in the "
            "state machine",
            step_id=ti.task_id,
            map_index=map_index,
        )


def after_manual_run_change(
    recorder: Any, dag_id: str, run_id: str, succeeded: bool, actor: str, written: list[Any]
) -> None:
    from airflow_wfe.adapters.listeners.airflow_log import sync_soon

    sync_soon(recorder.store, force=True)
    if written:
        return
    state = recorder.store.get_run(dag_id, run_id).state
    wanted = "COMPLETED" if succeeded else "FAILED"
    if state != wanted:
        violation(
            recorder,
            dag_id,
            run_id,
            actor,
            f"run set to {'success' if succeeded else 'failed'} by hand in Airflow while {state} "
            "in the state machine",
        )


def violation(
    recorder: Any,
    dag_id: str,
    run_id: str,
    actor: str,
    detail: str,
    *,
    step_id: str | None = None,
    map_index: int | None = None,
) -> None:
    from datetime import UTC, datetime

    from airflow_wfe.core.audit.events import AuditEvent, EventType

    recorder.store.record_events(
        f"{dag_id}/{run_id} violation",
        [
            AuditEvent(
                type=EventType.VIOLATION,
                actor=actor,
                at=datetime.now(UTC),
                dag_id=dag_id,
                run_id=run_id,
                step_id=step_id,
                map_index=map_index,
                payload={"rule": "changes follow the state machine", "detail": detail},
            )
        ],
    )
    log.warning(
        "wfe violation dag_id=%s run_id=%s actor=%s detail=%s", dag_id, run_id, actor, detail
    )


def trigger_of(dag_run: Any) -> dict[str, Any] | None:
    """Who triggered the run and with which parameters, read from the ORM object (the hook's
    thread), or ``None`` when no user did."""
    user = getattr(dag_run, "triggering_user_name", None)
    if not user:
        return None
    conf = getattr(dag_run, "conf", None) or {}
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "user": str(user),
        "run_type": str(getattr(dag_run.run_type, "value", dag_run.run_type)),
        "conf": dict(conf) if isinstance(conf, dict) else str(conf),
    }


def record_trigger(recorder: Any, trigger: dict[str, Any]) -> None:
    """A run someone triggered (:func:`trigger_of`): who, and with which parameters (secrets
    redacted on write)."""
    from datetime import UTC, datetime

    from airflow_wfe.core.audit.events import AuditEvent, EventType

    recorder.store.record_events(
        f"{trigger['dag_id']}/{trigger['run_id']} trigger",
        [
            AuditEvent(
                type=EventType.AIRFLOW_CHANGE,
                actor=f"user:{trigger['user']}",
                at=datetime.now(UTC),
                dag_id=trigger["dag_id"],
                run_id=trigger["run_id"],
                payload={
                    "change": "run triggered",
                    "run_type": trigger["run_type"],
                    "conf": trigger["conf"],
                },
            )
        ],
    )
