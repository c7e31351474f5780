"""The policies page: the files of ``[wfe] policy_path`` and a dry run, as ``wfe policy test``.

Policies serve every DAG (their ``applies_to`` patterns may name any of them), so the page needs
read access to the runs of every DAG, like the artifacts. The dry run changes nothing, but it is
a form like the others (POST, same-origin, the session's token), and it takes policies by *name*
and facts as JSON text only: nothing a form sends is read as a path on the server.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request  # noqa: TID253 - loaded only by the lazily built pages app
from fastapi.responses import HTMLResponse  # noqa: TID253 - loaded only by the lazily built pages app
from starlette.concurrency import run_in_threadpool

from airflow_wfe.api.deps import ContextDep
from airflow_wfe.api.security import READ_EVERY_DAG, GetUserDep
from airflow_wfe.app import policies
from airflow_wfe.app.models import PolicyDecision
from airflow_wfe.app.policy_files import policy_files, select_policies
from airflow_wfe.exceptions import PolicyError
from airflow_wfe.ui import csrf
from airflow_wfe.ui.page_kit import Pages, read_form_pairs

__all__ = ["EXAMPLE_FACTS", "router"]

#: What the facts field holds before anyone typed: the shape a gate's facts have.
EXAMPLE_FACTS = """{
  "run": {"dag_id": "deploy_web", "run_id": "manual__1", "run_type": "manual",
          "tags": [], "params": {"env": "prod"}, "conf": {}, "triggered_by": "alice"},
  "step": {"id": "approve", "risk": "high"},
  "cost": {"spent": {"run": 0}},
  "now": "2026-12-01T09:30:00Z"
}"""


def router(pages: Pages) -> APIRouter:
    """The policies' routes, rendering through ``pages``."""
    routes = APIRouter(dependencies=[READ_EVERY_DAG])

    def show(
        request: Request, ctx: ContextDep, user: GetUserDep, status: int = 200, **tried: Any
    ) -> HTMLResponse:
        found = policy_files(ctx.settings.policy_path)
        values: dict[str, Any] = {
            "facts": EXAMPLE_FACTS,
            "chosen": [],
            "decision": None,
            "problem": None,
            **tried,
        }
        return pages.render(
            request,
            "policies.html",
            user.get_name(),
            status,
            found=found,
            csrf_field=csrf.FIELD,
            csrf_token=csrf.token_for(request),
            **values,
        )

    @routes.get("/policies", response_class=HTMLResponse)
    def policy_list(request: Request, ctx: ContextDep, user: GetUserDep) -> Any:
        return show(request, ctx, user)

    @routes.post("/policies/dry-run", response_class=HTMLResponse)
    async def dry_run(request: Request, ctx: ContextDep, user: GetUserDep) -> Any:
        """Evaluate the chosen policies (every one when none is ticked) on the facts given."""
        pairs = await read_form_pairs(request)
        form = dict(pairs)
        csrf.check(request, form.get(csrf.FIELD, ""))
        chosen = [value for key, value in pairs if key == "policy"]
        facts_text = form.get("facts", "").strip() or "{}"
        decision: PolicyDecision | None = None
        try:
            if facts_text.startswith("@"):
                raise ValueError("facts: give a JSON object (files are read by the CLI only)")
            facts = policies.parse_facts(facts_text)
            chosen_policies = select_policies(ctx.settings.policy_path, chosen)
            decision = await run_in_threadpool(policies.dry_run, chosen_policies, facts)
        except (ValueError, PolicyError) as exc:
            return show(request, ctx, user, 400, problem=str(exc), facts=facts_text, chosen=chosen)
        return show(request, ctx, user, decision=decision, facts=facts_text, chosen=chosen)

    return routes
