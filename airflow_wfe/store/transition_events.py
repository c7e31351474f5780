"""The audit events that describe the store's own writes: transitions, and refused transitions.

Kept apart from :mod:`.sql_store` because they are the trail's view of a state change (what an
auditor reads), while the store is about locking and writing it; the store builds them inside the
state change's transaction, so they commit or roll back together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.core.records import Move, TransitionRecord
from airflow_wfe.exceptions import IllegalTransitionError

__all__ = ["refusal_event", "run_versions", "transition_event"]

#: Run columns that name the versions an event involves.
_VERSION_COLUMNS: Final = ("dag_version_id", "spec_version", "spec_hash")


def run_versions(row: Row[Any] | None, facts: Mapping[str, str]) -> dict[str, str]:
    """The versions a run's events involve: what the run row holds, else what this report says."""
    found = {k: facts[k] for k in _VERSION_COLUMNS if facts.get(k)}
    if row is not None:
        found.update({k: row._mapping[k] for k in _VERSION_COLUMNS if row._mapping[k]})
    return found


def transition_event(
    record: TransitionRecord,
    dag_id: str,
    run_id: str,
    versions: Mapping[str, str],
    *,
    facts: Mapping[str, str] | None = None,
) -> AuditEvent:
    payload: dict[str, Any] = {
        "from_state": record.from_state,
        "to_state": record.to_state,
        "reason": record.reason,
    }
    if record.step_id is not None:
        payload["map_index"] = record.map_index
        payload["try_number"] = record.try_number
    if facts and "run_type" in facts:
        payload["run_type"] = facts["run_type"]
    return AuditEvent(
        type=EventType.STEP_TRANSITION if record.step_id is not None else EventType.RUN_TRANSITION,
        actor=record.actor,
        at=record.at,
        dag_id=dag_id,
        run_id=run_id,
        step_id=record.step_id,
        map_index=record.map_index,
        payload=payload,
        versions=versions,
    )


def refusal_event(
    error: IllegalTransitionError,
    actor: str,
    when: datetime,
    dag_id: str,
    run_id: str,
    step_id: str | None,
    map_index: int | None,
    moves: Sequence[Move],
    versions: Mapping[str, str],
) -> AuditEvent:
    return AuditEvent(
        type=EventType.TRANSITION_REFUSED,
        actor=actor,
        at=when,
        dag_id=dag_id,
        run_id=run_id,
        step_id=step_id,
        map_index=map_index if step_id is not None else None,
        payload={
            "from_state": error.from_state,
            "to_state": error.to_state,
            "requested": [str(m.to_state) for m in moves],
            "reasons": [m.reason for m in moves],
            "error": str(error),
        },
        versions=versions,
    )
