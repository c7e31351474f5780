"""``GET /costs``: what each DAG spent against its budgets (``wfe cost --json``), readable DAGs only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.security import DagScopeDep
from airflow_wfe.app import costs
from airflow_wfe.app.models import CostList

__all__ = ["router"]

router = APIRouter(tags=["costs"])


@router.get("/costs", response_model=CostList, summary="Spend and budgets by DAG")
def cost_by_dag(
    ctx: ContextDep,
    scope: DagScopeDep,
    dag_id: Annotated[str | None, Query(description="only this DAG")] = None,
) -> CostList:
    """Spent today, this month and over 30 days, with the budgets of ``[wfe] policy_path``."""
    if dag_id is not None and not scope.allows(dag_id):
        raise HTTPException(403, "Forbidden")
    found = costs.cost_by_dag(ctx, dag_id=dag_id)
    if scope.everything:
        return found
    return CostList([row for row in found.root if scope.allows(row.dag_id)])
