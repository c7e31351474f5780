"""Changes made in Airflow itself (UI and REST), taken from Airflow's own audit log into our trail.

Airflow's API server writes a ``log`` row for every write request (``action_logging``): who (the
authenticated user), what (the endpoint: ``patch_task_instance``, ``clear_dag_run``,
``delete_dag_run``, ``trigger_dag_run`` ...), on which DAG and run, with the request body already
masked. Some of these changes fire no listener at all (a cleared task, a deleted run), and those that
do (a state set by hand) do not say who made them. So we import those rows, for governed DAGs only,
as ``airflow.change`` events with the user as actor; the store writes a cursor (the last imported row
id) in the same transaction as the events (:meth:`~airflow_wfe.store.contract.Store.import_events`),
so an import never duplicates nor skips a row. This module reads Airflow's own ``log`` table and
builds the events; every ``wfe_*`` table is the store's.

The import runs in the API server right after a manual change, in the scheduler at most every
:data:`SYNC_INTERVAL_S`, and before the ``wfe audit`` commands read the trail.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

# Airflow's metadata database (its ``log`` table) is read through Airflow's own SQLAlchemy models.
from sqlalchemy import select

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.core.states import RunState

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from airflow_wfe.store.contract import Store

__all__ = ["SOURCE", "SYNC_INTERVAL_S", "latest_user", "sync_airflow_log", "sync_soon"]

log = logging.getLogger("airflow_wfe.listener")

SOURCE: Final = "airflow.log"
SYNC_INTERVAL_S: Final = 10.0
#: Request methods of changes (reads are not logged as changes).
_WRITES: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_BATCH: Final = 500
#: Run states in which deleting the run loses work in progress (a violation).
_IN_FLIGHT: Final = frozenset(
    {
        RunState.CREATED,
        RunState.VALIDATED,
        RunState.RUNNING,
        RunState.WAITING_APPROVAL,
        RunState.COMPENSATING,
    }
)
_last_sync = {"at": 0.0}
_sync_lock = threading.Lock()


def _method(extra: str | None) -> str | None:
    try:
        data = json.loads(extra or "{}")
    except ValueError:
        return None
    return str(data.get("method")) if isinstance(data, dict) and data.get("method") else None


def _extra(extra: str | None) -> Any:
    try:
        data = json.loads(extra or "{}")
    except ValueError:
        return extra
    if isinstance(data, dict):
        data.pop("method", None)
    return data


def _events_for(rows: list[Any], store: Store) -> list[AuditEvent]:
    governed = store.governed_dag_ids({r.dag_id for r in rows if r.dag_id})
    chosen = [r for r in rows if r.dag_id in governed and _method(r.extra) in _WRITES]
    deleted = {(r.dag_id, r.run_id) for r in chosen if r.event == "delete_dag_run" and r.run_id}
    states = store.run_states(deleted)
    events: list[AuditEvent] = []
    for row in chosen:
        payload: dict[str, Any] = {
            "change": row.event,
            "method": _method(row.extra),
            "task_id": row.task_id,
            "request": _extra(row.extra),
            "airflow_log_id": row.id,
        }
        dttm = row.dttm or datetime.now(UTC)
        actor = f"user:{row.owner}" if row.owner else "user:anonymous"
        events.append(
            AuditEvent(
                type=EventType.AIRFLOW_CHANGE,
                actor=actor,
                at=dttm,
                dag_id=row.dag_id,
                run_id=row.run_id,
                step_id=row.task_id,
                map_index=row.map_index if row.task_id else None,
                payload=payload,
            )
        )
        state = states.get((row.dag_id, row.run_id))
        if state is not None and RunState(state) in _IN_FLIGHT:
            events.append(
                AuditEvent(
                    type=EventType.VIOLATION,
                    actor=actor,
                    at=dttm,
                    dag_id=row.dag_id,
                    run_id=row.run_id,
                    payload={
                        "rule": "a governed run is deleted only when it is not in flight",
                        "detail": f"run deleted in Airflow while {state} in the state machine",
                        "airflow_log_id": row.id,
                    },
                )
            )
    return events


def sync_airflow_log(store: Store, session: Session | None = None) -> int:
    """Import Airflow's new change rows for governed DAGs; returns how many events were written.

    ``session``: an Airflow session to read with (the scheduler must pass its own); without one a
    short session is opened.
    """
    from airflow.models.log import Log

    start = store.sync_position(SOURCE)
    query = select(Log).where(Log.id > start).order_by(Log.id).limit(_BATCH)
    if session is not None:
        rows = list(session.execute(query).scalars())
    else:
        from airflow.utils.session import create_session

        with create_session() as own:
            rows = list(own.execute(query).scalars())
            own.expunge_all()
    if not rows:
        return 0
    events = _events_for(rows, store)
    last = max(r.id for r in rows)
    return store.import_events(SOURCE, start=start, position=last, events=events)


def sync_soon(store: Store, session: Session | None = None, *, force: bool = False) -> None:
    """:func:`sync_airflow_log`, at most every :data:`SYNC_INTERVAL_S` per process unless forced;
    never raises (a failed import is retried by the next call)."""
    now = time.monotonic()
    with _sync_lock:
        if not force and now - _last_sync["at"] < SYNC_INTERVAL_S:
            return
        _last_sync["at"] = now
    try:
        sync_airflow_log(store, session)
    except Exception as exc:  # noqa: BLE001 - the import is retried; never break the caller
        log.warning("wfe could not import Airflow's audit log: %s: %s", type(exc).__name__, exc)


def latest_user(
    session: Session | None, dag_id: str, run_id: str, task_id: str | None = None
) -> str | None:
    """The user of the most recent write request on this run (or task) in Airflow's log."""
    from airflow.models.log import Log

    query = (
        select(Log.owner, Log.extra)
        .where(Log.dag_id == dag_id, Log.run_id == run_id, Log.owner.is_not(None))
        .order_by(Log.id.desc())
        .limit(20)
    )
    if task_id is not None:
        query = query.where((Log.task_id == task_id) | (Log.task_id.is_(None)))
    if session is not None:
        rows = session.execute(query).all()
    else:
        from airflow.utils.session import create_session

        with create_session() as own:
            rows = own.execute(query).all()
    for owner, extra in rows:
        if _method(extra) in _WRITES:
            return str(owner)
    return None
