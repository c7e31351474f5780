"""The pages' app: an overview of the governed runs, the runs list and one page per run; the
audit trail, policies and artifacts pages come from their own modules (``trail_pages``,
``policy_pages``, ``artifact_pages``).

They show the same application-layer models as the REST API, with the same dependencies for
Airflow's authentication (the Airflow UI's iframe sends the ``_token`` cookie) and rights. Errors
are pages too (the API answers JSON). Pictures are SVG drawn in the templates from
:mod:`airflow_wfe.ui.diagram`. The stylesheet and the theme script are served from the package.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import FastAPI, Query, Request  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.exceptions import RequestValidationError  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.responses import HTMLResponse, RedirectResponse  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.staticfiles import StaticFiles  # noqa: TID253 - loaded only by the lazily built pages app
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from airflow_wfe.api import airflow_rest
from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.headers import SecurityHeaders
from airflow_wfe.api.routes.runs import PAGE_MAX
from airflow_wfe.api.security import (
    EDIT_RUN,
    READ_RUN,
    DagScope,
    DagScopeDep,
    GetUserDep,
    may_every_dag,
)
from airflow_wfe.app import costs, dora, runs
from airflow_wfe.app.context import AppContext
from airflow_wfe.app.models import DagCost, RunDetail
from airflow_wfe.app.run_page import AuditTail, audit_tail
from airflow_wfe.core.states import RUN_MACHINE, RunState
from airflow_wfe.exceptions import PolicyError, SpecError, UsageError, WfeError
from airflow_wfe.ui import artifact_pages, csrf, policy_pages, trail_pages
from airflow_wfe.ui.diagram import run_machine, timeline
from airflow_wfe.ui.page_kit import Pages, base_path, may, read_form, templates

__all__ = ["EVENTS_SHOWN", "OVERVIEW_RUNS", "build_app", "templates"]

#: How many of the latest runs the overview counts by state.
OVERVIEW_RUNS = 500
#: How many of a run's audit events its page lists (the newest; the export holds them all): a
#: page of 2,000 rows took longer to render than every other part of the page together.
EVENTS_SHOWN: Final = 200


def _time(value: str | None, name: str) -> datetime | None:
    """A filter's time from the form (``datetime-local`` sends no offset: UTC); blank is none."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(
            f"{value!r} is not a time; use ISO 8601, e.g. 2026-12-01T09:30", argument=name
        ) from exc


