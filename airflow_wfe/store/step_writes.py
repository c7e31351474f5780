"""Writing a step's transitions: one transaction per report, like a run's (see :mod:`.run_writes`);
a task's start writes its run's start check and its step's first moves in one
(:meth:`StepWrites.advance_run_and_step`).

The step row is locked after its run's row (the order every writer takes them in), the plan sees the
step's state and try number, and the moves are checked against the step state machine; a refusal is
audited and raised after commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from airflow_wfe.core.records import TransitionRecord
from airflow_wfe.core.states import STEP_MACHINE, RunState, StepState
from airflow_wfe.exceptions import IllegalTransitionError, RunNotFoundError
from airflow_wfe.store.base import Conflict
from airflow_wfe.store.contract import RunAndStep, RunPlan, StepPlan
from airflow_wfe.store.rows import utc
from airflow_wfe.store.run_writes import Refused, RunWrites, now, unwrap
from airflow_wfe.store.tables import step_table
from airflow_wfe.store.transition_events import refusal_event, run_versions, transition_event

__all__ = ["StepWrites"]

# Statements of the write path, built once (see :mod:`.run_writes`).
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


class StepWrites(RunWrites):
    """Steps of existing runs, each change with its audit events in one transaction."""

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
        when = utc(at) if at is not None else now()
        key = _step_key(dag_id, run_id, step_id, map_index)

        def attempt(connection: Connection) -> list[TransitionRecord] | Refused:
            run = self._lock_run(connection, dag_id, run_id)
            if run is None:
                raise RunNotFoundError(dag_id, run_id)
            return self._advance_step_in(
                connection, run, dag_id, run_id, step_id, map_index, plan, actor, try_number, when
            )

        return unwrap(self._write(key, attempt))

    def advance_run_and_step(
        self,
        dag_id: str,
        run_id: str,
        run_plan: RunPlan,
        step_id: str,
        map_index: int,
        step_plan: StepPlan,
        *,
        step_if: Callable[[RunState | None], bool],
        actor: str,
        try_number: int | None = None,
        at: datetime | None = None,
        facts: Mapping[str, str | None] | None = None,
    ) -> RunAndStep:
        """The run's plan, then the step's when ``step_if`` holds for the run's state after it, in
        one transaction: a task's start costs one write, not two (docs/performance.md).

        Each half writes exactly what :meth:`advance_run` and :meth:`advance_step` would, in that
        order, so the trail holds the same events; the step's events read the run's row as the
        run's half left it.

        Raises:
            IllegalTransitionError: the run's plan is not allowed (only its refusal is written).
        """
        when = utc(at) if at is not None else now()
        known = self._known_facts(facts)

        def attempt(connection: Connection) -> RunAndStep | Refused:
            result, planned, changed = self._advance_run_in(
                connection, dag_id, run_id, run_plan, actor, when, known
            )
            if isinstance(result, Refused):
                return result
            state = RunState(result[-1].to_state) if result else planned.current
            if not step_if(state):
                return RunAndStep(result, state)
            run = self._lock_run(connection, dag_id, run_id) if changed else planned.row
            if run is None:
                raise RunNotFoundError(dag_id, run_id)
            step = self._advance_step_in(
                connection,
                run,
                dag_id,
                run_id,
                step_id,
                map_index,
                step_plan,
                actor,
                try_number,
                when,
            )
            if isinstance(step, Refused):
                return RunAndStep(result, state, [], step.error)
            return RunAndStep(result, state, step)

        outcome = self._write(_step_key(dag_id, run_id, step_id, map_index), attempt)
        if isinstance(outcome, Refused):
            raise outcome.error
        return outcome

    def _advance_step_in(
        self,
        connection: Connection,
        run: Row[Any],
        dag_id: str,
        run_id: str,
        step_id: str,
        map_index: int,
        plan: StepPlan,
        actor: str,
        try_number: int | None,
        when: datetime,
    ) -> list[TransitionRecord] | Refused:
        """:meth:`advance_step`'s work inside the caller's transaction, its run's row locked."""
        key = _step_key(dag_id, run_id, step_id, map_index)
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
            return Refused(exc)
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
                raise Conflict
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
            None if row is None else utc(row.updated_at),
        )
        self.audit.append(
            connection, [transition_event(r, dag_id, run_id, versions) for r in records]
        )
        return records


def _step_key(dag_id: str, run_id: str, step_id: str, map_index: int) -> str:
    suffix = f"[{map_index}]" if map_index >= 0 else ""
    return f"{dag_id}/{run_id}/{step_id}{suffix}"
