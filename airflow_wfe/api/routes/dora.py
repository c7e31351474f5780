"""``GET /dora``: the DORA figures of the deployment DAGs the caller may read (``wfe dora --json``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.routes.window import window
from airflow_wfe.api.security import DagScopeDep
from airflow_wfe.app import dora
from airflow_wfe.app.models import DoraList

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get("/dora", response_model=DoraList, summary="DORA figures of the deployment DAGs")
def dora_figures(
    ctx: ContextDep,
    scope: DagScopeDep,
    dag_id: Annotated[
        list[str] | None, Query(description="a deployment DAG (repeatable; default: all)")
    ] = None,
    window_text: Annotated[str, Query(alias="window", description="e.g. 30d, 12h, 2w")] = "30d",
) -> DoraList:
    """Deployment frequency, lead time, MTTR and change failure rate over the window."""
    span = window(window_text)
    if dag_id:
        return dora.dora(ctx, dag_ids=scope.narrow(dag_id), window=span)
    found = dora.dora(ctx, window=span)
    if scope.everything:
        return found
    return DoraList([row for row in found.root if scope.allows(row.dag_id)])
