"""Every write the API offers, each a POST with a JSON body (the CSRF guard is on this router).

* ``POST /runs/{dag_id}/{run_id}/compensate``: edit on that DAG's runs;
* ``POST /runs/{dag_id}/{run_id}/gates/{task_id}/answer``: edit on that DAG's runs here, then
  Airflow's own HITL rules (see :mod:`airflow_wfe.api.airflow_rest`);
* ``POST /audit/checkpoint`` and ``POST /artifacts/{name}/rollback``: edit on the runs of every
  DAG, since a checkpoint vouches for the whole trail and an artifact serves every DAG using it.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api.datamodels.hitl import HITLDetailResponse
from fastapi import APIRouter, Depends, Request  # noqa: TID253 - loaded only by the lazily built API app
from pydantic import BaseModel, ConfigDict, Field

from airflow_wfe.api import airflow_rest
from airflow_wfe.api.deps import ActorDep, ContextDep
from airflow_wfe.api.security import EDIT_EVERY_DAG, EDIT_RUN, require_json
from airflow_wfe.app import artifacts, audit
from airflow_wfe.app.compensate import compensate
from airflow_wfe.app.models import ArtifactChange, CheckpointResult, CompensationRequest

__all__ = ["CompensateBody", "GateAnswer", "ReasonBody", "router"]

router = APIRouter(tags=["actions"], dependencies=[Depends(require_json)])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReasonBody(_Body):
    """Why, recorded with the change."""

    reason: str | None = Field(default=None, max_length=2000, description="why, in words")


class CompensateBody(ReasonBody):
    """A manual compensation request."""

    force: bool = Field(default=False, description="also compensate a run that COMPLETED")


class GateAnswer(_Body):
    """An answer to a pending approval, as Airflow's HITL API takes it."""

    chosen_options: list[str] = Field(min_length=1, description='e.g. ["Approve"] or ["Reject"]')
    params_input: dict[str, Any] = Field(default_factory=dict, description="the form's fields")
    map_index: int = Field(default=-1, description="the gate's map index (-1: not mapped)")


@router.post(
    "/runs/{dag_id}/{run_id}/compensate",
    response_model=CompensationRequest,
    dependencies=[EDIT_RUN],
    summary="Compensate a failed run through its saga tasks",
)
def compensate_run(
    dag_id: str, run_id: str, body: CompensateBody, ctx: ContextDep, actor: ActorDep
) -> CompensationRequest:
    """What ``wfe compensate DAG_ID RUN_ID --json`` does and prints."""
    # The application layer records its own process user as the actor; the reason names the
    # Airflow user who asked, so the audit trail says who it was.
    why = f"requested by {actor} through the REST API" + (f": {body.reason}" if body.reason else "")
    return compensate(ctx, dag_id, run_id, force=body.force, reason=why)


@router.post(
    "/runs/{dag_id}/{run_id}/gates/{task_id}/answer",
    response_model=HITLDetailResponse,
    dependencies=[EDIT_RUN],
    summary="Answer a pending approval (through Airflow's HITL API)",
)
async def answer_gate(
    dag_id: str, run_id: str, task_id: str, body: GateAnswer, request: Request
) -> Any:
    """Airflow's ``PATCH .../hitlDetails`` as the caller: its rules, its answer, its errors."""
    return await airflow_rest.answer_gate(
        request,
        dag_id,
        run_id,
        task_id,
        chosen_options=body.chosen_options,
        params_input=body.params_input,
        map_index=body.map_index,
    )


@router.post(
    "/audit/checkpoint",
    response_model=CheckpointResult | None,
    dependencies=[EDIT_EVERY_DAG],
    summary="Sign a checkpoint at the audit chain's head (null: empty trail)",
)
def checkpoint(body: ReasonBody, ctx: ContextDep) -> CheckpointResult | None:
    """What ``wfe audit checkpoint --json`` does and prints."""
    return audit.checkpoint(ctx, body.reason or "manual (REST API)")


@router.post(
    "/artifacts/{name:path}/rollback",
    response_model=ArtifactChange,
    dependencies=[EDIT_EVERY_DAG],
    summary="Re-activate an artifact's previous version",
)
def rollback_artifact(
    name: str, body: ReasonBody, ctx: ContextDep, actor: ActorDep
) -> ArtifactChange:
    """What ``wfe artifacts rollback NAME --json`` does and prints."""
    return artifacts.rollback(ctx, name, actor=actor, reason=body.reason)
