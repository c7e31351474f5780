"""The SQL state store: the only code that writes runs, steps and transitions.

Each ``advance_*`` call is one transaction that reads the current state under a lock, asks the
caller's plan what to do from there, checks every move against the state machine, and writes the new
state together with its transition rows. Because the plan is evaluated *inside* the transaction, two
processes reporting the same fact (a task listener and the end-of-run reconciliation, or two workers
starting tasks of a new run) cannot both write it: the second one sees the first one's result.

Locking: SQLite transactions start with ``BEGIN IMMEDIATE`` (see :mod:`.engine`), PostgreSQL rows are
read ``FOR UPDATE``; a ``version`` column catches anything else, and an insert race on a new run or
step (unique constraint) is retried as a whole.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import Connection, Engine, Row, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from airflow_wfe.core.audit.events import AuditEvent, SealedEvent
from airflow_wfe.core.records import (
    Move,
    RunRecord,
    RunSummary,
    StepRecord,
    TransitionRecord,
)
from airflow_wfe.core.states import RUN_MACHINE, STEP_MACHINE, RunState, StepState
from airflow_wfe.exceptions import (
    ConcurrentUpdateError,
    IllegalTransitionError,
    RunNotFoundError,
    StoreUnavailableError,
)
from airflow_wfe.store.audit_writer import AuditLog, ChainConflict
from airflow_wfe.store.contract import RunPlan, StepPlan, Store
from airflow_wfe.store.engine import READ_ONLY, begin_write, masked_url
from airflow_wfe.store.schema import ensure_schema, is_sqlite_locked
from airflow_wfe.store.tables import run_table, step_table, transition_table
from airflow_wfe.store.transition_events import refusal_event, run_versions, transition_event

if TYPE_CHECKING:
    from airflow_wfe.core.audit.signing import Signer
    from airflow_wfe.core.audit.verify import Checkpoint, VerifyReport
    from airflow_wfe.store.artifacts import ArtifactRegistry
    from airflow_wfe.store.audit_reader import ArchiveResult
    from airflow_wfe.store.decisions import CostEntry, DecisionRecord
    from airflow_wfe.store.history import BusinessMetric, RunHistory, StepHistory

__all__ = ["RUN_FACTS", "RunPlan", "SqlStore", "StepPlan", "Store"]

_MAX_ATTEMPTS = 12
#: Provenance columns of a run that writers may fill in (first report wins).
RUN_FACTS: Final = ("run_type", "dag_version_id", "spec_version", "spec_hash")
T = TypeVar("T")


class _Conflict(Exception):
    """A concurrent writer changed the row between our read and our write; start over."""


@dataclass(frozen=True)
class _Refused:
    """A plan the state machine refused: the refusal is audited, then raised after commit."""

    error: IllegalTransitionError


#: PostgreSQL SQLSTATEs worth retrying: deadlock detected, serialization failure.
_TRANSIENT_SQLSTATES: Final = frozenset({"40P01", "40001"})


def _is_transient(exc: OperationalError) -> bool:
    """A deadlock, a serialization failure or a busy SQLite file: trying again succeeds."""
    return getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES or is_sqlite_locked(exc)


# Statements of the write path, built once: building and caching-key them per call cost more than
# executing them on SQLite (docs/performance.md).
_LOCK_RUN: Final = (
    select(run_table)
    .where(run_table.c.dag_id == bindparam("b_dag_id"), run_table.c.run_id == bindparam("b_run_id"))
    .with_for_update()
)
_LOCK_STEP: Final = (
    select(step_table)
    .where(
        step_table.c.run_pk == bindparam("b_run_pk"),
        step_table.c.step_id == bindparam("b_step_id"),
        step_table.c.map_index == bindparam("b_map_index"),
    )
    .with_for_update()
)
_INSERT_STEP: Final = insert(step_table).returning(step_table.c.id)
_UPDATE_STEP: Final = (
    update(step_table)
    .where(step_table.c.id == bindparam("b_id"), step_table.c.version == bindparam("b_version"))
    .values(
        state=bindparam("b_state"),
        try_number=bindparam("b_try_number"),
        version=bindparam("b_new_version"),
        updated_at=bindparam("b_updated_at"),
    )
)
_INSERT_TRANSITIONS: Final = insert(transition_table)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class SqlStore:
    """A :class:`Store` on any SQLAlchemy database (SQLite file or PostgreSQL tested).

    Every state change is written together with its audit events, in the same transaction, and
    every text that may carry a secret (reasons, error messages) goes through the audit log's
    redactor first, so the state tables hold no more than the trail does.

    Args:
        url: SQLAlchemy URL. The schema is created on first use of an empty database; an outdated
            one raises :class:`~airflow_wfe.exceptions.SchemaOutdatedError`.
        audit: the audit log (signer, redactor, checkpoints); by default unsigned, names-only
            redaction, which is what unit tests and tools without Airflow get.
    """

    def __init__(self, url: str, *, audit: AuditLog | None = None) -> None:
        self.url = url
        self.audit = audit or AuditLog()
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = ensure_schema(self.url)
        return self._engine

    # -- writing -----------------------------------------------------------------------------

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
        when = _utc(at) if at is not None else _now()
        key = f"{dag_id}/{run_id}"
        known = {k: v for k, v in (facts or {}).items() if v}
        unknown = set(known) - set(RUN_FACTS)
        if unknown:
            raise ValueError(f"unknown run facts: {', '.join(sorted(unknown))}")

        def attempt(connection: Connection) -> list[TransitionRecord] | _Refused:
            row = self._lock_run(connection, dag_id, run_id)
            current = None if row is None else RunState(row.state)
            moves = list(plan(current))
            missing = {} if row is None else {k: v for k, v in known.items() if not row._mapping[k]}
            if not moves:
                if missing and row is not None:
                    self._update_run(connection, row, missing)
                return []
            versions = run_versions(row, known)
            walk: RunState | None = current
            try:
                for move in moves:
                    RUN_MACHINE.check(key, walk, RunState(move.to_state))
                    walk = RunState(move.to_state)
            except IllegalTransitionError as exc:
                refusal = refusal_event(
                    exc, actor, when, dag_id, run_id, None, None, moves, versions
                )
                self.audit.append(connection, [refusal])
                return _Refused(exc)
            state = RunState(moves[-1].to_state)
            if row is None:
                run_pk = self._insert_run(connection, dag_id, run_id, state, when, known)
            else:
                run_pk = row.id
                self._update_run(
                    connection, row, {"state": state.value, "updated_at": when, **missing}
                )
            since = None if row is None else _utc(row.updated_at)
            records = self._insert_transitions(
                connection, run_pk, None, current, moves, when, actor, None, None, -1, since
            )
            self.audit.append(
                connection,
                [
                    transition_event(r, dag_id, run_id, versions, facts=known if i == 0 else None)
                    for i, r in enumerate(records)
                ],
            )
            return records

        return _unwrap(self.write(key, attempt))

    @staticmethod
    def _update_run(connection: Connection, row: Row[Any], values: dict[str, Any]) -> None:
        result = connection.execute(
            update(run_table)
            .where(run_table.c.id == row.id, run_table.c.version == row.version)
            .values(version=row.version + 1, **values)
        )
        if result.rowcount != 1:
            raise _Conflict

    def advance_step(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        map_index: int,
        plan: StepPlan,
        *,
        actor: str,
        try_number: int | None = None,
        at: datetime | None = None,
    ) -> list[TransitionRecord]:
        """Apply ``plan`` to one step of an existing run in one transaction.

        Raises:
            RunNotFoundError: the run is not in the store (record its start first).
            IllegalTransitionError: a move of the plan is not allowed (nothing is written).
        """
        when = _utc(at) if at is not None else _now()
        suffix = f"[{map_index}]" if map_index >= 0 else ""
        key = f"{dag_id}/{run_id}/{step_id}{suffix}"

        def attempt(connection: Connection) -> list[TransitionRecord] | _Refused:
            run = self._lock_run(connection, dag_id, run_id)
            if run is None:
                raise RunNotFoundError(dag_id, run_id)
            row = connection.execute(
                _LOCK_STEP, {"b_run_pk": run.id, "b_step_id": step_id, "b_map_index": map_index}
            ).first()
            current = None if row is None else StepState(row.state)
            current_try = 0 if row is None else int(row.try_number)
            moves = list(plan(current, current_try))
            if not moves:
                return []
            versions = run_versions(run, {})
            walk: StepState | None = current
            try:
                for move in moves:
                    STEP_MACHINE.check(key, walk, StepState(move.to_state))
                    walk = StepState(move.to_state)
            except IllegalTransitionError as exc:
                refusal = refusal_event(
                    exc, actor, when, dag_id, run_id, step_id, map_index, moves, versions
                )
                self.audit.append(connection, [refusal])
                return _Refused(exc)
            state = StepState(moves[-1].to_state)
            new_try = max(current_try, try_number or 0)
            if row is None:
                step_pk = connection.execute(
                    _INSERT_STEP,
                    {
                        "run_pk": run.id,
                        "step_id": step_id,
                        "map_index": map_index,
                        "state": state.value,
                        "try_number": new_try,
                        "version": 1,
                        "created_at": when,
                        "updated_at": when,
                    },
                ).scalar_one()
            else:
                step_pk = row.id
                result = connection.execute(
                    _UPDATE_STEP,
                    {
                        "b_id": row.id,
                        "b_version": row.version,
                        "b_state": state.value,
                        "b_try_number": new_try,
                        "b_new_version": row.version + 1,
                        "b_updated_at": when,
                    },
                )
                if result.rowcount != 1:
                    raise _Conflict
            records = self._insert_transitions(
                connection,
                run.id,
                step_pk,
                current,
                moves,
                when,
                actor,
                try_number,
                step_id,
                map_index,
                None if row is None else _utc(row.updated_at),
            )
            self.audit.append(
                connection, [transition_event(r, dag_id, run_id, versions) for r in records]
            )
            return records

        return _unwrap(self.write(key, attempt))

    def record_events(self, key: str, events: Sequence[AuditEvent]) -> list[SealedEvent]:
        """Write events that describe no state change of ours (a manual request, a change made in
        Airflow, a plugin error) in a transaction of their own."""
        return self.write(key, lambda connection: self.audit.append(connection, events))

    def _lock_run(self, connection: Connection, dag_id: str, run_id: str) -> Row[Any] | None:
        return connection.execute(_LOCK_RUN, {"b_dag_id": dag_id, "b_run_id": run_id}).first()

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

    def write(self, key: str, attempt: Callable[[Connection], T]) -> T:
        """Run ``attempt`` in one write transaction, again after losing a race to another writer.

        The building block of every write of the store (runs, steps, artifacts): ``attempt`` reads
        what it needs under lock and writes; a unique-constraint race, a version conflict, a deadlock
        or a serialization failure rolls it back and runs it again with the other writer's result
        visible. ``key`` names the contended entity in the error when the retries run out.
        """
        for number in range(1, _MAX_ATTEMPTS + 1):
            try:
                with begin_write(self.engine) as connection:
                    return attempt(connection)
            except (_Conflict, ChainConflict, IntegrityError):
                # Lost a race on a new row or a version; the other writer's result is now visible.
                time.sleep(random.uniform(0, 0.005 * number))
            except OperationalError as exc:
                if _is_transient(exc):
                    time.sleep(random.uniform(0, 0.01 * number))
                    continue
                raise StoreUnavailableError(
                    masked_url(self.engine.url), str(exc.orig).splitlines()[0]
                ) from exc
        raise ConcurrentUpdateError(key, _MAX_ATTEMPTS)

    # -- reading -----------------------------------------------------------------------------

    def get_run(self, dag_id: str, run_id: str) -> RunRecord:
        """The run with every transition and every step, oldest first.

        Raises:
            RunNotFoundError: no such run in the store.
        """
        with self.read() as connection:
            run = connection.execute(
                select(run_table).where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
            ).first()
            if run is None:
                raise RunNotFoundError(dag_id, run_id)
            steps = connection.execute(
                select(step_table)
                .where(step_table.c.run_pk == run.id)
                .order_by(step_table.c.created_at, step_table.c.id)
            ).all()
            transitions = connection.execute(
                select(transition_table)
                .where(transition_table.c.run_pk == run.id)
                .order_by(transition_table.c.id)
            ).all()
        by_step: dict[int | None, list[TransitionRecord]] = {}
        step_keys = {s.id: (s.step_id, s.map_index) for s in steps}
        for t in transitions:
            step_id, map_index = step_keys.get(t.step_pk, (None, None))
            by_step.setdefault(t.step_pk, []).append(
                TransitionRecord(
                    from_state=t.from_state,
                    to_state=t.to_state,
                    at=_utc(t.at),
                    actor=t.actor,
                    reason=t.reason,
                    try_number=t.try_number,
                    step_id=step_id,
                    map_index=map_index,
                )
            )
        return RunRecord(
            **_summary_fields(run),
            transitions=tuple(by_step.get(None, ())),
            steps=tuple(
                StepRecord(
                    step_id=s.step_id,
                    map_index=s.map_index,
                    state=s.state,
                    try_number=s.try_number,
                    created_at=_utc(s.created_at),
                    updated_at=_utc(s.updated_at),
                    transitions=tuple(by_step.get(s.id, ())),
                )
                for s in steps
            ),
        )

    def list_runs(
        self,
        *,
        dag_id: str | None = None,
        state: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunSummary]:
        """Runs, newest first, optionally filtered by DAG and state."""
        query = select(run_table).order_by(run_table.c.created_at.desc(), run_table.c.id.desc())
        if dag_id is not None:
            query = query.where(run_table.c.dag_id == dag_id)
        if state is not None:
            query = query.where(run_table.c.state == state)
        with self.read() as connection:
            rows = connection.execute(query.limit(limit).offset(offset)).all()
        return [RunSummary(**_summary_fields(row)) for row in rows]

    def count_runs(self, *, dag_id: str | None = None, state: str | None = None) -> int:
        """How many runs match the filters of :meth:`list_runs`."""
        query = select(func.count()).select_from(run_table)
        if dag_id is not None:
            query = query.where(run_table.c.dag_id == dag_id)
        if state is not None:
            query = query.where(run_table.c.state == state)
        with self.read() as connection:
            return int(connection.execute(query).scalar_one())

    def step_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], StepState]:
        """``{(step_id, map_index): state}`` of one run (empty when the run is unknown)."""
        query = (
            select(step_table.c.step_id, step_table.c.map_index, step_table.c.state)
            .join(run_table, run_table.c.id == step_table.c.run_pk)
            .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
        )
        with self.read() as connection:
            return {
                (row.step_id, row.map_index): StepState(row.state)
                for row in connection.execute(query)
            }

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A reader's connection: no write lock on SQLite, and a driver failure at any point of
        the read becomes :class:`~airflow_wfe.exceptions.StoreUnavailableError`."""
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as connection:
                yield connection
        except OperationalError as exc:
            raise StoreUnavailableError(
                masked_url(self.engine.url), str(exc.orig).splitlines()[0]
            ) from exc

    # -- the rest of the contract (see :mod:`airflow_wfe.store.contract`) -------------------
    # Thin delegations for now: the modules below hold the SQL of each concern.

    def run_created_at(self, dag_id: str, run_id: str) -> datetime | None:
        from airflow_wfe.store import history

        return history.run_created_at(self, dag_id, run_id)

    def record_decision(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        *,
        kind: str,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        details: Mapping[str, Any] | None = None,
    ) -> DecisionRecord:
        from airflow_wfe.store import decisions

        return decisions.record_decision(
            self,
            dag_id,
            run_id,
            step_id,
            kind=kind,
            outcome=outcome,
            reasons=reasons,
            policies=policies,
            actor=actor,
            details=details,
        )

    def decisions(self, dag_id: str, run_id: str) -> list[DecisionRecord]:
        from airflow_wfe.store import decisions

        return decisions.decisions(self, dag_id, run_id)

    def gate_decisions(
        self, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[tuple[str, str]]:
        from airflow_wfe.store import decisions

        return decisions.gate_decisions(self, dag_ids=dag_ids, since=since)

    def record_cost(
        self,
        dag_id: str,
        run_id: str,
        step_id: str,
        amount: float,
        *,
        currency: str = "USD",
        detail: str | None = None,
        tags: Sequence[str] = (),
        actor: str = "worker",
    ) -> CostEntry:
        from airflow_wfe.store import decisions

        return decisions.record_cost(
            self,
            dag_id,
            run_id,
            step_id,
            amount,
            currency=currency,
            detail=detail,
            tags=tags,
            actor=actor,
        )

    def spent(
        self,
        dag_id: str,
        run_id: str | None,
        *,
        tags: Sequence[str] = (),
        now: datetime | None = None,
    ) -> dict[str, Any]:
        from airflow_wfe.store import decisions

        return decisions.spent(self, dag_id, run_id, tags=tags, now=now)

    def cost_by_dag(
        self, *, dag_id: str | None = None, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        from airflow_wfe.store import decisions

        return decisions.cost_by_dag(self, dag_id=dag_id, now=now)

    def ledger_as_metrics(
        self, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[BusinessMetric]:
        from airflow_wfe.store import decisions

        return list(decisions.ledger_as_metrics(self, dag_ids=dag_ids, since=since))

    def known_dag_ids(self) -> list[str]:
        from airflow_wfe.store import history

        return history.known_dag_ids(self)

    def run_histories(self, dag_ids: Sequence[str] | None, since: datetime) -> list[RunHistory]:
        from airflow_wfe.store import history

        return history.run_histories(self, dag_ids, since)

    def step_histories(self, dag_ids: Sequence[str] | None, since: datetime) -> list[StepHistory]:
        from airflow_wfe.store import history

        return history.step_histories(self, dag_ids, since)

    def version_first_seen(self, dag_id: str, change_keys: Iterable[str]) -> dict[str, datetime]:
        from airflow_wfe.store import history

        return history.version_first_seen(self, dag_id, change_keys)

    def add_business_metric(
        self,
        dag_id: str,
        run_id: str,
        *,
        step_id: str | None,
        map_index: int,
        name: str,
        value: float,
        unit: str | None,
        at: datetime,
    ) -> None:
        from airflow_wfe.store import history

        history.add_business_metric(
            self,
            dag_id,
            run_id,
            step_id=step_id,
            map_index=map_index,
            name=name,
            value=value,
            unit=unit,
            at=at,
        )

    def business_metrics(
        self,
        *,
        dag_ids: Sequence[str] | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
    ) -> list[BusinessMetric]:
        from airflow_wfe.store import history

        return history.business_metrics(self, dag_ids=dag_ids, run_id=run_id, since=since)

    def audit_events(
        self,
        *,
        dag_id: str | None = None,
        run_id: str | None = None,
        since: datetime | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[SealedEvent]:
        from airflow_wfe.store import audit_reader

        return audit_reader.events(self, dag_id=dag_id, run_id=run_id, since=since, types=types)

    def verify_audit(self, signer: Signer | None, *, since: datetime | None = None) -> VerifyReport:
        from airflow_wfe.store import audit_reader

        return audit_reader.verify(self, signer, since=since)

    def verify_audit_archive(self, path: Path, signer: Signer | None) -> VerifyReport:
        from airflow_wfe.store import audit_reader

        return audit_reader.verify_archive(path, signer, self)

    def audit_checkpoint(self, signer: Signer, reason: str = "manual") -> Checkpoint | None:
        log = AuditLog(signer=signer, redactor=self.audit.redactor)
        return self.write("audit checkpoint", lambda c: log.checkpoint(c, reason))

    def archive_audit(
        self,
        signer: Signer,
        *,
        older_than: datetime,
        folder: Path,
        actor: str,
        batch_limit: int = 1_000_000,
    ) -> ArchiveResult | None:
        from airflow_wfe.store import audit_reader

        return audit_reader.archive(
            self, signer, older_than=older_than, folder=folder, actor=actor, batch_limit=batch_limit
        )

    @property
    def artifacts(self) -> ArtifactRegistry:
        from airflow_wfe.store.artifacts import ArtifactRegistry

        return ArtifactRegistry(self)


def _summary_fields(row: Row[Any]) -> dict[str, Any]:
    return {
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "state": row.state,
        "run_type": row.run_type,
        "dag_version_id": row.dag_version_id,
        "spec_version": row.spec_version,
        "spec_hash": row.spec_hash,
        "created_at": _utc(row.created_at),
        "updated_at": _utc(row.updated_at),
    }


def _unwrap(result: list[TransitionRecord] | _Refused) -> list[TransitionRecord]:
    if isinstance(result, _Refused):
        raise result.error
    return result
