"""What the recorder emits for the transitions it has just written.

The recorder calls these right after its store transaction, with the records the write returned.
Per transition the cost is a few UDP sends and one log line: no store read. Only when a run reaches an
end state is there a read, and only while StatsD is on: the run's creation time (when the write did
not just create it) for its duration, and, for a deployment DAG, one query over the DORA window.
Nothing here raises: metrics never fail a transition that is already stored.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from airflow_wfe.core.metrics import names
from airflow_wfe.core.metrics.logfmt import log_kv
from airflow_wfe.core.states import RunState, StepState

if TYPE_CHECKING:
    from airflow_wfe.core.metrics.emitter import Emitter, MetricsSettings
    from airflow_wfe.core.records import TransitionRecord
    from airflow_wfe.store.contract import Store

__all__ = [
    "RUN_END_STATES",
    "emit_run_transitions",
    "emit_step_transitions",
    "is_deployment",
    "mark_deployment",
]

log = logging.getLogger("airflow_wfe.engine.recorder")

#: States in which a run's outcome is known. FAILED counts although compensation may follow: a
#: compensated run reports its failure and, later, its compensation's outcome.
RUN_END_STATES: Final = frozenset(
    {
        RunState.COMPLETED,
        RunState.FAILED,
        RunState.REJECTED,
        RunState.COMPENSATED,
        RunState.COMPENSATION_FAILED,
    }
)
_UNDO_OUTCOME: Final = {"COMPENSATED": "compensated", "COMPENSATION_FAILED": "failed"}


def _ms(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    return max((end - start).total_seconds() * 1000.0, 0.0)


def _since(record: TransitionRecord) -> datetime | None:
    # When the entity entered ``from_state``: set by the store on freshly written records, absent
    # (None) on a record built elsewhere, which then simply has no duration.
    since: datetime | None = getattr(record, "since", None)
    return since


def _settings(emitter: Emitter) -> MetricsSettings | None:
    """The emitter's settings when it actually sends (reads are skipped for a null emitter)."""
    if not getattr(emitter, "active", False):
        return None
    settings: MetricsSettings | None = getattr(emitter, "settings", None)
    return settings


#: DAG ids this process has seen tagged ``deployment`` (the listener tells us at run end, where
#: Airflow hands it the DAG with its tags; the store keeps no tags).
_TAGGED_DEPLOYMENTS: set[str] = set()


def mark_deployment(dag_id: str) -> None:
    """Remember that ``dag_id`` is tagged ``deployment`` (its runs' ends emit DORA gauges)."""
    _TAGGED_DEPLOYMENTS.add(dag_id)


def is_deployment(settings: MetricsSettings, dag_id: str) -> bool:
    """Whether ``dag_id`` is tagged ``deployment`` (as seen by this process's listener) or matches
    ``[wfe] deployment_dags`` (ids or glob patterns)."""
    if dag_id in _TAGGED_DEPLOYMENTS:
        return True
    return any(fnmatch.fnmatchcase(dag_id, pattern) for pattern in settings.deployment_dags)


def emit_run_transitions(
    store: Store,
    emitter: Emitter,
    dag_id: str,
    run_id: str,
    written: Sequence[TransitionRecord],
    actor: str,
) -> None:
    """Counters, timers, log lines (and DORA gauges for a deployment) for a run's new transitions."""
    tags = {"dag_id": dag_id}
    for record in written:
        to_state = record.to_state
        log_kv(
            log,
            logging.INFO,
            "wfe.run.transition",
            dag_id=dag_id,
            run_id=run_id,
            from_state=record.from_state,
            to_state=to_state,
            actor=actor,
            reason=record.reason,
        )
        try:
            emitter.incr(names.run_state(to_state), tags=tags)
            if to_state == RunState.COMPENSATING:
                emitter.incr(names.compensation_run("started"), tags=tags)
            outcome = _UNDO_OUTCOME.get(to_state)
            if outcome is not None:
                emitter.incr(names.compensation_run(outcome), tags=tags)
                elapsed = _ms(_since(record), record.at)
                if elapsed is not None:
                    emitter.timing(names.compensation_duration(outcome), elapsed, tags=tags)
            if to_state in RUN_END_STATES:
                _run_ended(store, emitter, dag_id, run_id, record, written)
        except Exception as exc:  # noqa: BLE001 - the transition is stored; metrics are best effort
            log_kv(
                log, logging.WARNING, "wfe.metrics.error", dag_id=dag_id, run_id=run_id, error=exc
            )


def _run_ended(
    store: Store,
    emitter: Emitter,
    dag_id: str,
    run_id: str,
    record: TransitionRecord,
    written: Sequence[TransitionRecord],
) -> None:
    settings = _settings(emitter)
    if settings is None:
        return
    created = next((r.at for r in written if r.from_state is None), None)
    if created is None:
        created = store.run_created_at(dag_id, run_id)
    elapsed = _ms(created, record.at)
    if elapsed is not None:
        emitter.timing(
            names.run_duration(record.to_state, dag_id), elapsed, tags={"dag_id": dag_id}
        )
    if is_deployment(settings, dag_id):
        # Only the end of a deployment DAG's run needs DORA: the module (and `statistics`) stays out
        # of every other task process (measured ~2 ms of import).
        from airflow_wfe.engine.dora_metrics import emit_dora

        emit_dora(store, emitter, dag_id, window=timedelta(days=settings.dora_window_days))


def emit_step_transitions(
    emitter: Emitter,
    dag_id: str,
    run_id: str,
    step_id: str,
    map_index: int,
    written: Sequence[TransitionRecord],
    actor: str,
    try_number: int | None,
) -> None:
    """Counters, try durations and log lines for a step's new transitions (never reads the store)."""
    tags = {"dag_id": dag_id, "step": step_id}
    for record in written:
        to_state = record.to_state
        log_kv(
            log,
            logging.INFO,
            "wfe.step.transition",
            dag_id=dag_id,
            run_id=run_id,
            step=step_id,
            map_index=map_index,
            from_state=record.from_state,
            to_state=to_state,
            try_number=try_number,
            actor=actor,
            reason=record.reason,
        )
        try:
            emitter.incr(names.step_state(to_state), tags=tags)
            if record.from_state == StepState.RUNNING:
                # Every try ends by leaving RUNNING: its duration, labelled by how it ended.
                elapsed = _ms(_since(record), record.at)
                if elapsed is not None:
                    emitter.timing(names.step_duration(to_state), elapsed, tags=tags)
            if to_state == StepState.COMPENSATING:
                emitter.incr(names.compensation_step("started"), tags=tags)
            outcome = _UNDO_OUTCOME.get(to_state)
            if outcome is not None:
                emitter.incr(names.compensation_step(outcome), tags=tags)
        except Exception as exc:  # noqa: BLE001 - the transition is stored; metrics are best effort
            log_kv(
                log, logging.WARNING, "wfe.metrics.error", dag_id=dag_id, run_id=run_id, error=exc
            )
