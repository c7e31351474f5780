"""Costs and budgets: what each DAG spent (the cost ledger) against the budgets its policies set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.governance import CostList, DagCost
from airflow_wfe.core.policy import LoadedPolicy, load_policy_folder
from airflow_wfe.core.policy.models import BudgetRule

__all__ = ["budgets", "cost_by_dag"]


def budgets(dag_id: str, policies: Sequence[LoadedPolicy]) -> dict[str, float]:
    """DAG-wide (untagged) budget limits by scope; the lowest when several policies set one."""
    limits: dict[str, float] = {}
    for loaded in policies:
        if not loaded.applies(dag_id, ()):
            continue
        for rule in loaded.policy.rules:
            if isinstance(rule, BudgetRule) and rule.tag is None:
                scope = rule.scope.value
                limits[scope] = min(limits.get(scope, rule.limit), rule.limit)
    return limits


def cost_by_dag(
    ctx: AppContext, *, dag_id: str | None = None, now: datetime | None = None
) -> CostList:
    """Per DAG: spent today, this month and over 30 days, with the budgets of ``[wfe] policy_path``.

    Raises:
        SpecError: a policy file is invalid.
    """
    rows = ctx.store.cost_by_dag(dag_id=dag_id, now=now)
    policies = load_policy_folder(ctx.settings.policy_path)
    return CostList(
        [
            DagCost(
                dag_id=row["dag_id"],
                currency=row["currency"],
                today=row["today"],
                month=row["month"],
                last_30_days=row["last_30_days"],
                runs_30_days=row["runs_30_days"],
                per_run_30_days=row["per_run_30_days"],
                budgets=budgets(row["dag_id"], policies),
            )
            for row in rows
        ]
    )
