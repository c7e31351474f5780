"""Calls into Airflow's own public REST API, in process, as the caller.

Answering a gate must obey every rule Airflow applies to a human-in-the-loop answer: the caller's
right on the DAG's HITL details, the task's assigned users, the allowed options, one answer only,
the resume of the parked task, Airflow's own action log. Rather than re-implementing those (or
calling the private function behind the route, whose dependencies would not run), the API sends
Airflow's public ``PATCH .../hitlDetails`` request to Airflow's ASGI app directly, with the
caller's own credentials (``Authorization`` header, ``_token`` cookie): no network hop, no second
login, and the answer is exactly Airflow's. The lazy wrapper left Airflow's app in the request
scope (:data:`~airflow_wfe.api.lazy.AIRFLOW_APP_SCOPE_KEY`).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

import httpx
from fastapi import HTTPException, Request  # noqa: TID253 - loaded only by the lazily built API app

from airflow_wfe.api.lazy import AIRFLOW_APP_SCOPE_KEY

__all__ = ["answer_gate", "call_airflow", "hitl_path", "run_gates"]

#: Only what identifies the caller crosses over; nothing else of the original request does.
_FORWARDED: Final = ("authorization", "cookie")
_TIMEOUT_S: Final = 30.0


def hitl_path(dag_id: str, run_id: str, task_id: str | None = None, map_index: int = -1) -> str:
    """The public REST path of a run's HITL details, or of one task instance's."""
    run = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
    if task_id is None:
        return f"{run}/hitlDetails"
    return f"{run}/taskInstances/{quote(task_id, safe='')}/{map_index}/hitlDetails"


async def call_airflow(request: Request, method: str, path: str, body: Any = None) -> Any:
    """Send ``method path`` to Airflow's API as the caller; its JSON answer, or its error re-raised.

    Raises:
        HTTPException: with Airflow's status and message when Airflow refuses (400, 403, 404,
            409, ...), or 503 when the API runs outside Airflow's API server.
    """
    airflow_app = request.scope.get(AIRFLOW_APP_SCOPE_KEY)
    if airflow_app is None:
        raise HTTPException(
            503, "Airflow's API is not reachable from here (not mounted by Airflow)"
        )
    headers = {name: request.headers[name] for name in _FORWARDED if name in request.headers}
    transport = httpx.ASGITransport(app=airflow_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://airflow.internal", timeout=_TIMEOUT_S
    ) as client:
        answer = await client.request(method, path, json=body, headers=headers)
    try:
        data = answer.json()
    except ValueError:
        data = {"detail": answer.text}
    if answer.status_code >= 400:
        detail = data.get("detail") if isinstance(data, dict) else data
        message = detail if isinstance(detail, str) else f"Airflow answered {answer.status_code}"
        raise HTTPException(answer.status_code, message)
    return data


async def answer_gate(
    request: Request,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    chosen_options: list[str],
    params_input: dict[str, Any],
    map_index: int = -1,
) -> Any:
    """Answer a pending gate through Airflow's ``PATCH .../hitlDetails``, as the caller.

    The one way both faces answer (the REST action and the run page's form): Airflow checks the
    caller's HITL rights, the assigned users, the options and that nobody answered already.
    """
    payload = {"chosen_options": chosen_options, "params_input": params_input}
    return await call_airflow(
        request, "PATCH", hitl_path(dag_id, run_id, task_id, map_index), payload
    )


async def run_gates(request: Request, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's HITL details as Airflow shows them to the caller (pending and answered).

    Raises:
        HTTPException: as :func:`call_airflow`.
    """
    found = await call_airflow(request, "GET", hitl_path(dag_id, run_id))
    return list(found.get("hitl_details", ())) if isinstance(found, dict) else []
