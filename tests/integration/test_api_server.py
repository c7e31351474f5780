"""The REST API in a real ``airflow api-server`` (on a free loopback port, see ``cluster.py``).

One governed run of ``wfe_t_approval_one`` waits at its approval gate. Over HTTP, with tokens from
Airflow's ``/auth/token`` (SimpleAuthManager users ``viewer`` and ``operator``, role ``user``):
every endpoint of the served OpenAPI schema answers 401 without a token; the viewer reads the run
but may not answer the gate (403); the operator answers it through ``/wfe/api/v1`` (which hands the
answer to Airflow's own HITL API); the run resumes and COMPLETES, and the run as the API returns it
is what ``wfe runs show --json`` prints, approval (by the operator) included; the run's page is
served, and Airflow lists the plugin's external views.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cluster import Cluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.cluster(
        "approvals",
        deadline_s=180.0,
        extra_env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer,operator:user"
        },
    ),
]

DAG_ID = "wfe_t_approval_one"
GATE = "approve"
API = "/wfe/api/v1"


def _token(cluster: Cluster, user: str) -> str:
    passwords = json.loads(
        (cluster.home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    status, body = cluster.request(
        "POST", "/auth/token", {"username": user, "password": passwords[user]}
    )
    assert status == 201, (user, status, body)
    return str(body["access_token"])


def _as(cluster: Cluster, token: str | None, method: str, path: str, body: Any = None) -> Any:
    saved, cluster.token = cluster.token, token
    try:
        return cluster.request(method, path, body)
    finally:
        cluster.token = saved


def _parked(cluster: Cluster, run_id: str) -> bool:
    """The gate awaits input and the scheduler has seen its workload end (answering earlier races
    Airflow 3.3's late "finished" event, see test_policy_approvals.py)."""
    ti = cluster.task_instances(DAG_ID, run_id).get(GATE, {})
    if ti.get("state") != "awaiting_input":
        return False
    log = (cluster.logs / "scheduler.log").read_text(errors="replace")
    return any(
        "TaskInstance Finished" in line and f"ti_id={ti['id']}" in line for line in log.splitlines()
    )


def test_the_api_in_a_real_api_server(cluster: Cluster) -> None:
    cluster.login()
    viewer, operator = _token(cluster, "viewer"), _token(cluster, "operator")
    run_id = cluster.trigger(DAG_ID)
    cluster.wait_until("the gate to wait for an answer", lambda: _parked(cluster, run_id))
    run_path = f"{API}/runs/{DAG_ID}/{run_id}"

    status, schema = _as(cluster, None, "GET", f"{API}/openapi.json")
    assert status == 200
    values = {"dag_id": DAG_ID, "run_id": run_id, "task_id": GATE, "name": "x"}
    unauthenticated = {}
    for path, operations in schema["paths"].items():
        filled = re.sub(r"\{(\w+)(?::path)?\}", lambda m: values[m.group(1)], path)
        for method in operations:
            answer = _as(cluster, None, method.upper(), f"/wfe{filled}", {})
            unauthenticated[f"{method.upper()} {path}"] = answer[0]
    assert len(unauthenticated) >= 15
    assert unauthenticated == dict.fromkeys(unauthenticated, 401)

    status, listed = _as(cluster, viewer, "GET", f"{API}/runs?dag_id={DAG_ID}")
    assert status == 200, listed
    assert [run["run_id"] for run in listed] == [run_id]
    status, approvals = _as(cluster, viewer, "GET", f"{run_path}/approvals")
    assert status == 200, approvals
    assert approvals["hitl_details"][0]["task_instance"]["task_id"] == GATE

    answer = {"chosen_options": ["Approve"], "params_input": {"comment": "through wfe"}}
    status, body = _as(cluster, viewer, "POST", f"{run_path}/gates/{GATE}/answer", answer)
    assert (status, body["code"]) == (403, "forbidden"), body
    status, body = _as(cluster, operator, "POST", f"{run_path}/gates/{GATE}/answer", answer)
    assert status == 200, body
    assert body["responded_by"]["name"] == "operator"
    status, body = _as(cluster, operator, "POST", f"{run_path}/gates/{GATE}/answer", answer)
    assert status == 409, body  # Airflow's rule: one answer only

    finished = cluster.wait_run_finished(DAG_ID, run_id)
    cluster.verify(lambda: _check(finished["state"] == "success", finished))
    status, shown = _as(cluster, viewer, "GET", run_path)
    assert status == 200, shown
    assert shown == cluster.show_run(DAG_ID, run_id)
    assert shown["state"] == "COMPLETED"
    approvals_recorded = [d for d in shown["decisions"] if d["kind"] == "approval"]
    assert [d["outcome"] for d in approvals_recorded] == ["approved"], shown["decisions"]
    assert "operator" in approvals_recorded[0]["actor"]

    # The pages: served through the same server, and Airflow lists our views (one invalid entry
    # would hide the whole plugin from the UI).
    status, page = _as(cluster, viewer, "GET", f"/wfe/ui/runs/{DAG_ID}/{run_id}")
    assert status == 200
    assert "State machine" in page
    status, plugins = _as(cluster, viewer, "GET", "/api/v2/plugins")
    assert status == 200, plugins
    ours = next(p for p in plugins["plugins"] if p["name"] == "airflow_wfe")
    assert {(v["destination"], v["url_route"]) for v in ours["external_views"]} == {
        ("nav", "wfe"),
        ("dag_run", "wfe-run"),
    }


def _check(ok: bool, *context: Any) -> None:
    assert ok, context
