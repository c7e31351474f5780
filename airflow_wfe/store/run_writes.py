"""Writing runs and their transitions: the recorder's one write path (steps: :mod:`.step_writes`).

Each ``advance_*`` call is one transaction that reads the current state under a lock, asks the
caller's plan what to do from there, checks every move against the state machine, and writes the new
state together with its transition rows and their audit events. Because the plan is evaluated
*inside* the transaction, two processes reporting the same fact (a task listener and the end-of-run
reconciliation, or two workers starting tasks of a new run) cannot both write it: the second one sees
the first one's result.

A run's move is planned (:meth:`RunWrites._plan_run`) and applied (:meth:`RunWrites._apply_run`) as
two halves so that a fact that causes the move (a gate's decision, a manual compensation request) is
written between them, in the same transaction: both or neither.

Locking: SQLite transactions start with ``BEGIN IMMEDIATE`` (see :mod:`.engine`), PostgreSQL rows are
read ``FOR UPDATE``; a ``version`` column catches anything else, and an insert race on a new run or
step (unique constraint) is retried as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from airflow_wfe.core.audit.events import AuditEvent, SealedEvent
from airflow_wfe.core.records import Move, TransitionRecord
from airflow_wfe.core.states import RUN_MACHINE, RunState
from airflow_wfe.exceptions import IllegalTransitionError
from airflow_wfe.store.base import Conflict, StoreBase
from airflow_wfe.store.contract import RunPlan
from airflow_wfe.store.rows import utc
from airflow_wfe.store.tables import run_table, transition_table
from airflow_wfe.store.transition_events import refusal_event, run_versions, transition_event

__all__ = ["RUN_FACTS", "PlannedRun", "Refused", "RunWrites", "now", "unwrap"]

#: Provenance columns of a run that writers may fill in (first report wins).
RUN_FACTS: Final = ("run_type", "dag_version_id", "spec_version", "spec_hash")


@dataclass(frozen=True)
class Refused:
    """A plan the state machine refused: the refusal is audited, then raised after commit."""

    error: IllegalTransitionError


@dataclass(frozen=True)
class PlannedRun:
    """A run's locked row and the checked moves of a plan, not written yet."""

    dag_id: str
    run_id: str
    row: Row[Any] | None
    current: RunState | None
    moves: list[Move]
    versions: dict[str, str] = field(default_factory=dict)


def unwrap(result: list[TransitionRecord] | Refused) -> list[TransitionRecord]:
    """The transitions written, or the refusal raised now that its audit event is committed."""
    if isinstance(result, Refused):
        raise result.error
    return result


# Statements of the write path, built once: building and caching-key them per call cost more than
# executing them on SQLite (docs/performance.md).
_LOCK_RUN: Final = (
    select(run_table)
    .where(run_table.c.dag_id == bindparam("b_dag_id"), run_table.c.run_id == bindparam("b_run_id"))
    .with_for_update()
)
_INSERT_TRANSITIONS: Final = insert(transition_table)


def now() -> datetime:
    """The time of a write that names none."""
    return datetime.now(UTC)