async def _pending_gates(request: Request, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's gates still waiting for a person, as Airflow shows them to the caller.

    Asked only while the run waits for approval; when Airflow refuses the caller the HITL
    details, the page shows no form (the answer would be refused the same way).
    """
    try:
        found = await airflow_rest.run_gates(request, dag_id, run_id)
    except HTTPException:
        return []
    return [gate for gate in found if not gate.get("response_received")]


def _step_paths(run: RunDetail) -> list[list[tuple[str, str]]]:
    """Per step, each state it reached with when, by whom and why (the steps table's tooltips;
    formatted here: a run of 200 steps has thousands, and Jinja2 takes several times longer)."""
    return [
        [
            (t.to_state, f"{t.at.isoformat()} by {t.actor}" + (f": {t.reason}" if t.reason else ""))
            for t in step.transitions
        ]
        for step in run.steps
    ]


def _spend(ctx: AppContext, scope: DagScope) -> tuple[list[DagCost], str | None]:
    """Spend and budgets of the readable DAGs, or why they cannot be shown.

    A broken policy file must not take the overview down: the budgets cannot be read then, and
    the policies page names the file and line.
    """
    try:
        return [c for c in costs.cost_by_dag(ctx).root if scope.allows(c.dag_id)], None
    except (SpecError, PolicyError) as exc:
        return [], str(exc).splitlines()[0]


def build_app() -> FastAPI:
    """A new pages app (the plugin builds one per API server process)."""
    app = FastAPI(title="airflow-wfe pages", openapi_url=None, docs_url=None, redoc_url=None)
    pages = Pages()

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, ctx: ContextDep, scope: DagScopeDep, user: GetUserDep) -> Any:
        latest, _ = runs.page_runs(ctx, dag_ids=scope.dag_ids, limit=OVERVIEW_RUNS)
        counts: dict[str, int] = {}
        for run in latest.root:
            counts[run.state] = counts.get(run.state, 0) + 1
        by_state = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        spend, budget_problem = _spend(ctx, scope)
        figures = [f for f in dora.dora(ctx).root if scope.allows(f.dag_id)]
        waiting = [r for r in latest.root if r.state == RunState.WAITING_APPROVAL]
        return pages.render(
            request,
            "overview.html",
            user.get_name(),
            runs=latest.root,
            waiting=waiting,
            by_state=by_state,
            most=max(counts.values(), default=1),
            costs=spend,
            budget_problem=budget_problem,
            dora=figures,
            whole_trail=may_every_dag(user, "GET", DagAccessEntity.AUDIT_LOG),
        )

    @app.get("/runs", response_class=HTMLResponse)
    def run_list(
        request: Request,
        ctx: ContextDep,
        scope: DagScopeDep,
        user: GetUserDep,
        dag_id: str = "",
        state: str = "",
        since: str = "",
        until: str = "",
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 50,
        cursor: Annotated[str, Query(max_length=200)] = "",
    ) -> Any:
        dag_ids = scope.readable([dag_id] if dag_id else ())
        window = {"since": _time(since, "since"), "until": _time(until, "until")}
        page, following = runs.page_runs(
            ctx, dag_ids=dag_ids, state=state or None, limit=limit, cursor=cursor or None, **window
        )
        asked = {"dag_id": dag_id, "state": state, "since": since, "until": until, "limit": limit}
        return pages.render(
            request,
            "runs.html",
            user.get_name(),
            runs=page.root,
            total=runs.count_runs(ctx, dag_ids=dag_ids, state=state or None, **window),
            asked=asked,
            states=[str(s) for s in RunState],
            following=None if following is None else urlencode({**asked, "cursor": following}),
            first=urlencode(asked) if cursor else None,
        )

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[READ_RUN])
    async def run_page(
        request: Request,
        dag_id: str,
        run_id: str,
        ctx: ContextDep,
        user: GetUserDep,
        answered: str = "",
    ) -> Any:
        # The store reads block: off the event loop, as FastAPI runs a plain ``def`` route.
        run = await run_in_threadpool(runs.run_detail, ctx, dag_id, run_id)
        story: AuditTail | None = None
        if may(user, dag_id, "GET", DagAccessEntity.AUDIT_LOG):
            story = await run_in_threadpool(audit_tail, ctx, dag_id, run_id, EVENTS_SHOWN)
        gates: list[dict[str, Any]] = []
        if run.state == RunState.WAITING_APPROVAL:
            gates = await _pending_gates(request, dag_id, run_id)
        return pages.render(
            request,
            "run.html",
            user.get_name(),
            run=run,
            story=story,
            machine=run_machine(run.transitions, run.state),
            current=run.state,
            timeline=timeline(run),
            step_paths=_step_paths(run),
            gates=gates,
            may_act=may(user, dag_id, "PUT", DagAccessEntity.RUN),
            csrf_field=csrf.FIELD,
            csrf_token=csrf.token_for(request),
            answered=answered,
            terminal=run.state in RUN_MACHINE.terminal,
        )

    @app.post(
        "/runs/{dag_id}/{run_id}/gates/{task_id}/answer",
        response_class=RedirectResponse,
        dependencies=[EDIT_RUN],
    )
    async def answer_gate(request: Request, dag_id: str, run_id: str, task_id: str) -> Any:
        """The run page's Approve/Reject form: checked against CSRF, then answered exactly as
        ``POST /wfe/api/v1/runs/.../gates/{task_id}/answer`` does (Airflow's HITL API)."""
        form = await read_form(request)
        csrf.check(request, form.get(csrf.FIELD, ""))
        choice = form.get("choice", "")
        if not choice:
            raise UsageError("choose one of the gate's options", argument="choice")
        try:
            map_index = int(form.get("map_index", "-1"))
        except ValueError as exc:
            raise UsageError("must be a whole number", argument="map_index") from exc
        comment = form.get("comment", "").strip()
        await airflow_rest.answer_gate(
            request,
            dag_id,
            run_id,
            task_id,
            chosen_options=[choice],
            params_input={"comment": comment} if comment else {},
            map_index=map_index,
        )
        target = f"{base_path(request)}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"
        return RedirectResponse(f"{target}?{urlencode({'answered': task_id})}", status_code=303)

    async def error_page(request: Request, exc: Exception) -> HTMLResponse:
        if isinstance(exc, RequestValidationError):
            status, code, message = 422, "invalid_request", "invalid request"
        elif isinstance(exc, HTTPException):
            status, code, message = exc.status_code, "http_error", str(exc.detail)
        else:
            status = int(getattr(exc, "http_status", 500))
            code, message = str(getattr(exc, "code", "error")), str(exc)
        return pages.render(
            request, "error.html", "", status, status=status, code=code, message=message
        )

    for module in (trail_pages, policy_pages, artifact_pages):
        app.include_router(module.router(pages))
    for kind in (WfeError, HTTPException, RequestValidationError):
        app.add_exception_handler(kind, error_page)
    app.mount("/static", StaticFiles(packages=[("airflow_wfe.ui", "static")]), name="static")
    app.add_middleware(SecurityHeaders)
    return app
