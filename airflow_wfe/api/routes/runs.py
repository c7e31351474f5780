"""Runs: ``GET /runs`` (the objects of ``wfe runs list --json``) and one run's story.

The list pages by cursor, newest first: a page that has a successor carries its opaque cursor in
``X-Next-Cursor`` and the whole next URL in ``Link: <...>; rel="next"``. Filters (DAGs, state, a
creation-time window) and the caller's readable DAGs are applied by the store in SQL, so a user
allowed on some DAGs gets full pages of theirs and never a run of another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request, Response  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.security import READ_RUN, READ_RUN_AUDIT, DagScopeDep
from airflow_wfe.app import audit, decisions, runs
from airflow_wfe.app.models import AuditStory, DecisionItem, RunDetail, RunList

__all__ = ["NEXT_CURSOR_HEADER", "PAGE_MAX", "router"]

#: The most runs one page holds through the API (the application layer allows more, for the CLI).
PAGE_MAX: Final = 1000
#: The response header holding the next page's cursor.
NEXT_CURSOR_HEADER: Final = "X-Next-Cursor"

router = APIRouter(tags=["runs"])

_PAGE_HEADERS: Final[dict[str, Any]] = {
    NEXT_CURSOR_HEADER: {
        "description": "the cursor of the next page (absent on the last page)",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'the next page\'s URL, as <URL>; rel="next" (absent on the last page)',
        "schema": {"type": "string"},
    },
}


@router.get(
    "/runs",
    response_model=RunList,
    summary="List governed runs, newest first, a page at a time",
    responses={200: {"headers": _PAGE_HEADERS}},
)
def list_runs(
    request: Request,
    response: Response,
    ctx: ContextDep,
    scope: DagScopeDep,
    dag_id: Annotated[
        list[str] | None, Query(description="only these DAGs (repeat the parameter for several)")
    ] = None,
    state: Annotated[str | None, Query(description="only runs in this state, e.g. FAILED")] = None,
    since: Annotated[
        datetime | None,
        Query(description="only runs created at or after this time (ISO 8601; no offset: UTC)"),
    ] = None,
    until: Annotated[
        datetime | None, Query(description="only runs created before this time (ISO 8601)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX, description="page size")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description=f"where to continue: a previous {NEXT_CURSOR_HEADER}"),
    ] = None,
) -> RunList:
    """The same objects as ``wfe runs list --json``, of the DAGs the caller may read.

    Asking for a DAG the caller may not read is 403; without ``dag_id`` the list holds the runs of
    the readable DAGs only (empty when there is none).
    """
    page, following = runs.page_runs(
        ctx,
        dag_ids=scope.readable(dag_id or ()),
        state=state,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    if following is not None:
        response.headers[NEXT_CURSOR_HEADER] = following
        link = request.url.include_query_params(cursor=following)
        response.headers["Link"] = f'<{link}>; rel="next"'
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
