"""Gate decisions, approvals and the cost ledger in the store, each with its audit event.

Every write here is one transaction holding the fact and its audit event, like the state changes in
:mod:`.sql_store`. Reads answer what budgets need: what a run, a DAG (today, this month) and a tag
(team) have spent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.exceptions import RunNotFoundError
from airflow_wfe.store.sql_store import SqlStore
from airflow_wfe.store.tables import cost_entry_table, decision_table, run_table

__all__ = [
    "CostEntry",
    "DecisionRecord",
    "cost_by_dag",
    "decisions",
    "gate_decisions",
    "ledger_as_metrics",
    "record_cost",
    "record_decision",
    "spent",
]


@dataclass(frozen=True)
class DecisionRecord:
    """A gate's decision (``kind="policy"``) or a person's answer (``kind="approval"``)."""

    step_id: str
    kind: str
    outcome: str
    reasons: tuple[Mapping[str, Any], ...]
    policies: Mapping[str, str]
    actor: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CostEntry:
    """One line of the ledger."""

    dag_id: str
    run_id: str
    step_id: str
    amount: float
    currency: str
    detail: str | None
    at: datetime
    tags: tuple[str, ...] = field(default=())


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _run_pk(connection: Connection, dag_id: str, run_id: str) -> int:
    pk = connection.execute(
        select(run_table.c.id).where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
    ).scalar()
    if pk is None:
        raise RunNotFoundError(dag_id, run_id)
    return int(pk)


def record_decision(
    store: SqlStore,
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
    now = datetime.now(UTC)
    redact = store.audit.redactor
    clean_reasons = [redact(dict(r)) for r in reasons]
    clean_details = redact(dict(details or {}))

    def attempt(connection: Connection) -> None:
        run_pk = _run_pk(connection, dag_id, run_id)
        connection.execute(
            insert(decision_table).values(
                run_pk=run_pk,
                step_id=step_id,
                kind=kind,
                outcome=outcome,
                reasons=json.dumps(clean_reasons, sort_keys=True, default=str),
                policies=json.dumps(dict(policies), sort_keys=True),
                details=json.dumps(clean_details, sort_keys=True, default=str),
                actor=actor,
                at=now,
            )
        )
        store.audit.append(
            connection,
            [
                AuditEvent(
                    type=EventType.POLICY_DECISION if kind == "policy" else EventType.APPROVAL,
                    actor=actor,
                    at=now,
                    dag_id=dag_id,
                    run_id=run_id,
                    step_id=step_id,
                    payload={"outcome": outcome, "reasons": clean_reasons, **clean_details},
                    versions={f"policy:{name}": v for name, v in policies.items()},
                )
            ],
        )

    store.write(f"{dag_id}/{run_id}/{step_id} decision", attempt)
    return DecisionRecord(step_id, kind, outcome, tuple(clean_reasons), dict(policies), actor, now)


def decisions(store: SqlStore, dag_id: str, run_id: str) -> list[DecisionRecord]:
    """The run's decisions and approvals, oldest first (empty for an unknown run)."""
    query = (
        select(decision_table)
        .join(run_table, run_table.c.id == decision_table.c.run_pk)
        .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
        .order_by(decision_table.c.id)
    )
    with store.read() as connection:
        rows = connection.execute(query).all()
    return [
        DecisionRecord(
            step_id=row.step_id,
            kind=row.kind,
            outcome=row.outcome,
            reasons=tuple(json.loads(row.reasons)),
            policies=json.loads(row.policies),
            actor=row.actor,
            at=_utc(row.at),
            details=json.loads(row.details),
        )
        for row in rows
    ]


