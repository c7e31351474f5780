"""Versioned artifacts: ``wfe artifacts list|show --json``. Artifacts belong to no one DAG, so reading
them needs read access to every DAG's runs; rolling one back is in :mod:`.actions`."""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import APIRouter, Depends  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.security import requires_every_dag
from airflow_wfe.app import artifacts
from airflow_wfe.app.models import ArtifactHistory, ArtifactList

__all__ = ["router"]

router = APIRouter(
    prefix="/artifacts",
    tags=["artifacts"],
    dependencies=[Depends(requires_every_dag("GET", DagAccessEntity.RUN))],
)


@router.get("", response_model=ArtifactList, summary="Every artifact and its active version")
def list_artifacts(ctx: ContextDep) -> ArtifactList:
    """The same array as ``wfe artifacts list --json``."""
    return artifacts.list_artifacts(ctx)


@router.get("/{name:path}", response_model=ArtifactHistory, summary="One artifact's history")
def artifact_history(name: str, ctx: ContextDep) -> ArtifactHistory:
    """The same object as ``wfe artifacts show NAME --json``."""
    return artifacts.artifact_history(ctx, name)
