"""The cost ledger in the store: what steps spent, each entry with its audit event.

Reads answer what budgets need: what a run, a DAG (today, this month) and a tag (team) have spent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select

from airflow_wfe.core.audit.events import AuditEvent, EventType
from airflow_wfe.exceptions import CurrencyMismatchError
from airflow_wfe.store.base import StoreBase, run_pk
from airflow_wfe.store.rows import utc
from airflow_wfe.store.tables import cost_entry_table, run_table

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import BusinessMetric, CostEntry

__all__ = ["CostLedger"]


def _month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class CostLedger(StoreBase):
    """Writing and summing the cost ledger."""

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
        """Write a step's spending to the ledger with its audit event.

        Raises:
            RunNotFoundError: the run is not in the store.
            CurrencyMismatchError: the run already spent in another currency (nothing is written).
            ValueError: a negative or non-finite amount, or a currency that is not a 3-letter code.
        """
        if not (amount >= 0 and amount != float("inf")):
            raise ValueError(f"a cost is a finite amount of 0 or more, not {amount!r}")
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise ValueError(f"a currency is a 3-letter code such as USD or EUR, not {currency!r}")
        currency = currency.upper()
        now = datetime.now(UTC)
        clean_detail = self.audit.redactor.text(detail)

        def attempt(connection: Connection) -> None:
            pk = run_pk(connection, dag_id, run_id)
            held = connection.execute(
                select(cost_entry_table.c.currency)
                .where(cost_entry_table.c.run_pk == pk, cost_entry_table.c.currency != currency)
                .limit(1)
            ).scalar_one_or_none()
            if held is not None:
                raise CurrencyMismatchError(f"run {dag_id}/{run_id}", currency, [held])
            connection.execute(
                insert(cost_entry_table).values(
                    run_pk=pk,
                    dag_id=dag_id,
                    step_id=step_id,
                    amount=float(amount),
                    currency=currency,
                    detail=clean_detail,
                    tags=json.dumps(sorted(set(tags))),
                    at=now,
                )
            )
            self.audit.append(
                connection,
                [
                    AuditEvent(
                        type=EventType.COST,
                        actor=actor,
                        at=now,
                        dag_id=dag_id,
                        run_id=run_id,
                        step_id=step_id,
                        payload={
                            "amount": float(amount),
                            "currency": currency,
                            "detail": clean_detail,
                        },
                    )
                ],
            )

        self._write(f"{dag_id}/{run_id}/{step_id} cost", attempt)
        from airflow_wfe.core.ledger import (
            CostEntry,  # cold path: not loaded by task processes (core.ledger)
        )

        return CostEntry(
            dag_id, run_id, step_id, float(amount), currency, clean_detail, now, tuple(tags)
        )

    def spent(
        self,
        dag_id: str,
        run_id: str | None,
        *,
        tags: Sequence[str] = (),
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """What budgets compare with: ``run``, ``dag_day``, ``dag_month``, and ``tag_day`` /
        ``tag_month`` per tag (days and months in UTC), plus ``currencies``: the currencies each of
        those sums holds (same keys), so a budget in EUR is never judged on dollars."""
        moment = utc(now or datetime.now(UTC))
        day, month = _day_start(moment), _month_start(moment)
        amount, currency = cost_entry_table.c.amount, cost_entry_table.c.currency
        result: dict[str, Any] = {"run": 0.0, "dag_day": 0.0, "dag_month": 0.0}
        currencies: dict[str, Any] = {"run": [], "dag_day": [], "dag_month": []}

        def add(key: str, rows: Any) -> None:
            for held, total in rows:
                result[key] += float(total or 0.0)
                currencies[key] = sorted({*currencies[key], held})

        with self._read() as connection:
            if run_id is not None:
                add(
                    "run",
                    connection.execute(
                        select(currency, func.sum(amount))
                        .select_from(cost_entry_table.join(run_table))
                        .where(run_table.c.dag_id == dag_id, run_table.c.run_id == run_id)
                        .group_by(currency)
                    ),
                )
            for key, since in (("dag_day", day), ("dag_month", month)):
                add(
                    key,
                    connection.execute(
                        select(currency, func.sum(amount))
                        .where(cost_entry_table.c.dag_id == dag_id, cost_entry_table.c.at >= since)
                        .group_by(currency)
                    ),
                )
            by_tag_day: dict[str, float] = dict.fromkeys(tags, 0.0)
            by_tag_month: dict[str, float] = dict.fromkeys(tags, 0.0)
            held_day: dict[str, set[str]] = {tag: set() for tag in tags}
            held_month: dict[str, set[str]] = {tag: set() for tag in tags}
            if tags:
                rows = connection.execute(
                    select(amount, currency, cost_entry_table.c.tags, cost_entry_table.c.at).where(
                        cost_entry_table.c.at >= month
                    )
                )
                wanted = set(tags)
                for spent, held, raw_tags, at in rows:
                    for tag in wanted & set(json.loads(raw_tags)):
                        by_tag_month[tag] += float(spent)
                        held_month[tag].add(held)
                        if utc(at) >= day:
                            by_tag_day[tag] += float(spent)
                            held_day[tag].add(held)
            result["tag_day"], result["tag_month"] = by_tag_day, by_tag_month
            currencies["tag_day"] = {tag: sorted(held) for tag, held in held_day.items()}
            currencies["tag_month"] = {tag: sorted(held) for tag, held in held_month.items()}
        result["currencies"] = currencies
        return result

    def cost_by_dag(
        self, *, dag_id: str | None = None, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Per DAG: spent today, this month, over the last 30 days, and how many runs spent."""
        moment = utc(now or datetime.now(UTC))
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
        with self._read() as connection:
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
                at = utc(row.at)
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

    def ledger_as_metrics(
        self, *, dag_ids: Sequence[str] | None = None, since: datetime | None = None
    ) -> list[BusinessMetric]:
        """The ledger's entries as ``cost`` business metrics (what ``wfe report`` sums per run)."""
        from airflow_wfe.core.ledger import (
            BusinessMetric,  # cold path: not loaded by task processes (core.ledger)
        )

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
        with self._read() as connection:
            return [
                BusinessMetric(
                    dag_id=row.dag_id,
                    run_id=row.run_id,
                    step_id=row.step_id,
                    map_index=-1,
                    name="cost",
                    value=float(row.amount),
                    unit=row.currency,
                    at=utc(row.at),
                )
                for row in connection.execute(query)
            ]