class RunWrites(StoreBase):
    """Runs and their transitions, each change with its audit events in one transaction.

    Every text that may carry a secret (reasons, error messages) goes through the audit log's
    redactor first, so the state tables hold no more than the trail does.
    """

    def advance_run(
        self,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        *,
        actor: str,
        at: datetime | None = None,
        facts: Mapping[str, str | None] | None = None,
    ) -> list[TransitionRecord]:
        """Apply ``plan`` to the run in one transaction; returns the transitions written.

        ``facts`` (keys of :data:`RUN_FACTS`) fill the run's provenance columns that are still
        empty: the first report wins, even when the plan has no move to make.

        Raises:
            IllegalTransitionError: a move of the plan is not allowed (nothing is written).
        """
        when = utc(at) if at is not None else now()
        known = self._known_facts(facts)

        def attempt(connection: Connection) -> list[TransitionRecord] | Refused:
            return self._advance_run_in(connection, dag_id, run_id, plan, actor, when, known)[0]

        return unwrap(self._write(f"{dag_id}/{run_id}", attempt))

    @staticmethod
    def _known_facts(facts: Mapping[str, str | None] | None) -> dict[str, str]:
        """The facts reported with a value; an unknown key is a caller's bug."""
        known = {k: v for k, v in (facts or {}).items() if v}
        unknown = set(known) - set(RUN_FACTS)
        if unknown:
            raise ValueError(f"unknown run facts: {', '.join(sorted(unknown))}")
        return known

    def _advance_run_in(
        self,
        connection: Connection,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        actor: str,
        when: datetime,
        known: Mapping[str, str],
    ) -> tuple[list[TransitionRecord] | Refused, PlannedRun, bool]:
        """:meth:`advance_run`'s work inside the caller's transaction: the result, the planned run
        (its row as locked, before any write) and whether the run's row was changed."""
        planned = self._plan_run(connection, dag_id, run_id, plan, known)
        row = planned.row
        missing = {} if row is None else {k: v for k, v in known.items() if not row._mapping[k]}
        if not planned.moves:
            if missing and row is not None:
                self._update_run(connection, row, missing)
            return [], planned, bool(missing) and row is not None
        refused = self._check_run(connection, planned, actor, when)
        if refused is not None:
            return refused, planned, False
        records, events = self._apply_run(connection, planned, actor, when, known, missing)
        self.audit.append(connection, events)
        return records, planned, True

    def record_events(self, key: str, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        """Write events that describe no state change of ours (a change made in Airflow, a plugin
        error, a violation) in a transaction of their own."""
        return self._write(key, lambda connection: self.audit.append(connection, events))

    # -- the two halves of a run's move, for writers that add a fact in between --------------

    def _plan_run(
        self,
        connection: Connection,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        known: Mapping[str, str] | None = None,
    ) -> PlannedRun:
        """Lock the run's row and ask ``plan`` for its moves (not checked, not written yet)."""
        row = self._lock_run(connection, dag_id, run_id)
        current = None if row is None else RunState(row.state)
        moves = list(plan(current))
        versions = run_versions(row, dict(known or {})) if moves else {}
        return PlannedRun(dag_id, run_id, row, current, moves, versions)

    def _check_run(
        self, connection: Connection, planned: PlannedRun, actor: str, when: datetime
    ) -> Refused | None:
        """Check the moves against the run state machine; a refusal is audited in this
        transaction (and nothing else should be written in it)."""
        key = f"{planned.dag_id}/{planned.run_id}"
        walk: RunState | None = planned.current
        try:
            for move in planned.moves:
                RUN_MACHINE.check(key, walk, RunState(move.to_state))
                walk = RunState(move.to_state)
        except IllegalTransitionError as exc:
            refusal = refusal_event(
                exc,
                actor,
                when,
                planned.dag_id,
                planned.run_id,
                None,
                None,
                planned.moves,
                planned.versions,
            )
            self.audit.append(connection, [refusal])
            return Refused(exc)
        return None

    def _apply_run(
        self,
        connection: Connection,
        planned: PlannedRun,
        actor: str,
        when: datetime,
        known: Mapping[str, str] | None = None,
        missing: Mapping[str, str] | None = None,
    ) -> tuple[list[TransitionRecord], list[AuditEvent]]:
        """Write checked, non-empty moves; returns the transitions and their audit events, for the
        caller to append after anything else it writes (the chain head is the last lock taken)."""
        row, moves = planned.row, planned.moves
        state = RunState(moves[-1].to_state)
        if row is None:
            run_pk = self._insert_run(
                connection, planned.dag_id, planned.run_id, state, when, known or {}
            )
        else:
            run_pk = row.id
            values = {"state": state.value, "updated_at": when, **(missing or {})}
            self._update_run(connection, row, values)
        since = None if row is None else utc(row.updated_at)
        records = self._insert_transitions(
            connection, run_pk, None, planned.current, moves, when, actor, None, None, -1, since
        )
        events = [
            transition_event(
                r, planned.dag_id, planned.run_id, planned.versions, facts=known if i == 0 else None
            )
            for i, r in enumerate(records)
        ]
        return records, events

    # -- rows --------------------------------------------------------------------------------

    @staticmethod
    def _lock_run(connection: Connection, dag_id: str, run_id: str) -> Row[Any] | None:
        return connection.execute(_LOCK_RUN, {"b_dag_id": dag_id, "b_run_id": run_id}).first()

    @staticmethod
    def _update_run(connection: Connection, row: Row[Any], values: Mapping[str, Any]) -> None:
        result = connection.execute(
            update(run_table)
            .where(run_table.c.id == row.id, run_table.c.version == row.version)
            .values(version=row.version + 1, **values)
        )
        if result.rowcount != 1:
            raise Conflict

    @staticmethod
    def _insert_run(
        connection: Connection,
        dag_id: str,
        run_id: str,
        state: RunState,
        when: datetime,
        facts: Mapping[str, str],
    ) -> int:
        return int(
            connection.execute(
                insert(run_table)
                .values(
                    dag_id=dag_id,
                    run_id=run_id,
                    state=state.value,
                    version=1,
                    created_at=when,
                    updated_at=when,
                    **facts,
                )
                .returning(run_table.c.id)
            ).scalar_one()
        )

    def _insert_transitions(
        self,
        connection: Connection,
        run_pk: int,
        step_pk: int | None,
        current: str | None,
        moves: Sequence[Move],
        when: datetime,
        actor: str,
        try_number: int | None,
        step_id: str | None,
        map_index: int,
        since: datetime | None,
    ) -> list[TransitionRecord]:
        records: list[TransitionRecord] = []
        rows: list[dict[str, Any]] = []
        previous = current
        redact = self.audit.redactor.text
        for move in moves:
            reason = redact(move.reason)
            rows.append(
                {
                    "run_pk": run_pk,
                    "step_pk": step_pk,
                    "from_state": None if previous is None else str(previous),
                    "to_state": str(move.to_state),
                    "at": when,
                    "actor": actor,
                    "reason": reason,
                    "try_number": try_number,
                }
            )
            records.append(
                TransitionRecord(
                    from_state=None if previous is None else str(previous),
                    to_state=str(move.to_state),
                    at=when,
                    actor=actor,
                    reason=reason,
                    try_number=try_number,
                    step_id=step_id,
                    map_index=map_index if step_id is not None else None,
                    since=since,
                )
            )
            previous = move.to_state
            since = when
        connection.execute(_INSERT_TRANSITIONS, rows)
        return records