def record_cost(
    store: SqlStore,
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
    """Write a step's spending to the ledger with its audit event.

    Raises:
        RunNotFoundError: the run is not in the store.
        ValueError: a negative or non-finite amount.
    """
    if not (amount >= 0 and amount != float("inf")):
        raise ValueError(f"a cost is a finite amount of 0 or more, not {amount!r}")
    now = datetime.now(UTC)
    clean_detail = store.audit.redactor.text(detail)

    def attempt(connection: Connection) -> None:
        run_pk = _run_pk(connection, dag_id, run_id)
        connection.execute(
            insert(cost_entry_table).values(
                run_pk=run_pk,
                dag_id=dag_id,
                step_id=step_id,
                amount=float(amount),
                currency=currency,
                detail=clean_detail,
                tags=json.dumps(sorted(set(tags))),
                at=now,
            )
        )
        store.audit.append(
            connection,
            [
                AuditEvent(
                    type=EventType.COST,
                    actor=actor,
                    at=now,
                    dag_id=dag_id,
                    run_id=run_id,
                    step_id=step_id,
                    payload={"amount": float(amount), "currency": currency, "detail": clean_detail},
                )
            ],
        )

    store.write(f"{dag_id}/{run_id}/{step_id} cost", attempt)
    return CostEntry(
        dag_id, run_id, step_id, float(amount), currency, clean_detail, now, tuple(tags)
    )


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def spent(
    store: SqlStore,
    dag_id: str,
    run_id: str | None,
    *,
    tags: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, Any]:
    """What budgets compare with: ``run``, ``dag_day``, ``dag_month``, and ``tag_day`` /
    ``tag_month`` per tag (days and months in UTC)."""
    moment = _utc(now or datetime.now(UTC))
    day, month = _day_start(moment), _month_start(moment)
    total = func.coalesce(func.sum(cost_entry_table.c.amount), 0.0)
    result: dict[str, Any] = {"run": 0.0, "dag_day": 0.0, "dag_month": 0.0}
    with store.read() as connection:
        if run_id is not None:
            result["run"] = float(
                connection.execute(
                    select(total)
                    .select_from(cost_entry_table.join(run_table))
                    .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
                ).scalar_one()
            )
        for key, since in (("dag_day", day), ("dag_month", month)):
            result[key] = float(
                connection.execute(
                    select(total).where(
                        cost_entry_table.c.dag_id == dag_id, cost_entry_table.c.at >= since
                    )
                ).scalar_one()
            )
        by_tag_day: dict[str, float] = dict.fromkeys(tags, 0.0)
        by_tag_month: dict[str, float] = dict.fromkeys(tags, 0.0)
        if tags:
            rows = connection.execute(
                select(
                    cost_entry_table.c.amount, cost_entry_table.c.tags, cost_entry_table.c.at
                ).where(cost_entry_table.c.at >= month)
            )
            wanted = set(tags)
            for amount, raw_tags, at in rows:
                for tag in wanted & set(json.loads(raw_tags)):
                    by_tag_month[tag] += float(amount)
                    if _utc(at) >= day:
                        by_tag_day[tag] += float(amount)
        result["tag_day"], result["tag_month"] = by_tag_day, by_tag_month
    return result


def cost_by_dag(
    store: SqlStore, *, dag_id: str | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per DAG: spent today, this month, over the last 30 days, and how many runs spent."""
    moment = _utc(now or datetime.now(UTC))
    day, month, window = _day_start(moment), _month_start(moment), moment - timedelta(days=30)
    query = select(
        cost_entry_table.c.dag_id,
        cost_entry_table.c.amount,
        cost_entry_table.c.currency,
        cost_entry_table.c.run_pk,
        cost_entry_table.c.at,
    ).where(cost_entry_table.c.at >= min(month, window))
    if dag_id is not None:
        query = query.where(cost_entry_table.c.dag_id == dag_id)
    summary: dict[str, dict[str, Any]] = {}
    with store.read() as connection:
        for row in connection.execute(query):
            entry = summary.setdefault(
                row.dag_id,
                {
                    "dag_id": row.dag_id,
                    "currency": row.currency,
                    "today": 0.0,
                    "month": 0.0,
                    "last_30_days": 0.0,
                    "runs": set(),
                },
            )
            at = _utc(row.at)
            entry["today"] += row.amount if at >= day else 0.0
            entry["month"] += row.amount if at >= month else 0.0
            if at >= window:
                entry["last_30_days"] += row.amount
                entry["runs"].add(row.run_pk)
    result = []
    for entry in sorted(summary.values(), key=lambda e: str(e["dag_id"])):
        runs = len(entry.pop("runs"))
        entry["runs_30_days"] = runs
        entry["per_run_30_days"] = entry["last_30_days"] / runs if runs else 0.0
        result.append(entry)
    return result


def gate_decisions(
    store: SqlStore, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
) -> list[tuple[str, str]]:
    """``(policy, outcome)`` of every gate decision in the window: one pair per policy that took
    part, with the outcome that policy's own rules reached (what ``wfe report`` ranks)."""
    query = (
        select(run_table.c.dag_id, decision_table.c.reasons, decision_table.c.policies)
        .join(run_table, run_table.c.id == decision_table.c.run_pk)
        .where(decision_table.c.kind == "policy")
    )
    if dag_ids:
        query = query.where(run_table.c.dag_id.in_(list(dag_ids)))
    if since is not None:
        query = query.where(decision_table.c.at >= since)
    severity = {"allow": 0, "needs_approval": 1, "deny": 2}
    pairs: list[tuple[str, str]] = []
    with store.read() as connection:
        for _dag_id, raw_reasons, raw_policies in connection.execute(query):
            reasons = json.loads(raw_reasons)
            for policy in json.loads(raw_policies) or {"-": ""}:
                outcomes = [r.get("outcome", "allow") for r in reasons if r.get("policy") == policy]
                worst = max(outcomes or ["allow"], key=lambda o: severity.get(o, 0))
                pairs.append((policy, worst))
    return pairs


def ledger_as_metrics(
    store: SqlStore, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
) -> list[Any]:
    """The ledger's entries as ``cost`` business metrics (what ``wfe report`` sums per run)."""
    from airflow_wfe.store.history import BusinessMetric

    query = select(
        cost_entry_table.c.dag_id,
        run_table.c.run_id,
        cost_entry_table.c.step_id,
        cost_entry_table.c.amount,
        cost_entry_table.c.currency,
        cost_entry_table.c.at,
    ).join(run_table, run_table.c.id == cost_entry_table.c.run_pk)
    if dag_ids:
        query = query.where(cost_entry_table.c.dag_id.in_(list(dag_ids)))
    if since is not None:
        query = query.where(cost_entry_table.c.at >= since)
    with store.read() as connection:
        return [
            BusinessMetric(
                dag_id=row.dag_id,
                run_id=row.run_id,
                step_id=row.step_id,
                map_index=-1,
                name="cost",
                value=float(row.amount),
                unit=row.currency,
                at=_utc(row.at),
            )
            for row in connection.execute(query)
        ]
