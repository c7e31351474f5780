"""The audit trail's page: the chain's verification, its anchors, exports and a checkpoint.

What a user sees depends on their rights, DAG by DAG:

* with the audit log of every DAG: the store's verification (hashes, links, signatures, replay:
  the first bad entry named), the anchors' verdict when ``[wfe] audit_anchor_dir`` is set, and
  export links for the whole trail; with edit rights on every DAG's runs, a button that signs a
  checkpoint at the chain's head;
* with some DAGs only: export links for the DAGs whose audit log they may read, and nothing of
  the chain-wide verification. Its verdict, event count, sequence range and findings are facts
  about every DAG's events (a finding names the run it is about; the count and range show how
  much happened in DAGs the user cannot see), so none of it is shown, not even the yes/no.
"""

from __future__ import annotations

from typing import Any, Final

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from fastapi import APIRouter, Request  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.responses import HTMLResponse, RedirectResponse  # noqa: TID253 - loaded only by the lazily built pages app
from starlette.concurrency import run_in_threadpool

from airflow_wfe.api.deps import ActorDep, ContextDep
from airflow_wfe.api.security import EDIT_EVERY_DAG, DagScopeDep, GetUserDep, may_every_dag
from airflow_wfe.app import audit
from airflow_wfe.ui import csrf
from airflow_wfe.ui.diagram import chain_strip
from airflow_wfe.ui.page_kit import Pages, may, read_form, redirect

__all__ = ["EXPORT_LINKS_MAX", "router"]

#: The most per-DAG export links the page lists for a user with some DAGs.
EXPORT_LINKS_MAX: Final = 200


def router(pages: Pages) -> APIRouter:
    """The audit trail's routes, rendering through ``pages``."""
    routes = APIRouter()

    @routes.get("/audit", response_class=HTMLResponse)
    async def trail(
        request: Request,
        ctx: ContextDep,
        scope: DagScopeDep,
        user: GetUserDep,
        checkpoint: str = "",
    ) -> Any:
        whole = may_every_dag(user, "GET", DagAccessEntity.AUDIT_LOG)
        verification = None
        if whole:
            anchors = ctx.settings.audit_anchor_dir
            # Verification reads the whole chain: off the event loop.
            verification = await run_in_threadpool(audit.verify, ctx, anchors=anchors)
        readable: list[str] = []
        if not whole and scope.dag_ids is not None:
            readable = [
                dag_id
                for dag_id in sorted(scope.dag_ids)[:EXPORT_LINKS_MAX]
                if may(user, dag_id, "GET", DagAccessEntity.AUDIT_LOG)
            ]
        reports = [] if verification is None else list(verification.reports.items())
        return pages.render(
            request,
            "audit.html",
            user.get_name(),
            whole=whole,
            verification=verification,
            reports=reports,
            strips={name: chain_strip(report) for name, report in reports},
            anchor_dir=ctx.settings.audit_anchor_dir,
            readable=readable,
            may_checkpoint=whole and may_every_dag(user, "PUT", DagAccessEntity.RUN),
            checkpoint=checkpoint,
            csrf_field=csrf.FIELD,
            csrf_token=csrf.token_for(request),
        )

    @routes.post(
        "/audit/checkpoint", response_class=RedirectResponse, dependencies=[EDIT_EVERY_DAG]
    )
    async def write_checkpoint(request: Request, ctx: ContextDep, actor: ActorDep) -> Any:
        """The page's button: what ``POST /wfe/api/v1/audit/checkpoint`` does, CSRF-checked."""
        form = await read_form(request)
        csrf.check(request, form.get(csrf.FIELD, ""))
        reason = form.get("reason", "").strip()[:2000] or "manual"
        mark = await run_in_threadpool(
            audit.checkpoint, ctx, f"{reason} (by {actor} on the audit page)"
        )
        return redirect(request, "/audit", f"checkpoint={'empty' if mark is None else mark.seq}")

    return routes
