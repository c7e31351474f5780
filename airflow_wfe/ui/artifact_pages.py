"""The artifacts' pages: every artifact, one artifact's versions and activations, a rollback.

An artifact serves every DAG that uses it, so reading needs read access to the runs of every DAG
and rolling back edit access to them (as ``/wfe/api/v1/artifacts``). The rollback is a form
(POST, same-origin, the session's token) doing what ``POST .../artifacts/{name}/rollback`` does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import APIRouter, Request  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.responses import HTMLResponse, RedirectResponse  # noqa: TID253 - loaded only by the lazily built pages app
from starlette.concurrency import run_in_threadpool

from airflow_wfe.api.deps import ActorDep, ContextDep
from airflow_wfe.api.security import EDIT_EVERY_DAG, READ_EVERY_DAG, GetUserDep, may_every_dag
from airflow_wfe.app import artifacts
from airflow_wfe.ui import csrf
from airflow_wfe.ui.page_kit import Pages, read_form, redirect

__all__ = ["router"]


def router(pages: Pages) -> APIRouter:
    """The artifacts' routes, rendering through ``pages``."""
    routes = APIRouter()

    @routes.get("/artifacts", response_class=HTMLResponse, dependencies=[READ_EVERY_DAG])
    def artifact_list(request: Request, ctx: ContextDep, user: GetUserDep) -> Any:
        return pages.render(
            request, "artifacts.html", user.get_name(), found=artifacts.list_artifacts(ctx).root
        )

    @routes.post(
        "/artifacts/{name:path}/rollback",
        response_class=RedirectResponse,
        dependencies=[EDIT_EVERY_DAG],
    )
    async def rollback(request: Request, name: str, ctx: ContextDep, actor: ActorDep) -> Any:
        """Re-activate the version that was active before the current one."""
        form = await read_form(request)
        csrf.check(request, form.get(csrf.FIELD, ""))
        reason = form.get("reason", "").strip()[:2000] or None
        change = await run_in_threadpool(artifacts.rollback, ctx, name, actor=actor, reason=reason)
        done = urlencode({"rolled_back": change.previous or "", "now": change.version})
        return redirect(request, f"/artifacts/{quote(name, safe='/')}", done)

    @routes.get(
        "/artifacts/{name:path}", response_class=HTMLResponse, dependencies=[READ_EVERY_DAG]
    )
    def artifact_page(
        request: Request,
        name: str,
        ctx: ContextDep,
        user: GetUserDep,
        rolled_back: str = "",
        now: str = "",
    ) -> Any:
        history = artifacts.artifact_history(ctx, name)
        return pages.render(
            request,
            "artifact.html",
            user.get_name(),
            history=history,
            versions=list(reversed(history.versions)),
            activations=list(reversed(history.activations)),
            may_roll_back=may_every_dag(user, "PUT", DagAccessEntity.RUN),
            csrf_field=csrf.FIELD,
            csrf_token=csrf.token_for(request),
            rolled_back=rolled_back,
            now=now,
        )

    return routes
