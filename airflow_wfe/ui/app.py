"""The pages' app: an overview of the governed runs and one page per run.

They show the same application-layer models as the REST API, with the same dependencies for
Airflow's authentication (the Airflow UI's iframe sends the ``_token`` cookie) and rights. Errors
are pages too (the API answers JSON). Pictures are SVG drawn in the templates from
:mod:`airflow_wfe.ui.diagram`. The stylesheet and the theme script are served from the package.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, quote_plus

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from fastapi import FastAPI, Request  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.exceptions import RequestValidationError  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.responses import HTMLResponse  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.staticfiles import StaticFiles  # noqa: TID253 - loaded only by the lazily built pages app
from jinja2 import Environment, PackageLoader, StrictUndefined  # noqa: TID253 - loaded only by the lazily built pages app
from starlette.exceptions import HTTPException

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.headers import SecurityHeaders
from airflow_wfe.api.routes.runs import visible_runs
from airflow_wfe.api.security import READ_RUN, DagScopeDep, GetUserDep
from airflow_wfe.app import audit, costs, dora, runs
from airflow_wfe.app.models import AuditStory
from airflow_wfe.exceptions import WfeError
from airflow_wfe.ui.diagram import run_machine, timeline

__all__ = ["OVERVIEW_RUNS", "build_app", "templates"]

#: How many of the latest runs the overview counts by state.
OVERVIEW_RUNS = 500


def templates() -> Environment:
    """The pages' templates: autoescaped, strict about undefined names."""
    env = Environment(
        loader=PackageLoader("airflow_wfe.ui", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # A path segment (``/`` too is encoded: run ids may hold anything) and a query value.
    env.filters["path"] = lambda value: quote(str(value), safe="")
    env.filters["query"] = lambda value: quote_plus(str(value))
    return env


class _Pages:
    """Renders a template with what every page needs (links, who is signed in)."""

    def __init__(self) -> None:
        self.env = templates()

    def render(
        self, request: Request, name: str, user: str, http_status: int = 200, **values: Any
    ) -> HTMLResponse:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        api = base.rsplit("/ui", 1)[0] + "/api/v1"
        html = self.env.get_template(name).render(base=base, api=api, user=user, **values)
        return HTMLResponse(html, status_code=http_status)


def _may_read_audit(user: Any, dag_id: str) -> bool:
    return bool(
        get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.AUDIT_LOG,
            details=DagDetails(id=dag_id),
            user=user,
        )
    )


def build_app() -> FastAPI:
    """A new pages app (the plugin builds one per API server process)."""
    app = FastAPI(title="airflow-wfe pages", openapi_url=None, docs_url=None, redoc_url=None)
    pages = _Pages()

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request, ctx: ContextDep, scope: DagScopeDep, user: GetUserDep) -> Any:
        latest = visible_runs(ctx, scope, state=None, limit=OVERVIEW_RUNS, offset=0).root
        counts: dict[str, int] = {}
        for run in latest:
            counts[run.state] = counts.get(run.state, 0) + 1
        by_state = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        spend = [c for c in costs.cost_by_dag(ctx).root if scope.allows(c.dag_id)]
        figures = [f for f in dora.dora(ctx).root if scope.allows(f.dag_id)]
        return pages.render(
            request,
            "overview.html",
            user.get_name(),
            runs=latest,
            by_state=by_state,
            most=max(counts.values(), default=1),
            costs=spend,
            dora=figures,
        )

    @app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=[READ_RUN])
    def run_page(
        request: Request, dag_id: str, run_id: str, ctx: ContextDep, user: GetUserDep
    ) -> Any:
        run = runs.run_detail(ctx, dag_id, run_id)
        story: AuditStory | None = None
        if _may_read_audit(user, dag_id):
            story = audit.run_story(ctx, dag_id, run_id)
        return pages.render(
            request,
            "run.html",
            user.get_name(),
            run=run,
            story=story,
            machine=run_machine(run.transitions, run.state),
            current=run.state,
            timeline=timeline(run),
        )

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

    for kind in (WfeError, HTTPException, RequestValidationError):
        app.add_exception_handler(kind, error_page)
    app.mount("/static", StaticFiles(packages=[("airflow_wfe.ui", "static")]), name="static")
    app.add_middleware(SecurityHeaders)
    return app
