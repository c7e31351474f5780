"""Reading run history for metrics, and writing the business metrics steps record.

Kept apart from the run view (:mod:`.run_reads`): these are reads over many runs for DORA figures and
``wfe report``, plus one append-only table. Every read is one query (or two, bounded by the window),
so emitting DORA gauges at the end of a deployment run stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select

from airflow_wfe.core.records import TransitionRecord
from airflow_wfe.store import rows
from airflow_wfe.store.base import StoreBase, run_pk
from airflow_wfe.store.rows import utc
from airflow_wfe.store.tables import run_metric_table, run_table, step_table, transition_table

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import BusinessMetric, RunHistory, StepHistory

__all__ = ["History"]

_TRANSITION_COLUMNS = (
    transition_table.c.from_state,
    transition_table.c.to_state,
    transition_table.c.at,
    transition_table.c.actor,
    transition_table.c.reason,
)


class History(StoreBase):
    """Run and step histories over a window, first sightings of changes, business metrics."""

    def run_histories(self, dag_ids: Sequence[str] | None, since: datetime) -> list[RunHistory]:
        """Runs that changed state at or after ``since`` (all DAGs when ``dag_ids`` is None),
        oldest first, each with its run-level transitions: one query."""
        from airflow_wfe.core.ledger import (
            RunHistory,  # cold path: not loaded by task processes (core.ledger)
        )

        query = (
            select(
                run_table.c.id,
                run_table.c.dag_id,
                run_table.c.run_id,
                run_table.c.state,
                run_table.c.created_at,
                run_table.c.dag_version_id,
                run_table.c.spec_hash,
                *_TRANSITION_COLUMNS,
            )
            .join(transition_table, transition_table.c.run_pk == run_table.c.id)
            .where(transition_table.c.step_pk.is_(None), run_table.c.updated_at >= since)
            .order_by(run_table.c.created_at, run_table.c.id, transition_table.c.id)
        )
        if dag_ids is not None:
            query = query.where(run_table.c.dag_id.in_(list(dag_ids)))
        runs: dict[int, tuple[Any, list[TransitionRecord]]] = {}
        with self._read() as connection:
            for row in connection.execute(query):
                runs.setdefault(row.id, (row, []))[1].append(rows.transition(row))
        return [
            RunHistory(
                dag_id=row.dag_id,
                run_id=row.run_id,
                state=row.state,
                created_at=utc(row.created_at),
                dag_version_id=row.dag_version_id,
                spec_hash=row.spec_hash,
                transitions=tuple(transitions),
            )
            for row, transitions in runs.values()
        ]

    def version_first_seen(self, dag_id: str, change_keys: Iterable[str]) -> dict[str, datetime]:
        """When each change (spec hash or DAG version) of ``dag_id`` was first run: one query per
        column."""
        keys = sorted(set(change_keys))
        if not keys:
            return {}
        result: dict[str, datetime] = {}
        with self._read() as connection:
            for column in (run_table.c.spec_hash, run_table.c.dag_version_id):
                query = (
                    select(column, func.min(run_table.c.created_at))
                    .where(run_table.c.dag_id == dag_id, column.in_(keys))
                    .group_by(column)
                )
                for key, first in connection.execute(query):
                    when = utc(first)
                    result[key] = min(when, result.get(key, when))
        return result

    def step_histories(self, dag_ids: Sequence[str] | None, since: datetime) -> list[StepHistory]:
        """Steps of runs that changed state at or after ``since``, with their transitions: one
        query."""
        from airflow_wfe.core.ledger import (
            StepHistory,  # cold path: not loaded by task processes (core.ledger)
        )

        query = (
            select(
                step_table.c.id,
                run_table.c.dag_id,
                run_table.c.run_id,
                step_table.c.step_id,
                step_table.c.map_index,
                step_table.c.state,
                *_TRANSITION_COLUMNS,
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
        with self._read() as connection:
            for row in connection.execute(query):
                steps.setdefault(row.id, (row, []))[1].append(rows.transition(row))
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
        """Store one business metric with its run.

        Raises:
            RunNotFoundError: the run is not in the store (it is not governed, or not started yet).
        """

        def attempt(connection: Connection) -> None:
            connection.execute(
                insert(run_metric_table).values(
                    run_pk=run_pk(connection, dag_id, run_id),
                    step_id=step_id,
                    map_index=map_index,
                    name=name,
                    value=float(value),
                    unit=unit,
                    at=utc(at),
                )
            )

        self._write(f"{dag_id}/{run_id}/metric:{name}", attempt)

    def business_metrics(
        self,
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
        with self._read() as connection:
            return [rows.business_metric(row) for row in connection.execute(query)]
