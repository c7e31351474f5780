"""Reading run history for metrics, and writing the business metrics steps record.

Kept apart from :mod:`.sql_store` (which owns state changes): these are reads over many runs for DORA
figures and ``wfe report``, plus one append-only table. Every read is one query (or two, bounded by
the window), so emitting DORA gauges at the end of a deployment run stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from airflow_wfe.core.records import TransitionRecord
from airflow_wfe.exceptions import RunNotFoundError
from airflow_wfe.store.sql_store import SqlStore
from airflow_wfe.store.tables import run_metric_table, run_table, step_table, transition_table

__all__ = [
    "BusinessMetric",
    "RunHistory",
    "StepHistory",
    "add_business_metric",
    "business_metrics",
    "known_dag_ids",
    "run_created_at",
    "run_histories",
    "step_histories",
    "version_first_seen",
]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class RunHistory:
    """A run with its run-level transitions, as DORA and the report need it."""

    dag_id: str
    run_id: str
    state: str
    created_at: datetime
    dag_version_id: str | None
    spec_hash: str | None
    transitions: tuple[TransitionRecord, ...] = ()

    @property
    def change_key(self) -> str | None:
        """What identifies the change this run ships: the spec hash, else Airflow's DAG version."""
        return self.spec_hash or self.dag_version_id


@dataclass(frozen=True)
class StepHistory:
    """One step (task, map index) of one run with its transitions."""

    dag_id: str
    run_id: str
    step_id: str
    map_index: int
    state: str
    transitions: tuple[TransitionRecord, ...] = field(default=())


@dataclass(frozen=True)
class BusinessMetric:
    """One value a step recorded for its run."""

    dag_id: str
    run_id: str
    step_id: str | None
    map_index: int
    name: str
    value: float
    unit: str | None
    at: datetime


def _sql(store: Any) -> SqlStore | None:
    return store if isinstance(store, SqlStore) else None


def run_created_at(store: Any, dag_id: str, run_id: str) -> datetime | None:
    """When the run was created (``None`` for an unknown run or a store that cannot say)."""
    sql = _sql(store)
    if sql is None:
        return None
    query = select(run_table.c.created_at).where(
        run_table.c.dag_id == dag_id, run_table.c.run_id == run_id
    )
    with sql.read() as connection:
        value = connection.execute(query).scalar_one_or_none()
    return None if value is None else _utc(value)


def known_dag_ids(store: SqlStore) -> list[str]:
    """Every DAG id with at least one recorded run."""
    query = select(run_table.c.dag_id).distinct().order_by(run_table.c.dag_id)
    with store.read() as connection:
        return [row[0] for row in connection.execute(query)]


def run_histories(
    store: SqlStore, dag_ids: Sequence[str] | None, since: datetime
) -> list[RunHistory]:
    """Runs that changed state at or after ``since`` (all DAGs when ``dag_ids`` is None), oldest
    first, each with its run-level transitions: one query."""
    query = (
        select(
            run_table.c.id,
            run_table.c.dag_id,
            run_table.c.run_id,
            run_table.c.state,
            run_table.c.created_at,
            run_table.c.dag_version_id,
            run_table.c.spec_hash,
            transition_table.c.from_state,
            transition_table.c.to_state,
            transition_table.c.at,
            transition_table.c.actor,
            transition_table.c.reason,
        )
        .join(transition_table, transition_table.c.run_pk == run_table.c.id)
        .where(transition_table.c.step_pk.is_(None), run_table.c.updated_at >= since)
        .order_by(run_table.c.created_at, run_table.c.id, transition_table.c.id)
    )
    if dag_ids is not None:
        query = query.where(run_table.c.dag_id.in_(list(dag_ids)))
    runs: dict[int, tuple[Any, list[TransitionRecord]]] = {}
    with store.read() as connection:
        for row in connection.execute(query):
            entry = runs.setdefault(row.id, (row, []))
            entry[1].append(
                TransitionRecord(
                    from_state=row.from_state,
                    to_state=row.to_state,
                    at=_utc(row.at),
                    actor=row.actor,
                    reason=row.reason,
                )
            )
    return [
        RunHistory(
            dag_id=row.dag_id,
            run_id=row.run_id,
            state=row.state,
            created_at=_utc(row.created_at),
            dag_version_id=row.dag_version_id,
            spec_hash=row.spec_hash,
            transitions=tuple(transitions),
        )
        for row, transitions in runs.values()
    ]


