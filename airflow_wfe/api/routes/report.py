"""``GET /report``: what to improve first (``wfe report --json``), over the DAGs the caller may read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.routes.window import window
from airflow_wfe.api.security import DagScopeDep
from airflow_wfe.app.models import Report
from airflow_wfe.app.report import report_for

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get("/report", response_model=Report, summary="Slowest, most retried, costliest steps")
def report(
    ctx: ContextDep,
    scope: DagScopeDep,
    dag_id: Annotated[list[str] | None, Query(description="only this DAG (repeatable)")] = None,
    window_text: Annotated[str, Query(alias="window", description="e.g. 7d, 24h")] = "7d",
) -> Report:
    """A user allowed on some DAGs only gets the report of those (``dag_ids`` lists them)."""
    return report_for(ctx, dag_ids=scope.narrow(dag_id or ()), window=window(window_text))
