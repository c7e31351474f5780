"""Gate decisions and approvals in the store, each with its audit event, and the run move it causes.

A decision is one transaction holding the fact and its audit event, like the state changes in
:mod:`.run_writes`. When the decision moves the run (a deny rejects it, a needs-approval parks it, an
approval resumes it), :meth:`Decisions.record_decision_and_advance` writes the decision, the run's
checked transitions and all their audit events in that one transaction: a crash or a refused move
between the two can no longer leave a decision whose run never moved, or a move with no decision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.core.records import TransitionRecord
from airflow_wfe.exceptions import RunNotFoundError
from airflow_wfe.store import rows
from airflow_wfe.store.base import run_pk
from airflow_wfe.store.contract import RunPlan
from airflow_wfe.store.run_writes import Refused, RunWrites, unwrap
from airflow_wfe.store.tables import audit_event_table, decision_table, run_table

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import DecisionRecord

__all__ = ["Decisions"]

#: How bad each outcome is: a policy's own outcome in a decision is the worst of its reasons.
_SEVERITY = {"allow": 0, "needs_approval": 1, "deny": 2}


class _Draft:
    """A decision ready to write: redacted once, outside the transaction (retries reuse it)."""

    def __init__(
        self,
        redact: Any,
        step_id: str,
        kind: str,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        details: Mapping[str, Any] | None,
    ) -> None:
        self.at = datetime.now(UTC)
        self.step_id, self.kind, self.outcome, self.actor = step_id, kind, outcome, actor
        self.reasons = [redact(dict(r)) for r in reasons]
        self.details = redact(dict(details or {}))
        self.policies = dict(policies)

    def write(self, connection: Connection, pk: int, dag_id: str, run_id: str) -> AuditEvent:
        """Insert the row; returns its audit event for the caller to append."""
        connection.execute(
            insert(decision_table).values(
                run_pk=pk,
                step_id=self.step_id,
                kind=self.kind,
                outcome=self.outcome,
                reasons=json.dumps(self.reasons, sort_keys=True, default=str),
                policies=json.dumps(self.policies, sort_keys=True),
                details=json.dumps(self.details, sort_keys=True, default=str),
                actor=self.actor,
                at=self.at,
            )
        )
        return AuditEvent(
            type=(
                EventType.POLICY_DECISION
                if self.kind in ("policy", "preflight")
                else EventType.APPROVAL
            ),
            actor=self.actor,
            at=self.at,
            dag_id=dag_id,
            run_id=run_id,
            step_id=self.step_id,
            payload={"outcome": self.outcome, "reasons": self.reasons, **self.details},
            versions={f"policy:{name}": v for name, v in self.policies.items()},
        )

    def record(self) -> DecisionRecord:
        from airflow_wfe.core.ledger import (
            DecisionRecord,  # cold path: not loaded by task processes (core.ledger)
        )

        return DecisionRecord(
            self.step_id,
            self.kind,
            self.outcome,
            tuple(self.reasons),
            self.policies,
            self.actor,
            self.at,
        )


class Decisions(RunWrites):
    """Decisions and approvals: written with their audit event, alone or with the run's move."""

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
        """Store a decision or an approval with its audit event (one transaction).

        Raises:
            RunNotFoundError: the run is not in the store.
        """
        draft = _Draft(
            self.audit.redactor, step_id, kind, outcome, reasons, policies, actor, details
        )

        def attempt(connection: Connection) -> None:
            event = draft.write(connection, run_pk(connection, dag_id, run_id), dag_id, run_id)
            self.audit.append(connection, [event])

        self._write(f"{dag_id}/{run_id}/{step_id} decision", attempt)
        return draft.record()

    def record_decision_and_advance(
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
        run_plan: RunPlan,
        details: Mapping[str, Any] | None = None,
    ) -> tuple[DecisionRecord, list[TransitionRecord]]:
        """Store a decision and the run's move it causes in one transaction: both or neither.

        ``run_plan`` is evaluated against the run's state under lock, like
        :meth:`~.RunWrites.advance_run`'s plan (an empty plan records the decision alone). The
        decision's event comes first in the trail, then the transitions, all by ``actor``.

        Raises:
            RunNotFoundError: the run is not in the store (nothing is written).
            IllegalTransitionError: a move of the plan is not allowed; the refusal is audited, the
                decision is *not* written.
        """
        draft = _Draft(
            self.audit.redactor, step_id, kind, outcome, reasons, policies, actor, details
        )
        when = draft.at

        def attempt(connection: Connection) -> list[TransitionRecord] | Refused:
            planned = self._plan_run(connection, dag_id, run_id, run_plan)
            if planned.row is None:
                raise RunNotFoundError(dag_id, run_id)
            refused = self._check_run(connection, planned, actor, when)
            if refused is not None:
                return refused
            events = [draft.write(connection, int(planned.row.id), dag_id, run_id)]
            records: list[TransitionRecord] = []
            if planned.moves:
                records, moved = self._apply_run(connection, planned, actor, when)
                events.extend(moved)
            self.audit.append(connection, events)
            return records

        written = unwrap(self._write(f"{dag_id}/{run_id}/{step_id} decision", attempt))
        return draft.record(), written

    def record_preflight(
        self,
        dag_id: str,
        run_id: str,
        *,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str,
        run_plan: RunPlan,
        details: Mapping[str, Any] | None = None,
        facts: Mapping[str, str | None] | None = None,
        step_id: str = "pre-flight",
        with_decision: bool = True,
    ) -> list[TransitionRecord]:
        """A run's pre-flight: its moves (from nothing or CREATED) and its decision, in one
        transaction, creating the run when it is new; only when ``run_plan`` moves the run, so a
        pre-flight that lost a race to another (scheduler and first task) writes nothing.
        ``with_decision=False``: the moves alone (their reasons still carry every check).

        Raises:
            IllegalTransitionError: a move of the plan is not allowed (audited; nothing else).
        """
        draft = _Draft(
            self.audit.redactor, step_id, "preflight", outcome, reasons, policies, actor, details
        )
        when = draft.at
        known = {k: v for k, v in (facts or {}).items() if v}

        def attempt(connection: Connection) -> list[TransitionRecord] | Refused:
            planned = self._plan_run(connection, dag_id, run_id, run_plan, known)
            row = planned.row
            if not planned.moves:
                missing = (
                    {} if row is None else {k: v for k, v in known.items() if not row._mapping[k]}
                )
                if missing and row is not None:
                    self._update_run(connection, row, missing)
                return []
            refused = self._check_run(connection, planned, actor, when)
            if refused is not None:
                return refused
            missing = {} if row is None else {k: v for k, v in known.items() if not row._mapping[k]}
            records, events = self._apply_run(connection, planned, actor, when, known, missing)
            if with_decision:
                pk = run_pk(connection, dag_id, run_id)
                events.append(draft.write(connection, pk, dag_id, run_id))
            self.audit.append(connection, events)
            return records

        return unwrap(self._write(f"{dag_id}/{run_id} pre-flight", attempt))

    def record_parse_decision(
        self,
        dag_id: str,
        fingerprint: str,
        *,
        outcome: str,
        reasons: Sequence[Mapping[str, Any]],
        policies: Mapping[str, str],
        actor: str = "dag-processor",
    ) -> bool:
        """The parse-time policies' decision on one version of a DAG, as an audit event
        (``policy.decision``, no run), once per ``fingerprint`` (of the DAG's facts and the
        policies' versions); returns whether it was written (``False``: already there).
        """
        step_id = f"parse:{fingerprint[:40]}"
        redact = self.audit.redactor
        event = AuditEvent(
            type=EventType.POLICY_DECISION,
            actor=actor,
            at=datetime.now(UTC),
            dag_id=dag_id,
            run_id=None,
            step_id=step_id,
            payload={
                "stage": "parse",
                "outcome": outcome,
                "reasons": [redact(dict(r)) for r in reasons],
                "fingerprint": fingerprint,
            },
            versions={f"policy:{name}": v for name, v in policies.items()},
        )

        def attempt(connection: Connection) -> bool:
            known = connection.execute(
                select(audit_event_table.c.seq)
                .where(
                    audit_event_table.c.dag_id == dag_id,
                    audit_event_table.c.run_id.is_(None),
                    audit_event_table.c.step_id == step_id,
                )
                .limit(1)
            ).first()
            if known is not None:
                return False
            self.audit.append(connection, [event])
            return True

        return bool(self._write(f"{dag_id} parse-time decision", attempt))

    def decisions(self, dag_id: str, run_id: str) -> list[DecisionRecord]:
        """The run's decisions and approvals, oldest first (empty for an unknown run)."""
        query = (
            select(decision_table)
            .join(run_table, run_table.c.id == decision_table.c.run_pk)
            .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
            .order_by(decision_table.c.id)
        )
        with self._read() as connection:
            return [rows.decision(row) for row in connection.execute(query)]

    def gate_decisions(
        self, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[tuple[str, str]]:
        """``(policy, outcome)`` of every gate decision in the window: one pair per policy that
        took part, with the outcome that policy's own rules reached (what ``wfe report`` ranks)."""
        query = (
            select(run_table.c.dag_id, decision_table.c.reasons, decision_table.c.policies)
            .join(run_table, run_table.c.id == decision_table.c.run_pk)
            .where(decision_table.c.kind == "policy")
        )
        if dag_ids:
            query = query.where(run_table.c.dag_id.in_(list(dag_ids)))
        if since is not None:
            query = query.where(decision_table.c.at >= since)
        pairs: list[tuple[str, str]] = []
        with self._read() as connection:
            for _dag_id, raw_reasons, raw_policies in connection.execute(query):
                reasons = json.loads(raw_reasons)
                for policy in json.loads(raw_policies) or {"-": ""}:
                    outcomes = [
                        r.get("outcome", "allow") for r in reasons if r.get("policy") == policy
                    ]
                    worst = max(outcomes or ["allow"], key=lambda o: _SEVERITY.get(o, 0))
                    pairs.append((policy, worst))
        return pairs