def version_first_seen(
    store: SqlStore, dag_id: str, change_keys: Iterable[str]
) -> dict[str, datetime]:
    """When each change (spec hash or DAG version) of ``dag_id`` was first run: one query."""
    keys = sorted(set(change_keys))
    if not keys:
        return {}
    result: dict[str, datetime] = {}
    with store.read() as connection:
        for column in (run_table.c.spec_hash, run_table.c.dag_version_id):
            query = (
                select(column, func.min(run_table.c.created_at))
                .where(run_table.c.dag_id == dag_id, column.in_(keys))
                .group_by(column)
            )
            for key, first in connection.execute(query):
                when = _utc(first)
                result[key] = min(when, result.get(key, when))
    return result


def step_histories(
    store: SqlStore, dag_ids: Sequence[str] | None, since: datetime
) -> list[StepHistory]:
    """Steps of runs that changed state at or after ``since``, with their transitions: one query."""
    query = (
        select(
            step_table.c.id,
            run_table.c.dag_id,
            run_table.c.run_id,
            step_table.c.step_id,
            step_table.c.map_index,
            step_table.c.state,
            transition_table.c.from_state,
            transition_table.c.to_state,
            transition_table.c.at,
            transition_table.c.actor,
            transition_table.c.reason,
            transition_table.c.try_number,
        )
        .join(run_table, run_table.c.id == step_table.c.run_pk)
        .join(transition_table, transition_table.c.step_pk == step_table.c.id)
        .where(run_table.c.updated_at >= since)
        .order_by(step_table.c.id, transition_table.c.id)
    )
    if dag_ids is not None:
        query = query.where(run_table.c.dag_id.in_(list(dag_ids)))
    steps: dict[int, tuple[Any, list[TransitionRecord]]] = {}
    with store.read() as connection:
        for row in connection.execute(query):
            entry = steps.setdefault(row.id, (row, []))
            entry[1].append(
                TransitionRecord(
                    from_state=row.from_state,
                    to_state=row.to_state,
                    at=_utc(row.at),
                    actor=row.actor,
                    reason=row.reason,
                    try_number=row.try_number,
                    step_id=row.step_id,
                    map_index=row.map_index,
                )
            )
    return [
        StepHistory(
            dag_id=row.dag_id,
            run_id=row.run_id,
            step_id=row.step_id,
            map_index=row.map_index,
            state=row.state,
            transitions=tuple(transitions),
        )
        for row, transitions in steps.values()
    ]


def add_business_metric(
    store: SqlStore,
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
    """Store one business metric with its run.

    Raises:
        RunNotFoundError: the run is not in the store (it is not governed, or not started yet).
    """

    def attempt(connection: Connection) -> None:
        run_pk = connection.execute(
            select(run_table.c.id).where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
        ).scalar_one_or_none()
        if run_pk is None:
            raise RunNotFoundError(dag_id, run_id)
        connection.execute(
            insert(run_metric_table).values(
                run_pk=run_pk,
                step_id=step_id,
                map_index=map_index,
                name=name,
                value=float(value),
                unit=unit,
                at=_utc(at),
            )
        )

    store.write(f"{dag_id}/{run_id}/metric:{name}", attempt)


def business_metrics(
    store: SqlStore,
    *,
    dag_ids: Sequence[str] | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
) -> list[BusinessMetric]:
    """Business metrics, oldest first, filtered by DAGs, one run, or a start time."""
    query = (
        select(
            run_table.c.dag_id,
            run_table.c.run_id,
            run_metric_table.c.step_id,
            run_metric_table.c.map_index,
            run_metric_table.c.name,
            run_metric_table.c.value,
            run_metric_table.c.unit,
            run_metric_table.c.at,
        )
        .join(run_table, run_table.c.id == run_metric_table.c.run_pk)
        .order_by(run_metric_table.c.at, run_metric_table.c.id)
    )
    if dag_ids is not None:
        query = query.where(run_table.c.dag_id.in_(list(dag_ids)))
    if run_id is not None:
        query = query.where(run_table.c.run_id == run_id)
    if since is not None:
        query = query.where(run_metric_table.c.at >= since)
    with store.read() as connection:
        return [
            BusinessMetric(
                dag_id=row.dag_id,
                run_id=row.run_id,
                step_id=row.step_id,
                map_index=row.map_index,
                name=row.name,
                value=float(row.value),
                unit=row.unit,
                at=_utc(row.at),
            )
            for row in connection.execute(query)
        ]
