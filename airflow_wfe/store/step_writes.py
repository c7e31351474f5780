"""Writing a step's transitions: one transaction per report, like a run's (see :mod:`.run_writes`).

The step row is locked after its run's row (the order every writer takes them in), the plan sees the
step's state and try number, and the moves are checked against the step state machine; a refusal is
audited and raised after commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Connection, bindparam, insert, select, update

from airflow_wfe.core.records import TransitionRecord
from airflow_wfe.core.states import STEP_MACHINE, StepState
from airflow_wfe.exceptions import IllegalTransitionError, RunNotFoundError
from airflow_wfe.store.base import Conflict
from airflow_wfe.store.contract import StepPlan
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
        suffix = f"[{map_index}]" if map_index >= 0 else ""
        key = f"{dag_id}/{run_id}/{step_id}{suffix}"

        def attempt(connection: Connection) -> list[TransitionRecord] | Refused:
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

        return unwrap(self._write(key, attempt))
