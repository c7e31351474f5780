"""Reading runs: one run with its history, lists and counts, and the small lookups writers need."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, tuple_

from airflow_wfe.core.records import RunRecord, RunSummary, StepRecord, TransitionRecord
from airflow_wfe.core.states import StepState
from airflow_wfe.exceptions import RunNotFoundError
from airflow_wfe.store import rows
from airflow_wfe.store.base import StoreBase
from airflow_wfe.store.rows import utc
from airflow_wfe.store.tables import run_table, step_table, transition_table

__all__ = ["RunReads"]


class RunReads(StoreBase):
    """The run view (``wfe runs show``), run lists, and lookups by DAG and run."""

    def get_run(self, dag_id: str, run_id: str) -> RunRecord:
        """The run with every transition and every step, oldest first.

        Raises:
            RunNotFoundError: no such run in the store.
        """
        with self._read() as connection:
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
                rows.transition(t, step_id=step_id, map_index=map_index)
            )
        return RunRecord(
            **rows.run_summary_fields(run),
            transitions=tuple(by_step.get(None, ())),
            steps=tuple(
                StepRecord(
                    step_id=s.step_id,
                    map_index=s.map_index,
                    state=s.state,
                    try_number=s.try_number,
                    created_at=utc(s.created_at),
                    updated_at=utc(s.updated_at),
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
        with self._read() as connection:
            found = connection.execute(query.limit(limit).offset(offset)).all()
        return [rows.run_summary(row) for row in found]

    def count_runs(self, *, dag_id: str | None = None, state: str | None = None) -> int:
        """How many runs match the filters of :meth:`list_runs`."""
        query = select(func.count()).select_from(run_table)
        if dag_id is not None:
            query = query.where(run_table.c.dag_id == dag_id)
        if state is not None:
            query = query.where(run_table.c.state == state)
        return int(self._scalar(query))

    def step_states(self, dag_id: str, run_id: str) -> dict[tuple[str, int], StepState]:
        """``{(step_id, map_index): state}`` of one run (empty when the run is unknown)."""
        query = (
            select(step_table.c.step_id, step_table.c.map_index, step_table.c.state)
            .join(run_table, run_table.c.id == step_table.c.run_pk)
            .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
        )
        with self._read() as connection:
            return {
                (row.step_id, row.map_index): StepState(row.state)
                for row in connection.execute(query)
            }

    def run_created_at(self, dag_id: str, run_id: str) -> datetime | None:
        """When the run was created (``None`` for an unknown run)."""
        value = self._scalar(
            select(run_table.c.created_at).where(
                run_table.c.dag_id == dag_id, run_table.c.run_id == run_id
            )
        )
        return None if value is None else utc(value)

    def known_dag_ids(self) -> list[str]:
        """Every DAG id with at least one recorded run."""
        query = select(run_table.c.dag_id).distinct().order_by(run_table.c.dag_id)
        with self._read() as connection:
            return [row[0] for row in connection.execute(query)]

    def governed_dag_ids(self, dag_ids: Iterable[str]) -> set[str]:
        """Which of ``dag_ids`` have at least one recorded run (are governed here)."""
        wanted = sorted(set(dag_ids))
        if not wanted:
            return set()
        query = select(run_table.c.dag_id).where(run_table.c.dag_id.in_(wanted)).distinct()
        with self._read() as connection:
            return {row.dag_id for row in connection.execute(query)}

    def run_states(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """``{(dag_id, run_id): state}`` of the recorded runs among ``keys`` (one query)."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        query = select(run_table.c.dag_id, run_table.c.run_id, run_table.c.state).where(
            tuple_(run_table.c.dag_id, run_table.c.run_id).in_(wanted)
        )
        with self._read() as connection:
            return {(row.dag_id, row.run_id): row.state for row in connection.execute(query)}
