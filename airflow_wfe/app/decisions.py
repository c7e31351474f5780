"""Gate decisions and approvals of a run, as every face lists them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models.runs import DecisionItem

if TYPE_CHECKING:
    from airflow_wfe.core.ledger import DecisionRecord

__all__ = ["decision_items", "run_decisions"]


def decision_items(found: Sequence[DecisionRecord]) -> list[DecisionItem]:
    """Stored decisions as response models (the approver's comment lifted out of the details)."""
    return [
        DecisionItem(
            step_id=d.step_id,
            kind=d.kind,
            outcome=d.outcome,
            at=d.at,
            actor=d.actor,
            policies=dict(d.policies),
            reasons=[dict(r) for r in d.reasons],
            comment=d.details.get("comment"),
        )
        for d in found
    ]


def run_decisions(ctx: AppContext, dag_id: str, run_id: str) -> list[DecisionItem]:
    """Every gate decision and approval of one run, in the order they were recorded."""
    return decision_items(ctx.store.decisions(dag_id, run_id))
