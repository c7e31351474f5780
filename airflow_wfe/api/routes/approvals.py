"""``GET /runs/{dag_id}/{run_id}/approvals``: the run's human-in-the-loop requests, as Airflow holds
them (pending or answered); answering one is in :mod:`.actions`. Airflow is asked as the caller, so
its own HITL read rights apply on top of ours."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api.datamodels.hitl import HITLDetailCollection
from fastapi import APIRouter, Request  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.airflow_rest import call_airflow, hitl_path
from airflow_wfe.api.security import READ_RUN

__all__ = ["router"]

router = APIRouter(tags=["decisions"])


@router.get(
    "/runs/{dag_id}/{run_id}/approvals",
    response_model=HITLDetailCollection,
    dependencies=[READ_RUN],
    summary="The run's approval requests and answers (Airflow's HITL details)",
)
async def run_approvals(dag_id: str, run_id: str, request: Request) -> Any:
    """Airflow's ``GET .../hitlDetails`` of the run, as the caller."""
    return await call_airflow(request, "GET", hitl_path(dag_id, run_id))
