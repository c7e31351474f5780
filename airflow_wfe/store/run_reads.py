"""Reading runs: one run with its history, lists and counts, and the small lookups writers need."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, tuple_

from airflow_wfe.core.records import RunRecord, RunSummary, StepRecord, TransitionRecord
from airflow_wfe.core.states import StepState
from airflow_wfe.exceptions import RunNotFoundError, UsageError
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

    def page_runs(
        self,
        *,
        dag_ids: Collection[str] | None = None,
        state: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[RunSummary], str | None]:
        """A page of runs newest first, and the cursor of the next page (``None``: no more).

        Keyset pagination over ``(created_at, id)`` (index ``ix_wfe_run_created_at_id``, or
        ``ix_wfe_run_dag_id_created_at_id`` within DAGs): a page costs the same wherever it is,
        and runs recorded meanwhile neither repeat nor shift the pages that follow. ``dag_ids``
        ``None`` means every DAG and an empty collection none (so a caller allowed on no DAG
        gets an empty page, never everything); ``since`` is inclusive, ``until`` exclusive, both
        on the run's creation time.

        Raises:
            UsageError: ``cursor`` is not one this method returned.
        """
        query = self._filtered(select(run_table), dag_ids, state, since, until)
        if query is None:
            return [], None
        if cursor is not None:
            at, pk = _decode_cursor(cursor)
            query = query.where(tuple_(run_table.c.created_at, run_table.c.id) < (at, pk))
        query = query.order_by(run_table.c.created_at.desc(), run_table.c.id.desc())
        with self._read() as connection:
            found = connection.execute(query.limit(limit + 1)).all()
        following = _encode_cursor(found[limit - 1]) if len(found) > limit else None
        return [rows.run_summary(row) for row in found[:limit]], following

    def count_runs(
        self,
        *,
        dag_id: str | None = None,
        state: str | None = None,
        dag_ids: Collection[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """How many runs match the filters of :meth:`list_runs` and :meth:`page_runs`."""
        if dag_id is not None:
            dag_ids = [dag_id] if dag_ids is None else [d for d in dag_ids if d == dag_id]
        query = self._filtered(
            select(func.count()).select_from(run_table), dag_ids, state, since, until
        )
        return 0 if query is None else int(self._scalar(query))

    @staticmethod
    def _filtered(
        query: Select[Any],
        dag_ids: Collection[str] | None,
        state: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Select[Any] | None:
        """``query`` narrowed by the run-list filters; ``None`` when ``dag_ids`` is empty."""
        if dag_ids is not None:
            wanted = sorted(set(dag_ids))
            if not wanted:
                return None
            column = run_table.c.dag_id
            query = query.where(column == wanted[0] if len(wanted) == 1 else column.in_(wanted))
        if state is not None:
            query = query.where(run_table.c.state == state)
        # In UTC, as stored: SQLite compares the text of the time and would ignore an offset.
        if since is not None:
            query = query.where(run_table.c.created_at >= utc(since))
        if until is not None:
            query = query.where(run_table.c.created_at < utc(until))
        return query

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


def _encode_cursor(row: Any) -> str:
    """The opaque cursor after ``row``: its creation time and primary key, as the store holds
    them (the clients must not build one; its layout may change)."""
    raw = json.dumps([row.created_at.isoformat(), row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, pk = json.loads(raw)
        if not isinstance(pk, int) or isinstance(pk, bool):
            raise TypeError(pk)
        return datetime.fromisoformat(at), pk
    except (binascii.Error, ValueError, TypeError) as exc:
        raise UsageError(
            "not a cursor of this API; pass back the next cursor of a previous page as it was",
            argument="cursor",
        ) from exc
