"""Manual compensation requests: the request and the run's move to COMPENSATING, in one transaction.

``wfe compensate`` used to be told apart from a failure's compensation by a prefix of the free-text
reason of the run's last transition. The request is now a row of its own, pointing at the transition
it caused: it is open while that transition is the run's latest and the run is COMPENSATING, which is
exactly what ``saga__begin`` needs to know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, ScalarSelect, func, insert, select

from airflow_wfe.core.records import TransitionRecord
from airflow_wfe.core.states import RunState
from airflow_wfe.exceptions import RunNotFoundError
from airflow_wfe.store import rows
from airflow_wfe.store.contract import RunPlan
from airflow_wfe.store.run_writes import Refused, RunWrites, unwrap
from airflow_wfe.store.tables import compensation_request_table, run_table, transition_table

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import CompensationRequest

__all__ = ["CompensationRequests"]


def _latest_run_transition(run_pk: Any) -> ScalarSelect[Any]:
    """The id of the run's latest run-level transition."""
    return (
        select(func.max(transition_table.c.id))
        .where(transition_table.c.run_pk == run_pk, transition_table.c.step_pk.is_(None))
        .scalar_subquery()
    )


class CompensationRequests(RunWrites):
    """Writing a manual compensation request with its run move, and reading an open one."""

    def request_compensation(
        self,
        dag_id: str,
        run_id: str,
        plan: RunPlan,
        *,
        actor: str,
        force: bool = False,
        reason: str | None = None,
        at: datetime | None = None,
    ) -> tuple[CompensationRequest, list[TransitionRecord]]:
        """Record that ``actor`` asked to compensate the run, and apply ``plan`` (its move to
        COMPENSATING, checked against the state machine and audited) in the same transaction.

        ``reason`` is the requester's own words (redacted like every reason); the transition
        carries the plan's reason.

        Raises:
            RunNotFoundError: the run is not in the store.
            IllegalTransitionError: the plan's move is not allowed (the refusal is audited; no
                request is written).
            ValueError: the plan does not bring the run to COMPENSATING.
        """
        clean_reason = self.audit.redactor.text(reason)

        def attempt(connection: Connection) -> list[TransitionRecord] | Refused:
            planned = self._plan_run(connection, dag_id, run_id, plan)
            if planned.row is None:
                raise RunNotFoundError(dag_id, run_id)
            if not planned.moves or planned.moves[-1].to_state != RunState.COMPENSATING:
                raise ValueError("a compensation request moves the run to COMPENSATING")
            when = rows.utc(at) if at is not None else datetime.now(UTC)
            refused = self._check_run(connection, planned, actor, when)
            if refused is not None:
                return refused
            records, events = self._apply_run(connection, planned, actor, when)
            self._insert_request(connection, int(planned.row.id), actor, force, clean_reason, when)
            self.audit.append(connection, events)
            return records

        written = unwrap(self._write(f"{dag_id}/{run_id} compensation request", attempt))
        from airflow_wfe.core.ledger import (
            CompensationRequest,  # cold path: not loaded by task processes (core.ledger)
        )

        request = CompensationRequest(
            dag_id=dag_id,
            run_id=run_id,
            actor=actor,
            at=written[-1].at,
            force=force,
            reason=clean_reason,
        )
        return request, written

    @staticmethod
    def _insert_request(
        connection: Connection,
        run_pk: int,
        actor: str,
        force: bool,
        reason: str | None,
        when: datetime,
    ) -> None:
        # The transition just written is the run's latest: the request points at it.
        transition_pk = connection.execute(select(_latest_run_transition(run_pk))).scalar_one()
        connection.execute(
            insert(compensation_request_table).values(
                run_pk=run_pk,
                transition_pk=transition_pk,
                actor=actor,
                force=force,
                reason=reason,
                at=when,
            )
        )

    def open_compensation_request(self, dag_id: str, run_id: str) -> CompensationRequest | None:
        """The manual request the run is COMPENSATING for, if that is why it is (``None`` for a
        failure's compensation, a request already followed by other moves, or an unknown run)."""
        query = (
            select(
                run_table.c.dag_id,
                run_table.c.run_id,
                compensation_request_table.c.actor,
                compensation_request_table.c.force,
                compensation_request_table.c.reason,
                compensation_request_table.c.at,
            )
            .join(run_table, run_table.c.id == compensation_request_table.c.run_pk)
            .where(
                run_table.c.dag_id == dag_id,
                run_table.c.run_id == run_id,
                run_table.c.state == RunState.COMPENSATING.value,
                compensation_request_table.c.transition_pk
                == _latest_run_transition(run_table.c.id),
            )
        )
        with self._read() as connection:
            row = connection.execute(query).first()
        return None if row is None else rows.compensation_request(row)
