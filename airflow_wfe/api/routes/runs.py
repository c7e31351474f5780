"""Runs: ``GET /runs`` (the JSON of ``wfe runs list --json``) and one run's story.

The list pages by ``limit``/``offset``, as the application layer does, newest first; a full page
carries a ``Link: <...>; rel="next"`` header. A user allowed on some DAGs only sees runs of those.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.security import READ_RUN, READ_RUN_AUDIT, DagScope, DagScopeDep
from airflow_wfe.app import audit, decisions, runs
from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models import AuditStory, DecisionItem, RunDetail, RunList, RunSummary

__all__ = ["PAGE_MAX", "router", "visible_runs"]

#: The most runs one page holds through the API (the application layer allows more, for the CLI).
PAGE_MAX = 1000

router = APIRouter(tags=["runs"])


def visible_runs(
    ctx: AppContext, scope: DagScope, *, state: str | None, limit: int, offset: int
) -> RunList:
    """A page of the runs of the DAGs in ``scope`` only, paged within those runs.

    The application layer filters by one DAG at most, so a user allowed on several (not all) DAGs
    is served by reading every run newest first and keeping theirs: correct, but linear in the
    runs before the page. A ``dag_ids`` filter in ``list_runs`` would make it one indexed query.
    """
    if scope.dag_ids is None:
        return runs.list_runs(ctx, state=state, limit=limit, offset=offset)
    if len(scope.dag_ids) <= 1:
        if not scope.dag_ids:
            return RunList([])
        (only,) = scope.dag_ids
        return runs.list_runs(ctx, dag_id=only, state=state, limit=limit, offset=offset)
    wanted, batch, cursor = offset + limit, max(4 * limit, 500), 0
    kept: list[RunSummary] = []
    while len(kept) < wanted:
        page = runs.list_runs(ctx, state=state, limit=batch, offset=cursor).root
        kept.extend(run for run in page if scope.allows(run.dag_id))
        if len(page) < batch:
            break
        cursor += batch
    return RunList(kept[offset:wanted])


@router.get("/runs", response_model=RunList, summary="List governed runs, newest first")
def list_runs(
    request: Request,
    response: Response,
    ctx: ContextDep,
    scope: DagScopeDep,
    dag_id: Annotated[str | None, Query(description="only this DAG")] = None,
    state: Annotated[str | None, Query(description="only runs in this state, e.g. FAILED")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, description="runs to skip")] = 0,
) -> RunList:
    """The same objects as ``wfe runs list --json``, of the DAGs the caller may read."""
    if dag_id is not None:
        if not scope.allows(dag_id):
            raise HTTPException(403, "Forbidden")
        page = runs.list_runs(ctx, dag_id=dag_id, state=state, limit=limit, offset=offset)
    else:
        page = visible_runs(ctx, scope, state=state, limit=limit, offset=offset)
    if len(page.root) == limit:
        following = request.url.include_query_params(offset=offset + limit, limit=limit)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return page


@router.get(
    "/runs/{dag_id}/{run_id}",
    response_model=RunDetail,
    dependencies=[READ_RUN],
    summary="One run: transitions, steps, compensations, decisions",
)
def show_run(dag_id: str, run_id: str, ctx: ContextDep) -> RunDetail:
    """The same object as ``wfe runs show DAG_ID RUN_ID --json``."""
    return runs.run_detail(ctx, dag_id, run_id)


@router.get(
    "/runs/{dag_id}/{run_id}/decisions",
    response_model=list[DecisionItem],
    dependencies=[READ_RUN],
    summary="One run's gate decisions and approvals",
)
def run_decisions(dag_id: str, run_id: str, ctx: ContextDep) -> list[DecisionItem]:
    """Policy decisions and people's answers, in the order they were recorded."""
    return decisions.run_decisions(ctx, dag_id, run_id)


@router.get(
    "/runs/{dag_id}/{run_id}/audit",
    response_model=AuditStory,
    dependencies=[READ_RUN_AUDIT],
    summary="One run's audit events",
)
def run_audit(dag_id: str, run_id: str, ctx: ContextDep) -> AuditStory:
    """The same object as ``wfe audit show DAG_ID RUN_ID --json``."""
    return audit.run_story(ctx, dag_id, run_id)
