"""Changes made by hand in Airflow (REST, as the UI does) reach the audit trail with the user as actor.

A real cluster (api-server, dag-processor, scheduler; see ``cluster.py``) runs ``wfe_t_changes``:
``a`` succeeds, ``b`` fails, the run fails. Then the admin, through Airflow's REST API, marks ``b``
success, marks the run success, clears ``a`` (the scheduler runs it again) and finally deletes the
run. Each request is in the trail as ``airflow.change`` by ``user:admin``; the two marks break the
state machine (a FAILED step is final; a FAILED run belongs to compensation) and are flagged as
``policy.violation`` by ``user:admin``; deleting the FAILED (not in-flight) run is no violation; the
trigger is recorded with the user; and the chain still verifies.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster import Cluster

DAG_ID = "wfe_t_changes"


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.cluster("changes", deadline_s=150.0),
]


def _events(cluster: Cluster) -> list[dict[str, Any]]:
    exported = cluster.wfe("audit", "export", "--dag", DAG_ID)
    if exported.returncode != 0:
        cluster.fail(f"wfe audit export failed: {exported.stderr}")
    return [json.loads(line) for line in exported.stdout.splitlines() if line.startswith("{")]


def _find(events: list[dict[str, Any]], type_: str, **payload: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["type"] == type_ and all(e["payload"].get(k) == v for k, v in payload.items())
    ]


def test_manual_changes_in_airflow_are_audited_with_the_user(cluster: Cluster) -> None:
    cluster.login()
    run_id = cluster.trigger(DAG_ID)
    assert cluster.wait_run_finished(DAG_ID, run_id)["state"] == "failed"
    path = cluster.run_path(DAG_ID, run_id)

    status, body = cluster.request("PATCH", f"{path}/taskInstances/b", {"new_state": "success"})
    assert status == 200, body
    status, body = cluster.request("PATCH", path, {"state": "success"})
    assert status == 200, body
    status, body = cluster.request(
        "POST",
        f"/api/v2/dags/{DAG_ID}/clearTaskInstances",
        {"dry_run": False, "task_ids": ["a"], "dag_run_id": run_id, "only_failed": False},
    )
    assert status == 200, body
    cluster.wait_until(
        "the cleared task to run again",
        lambda: (
            cluster.task_instances(DAG_ID, run_id)["a"]["try_number"] == 2
            and cluster.task_instances(DAG_ID, run_id)["a"]["state"] == "success"
        ),
    )
    cluster.wait_run_finished(DAG_ID, run_id)  # a running run cannot be deleted
    status, body = cluster.request("DELETE", path)
    assert status == 204, body

    events = _events(cluster)
    mine = [e for e in events if e["run_id"] == run_id]

    def check() -> None:
        triggered = _find(mine, "airflow.change", change="run triggered")
        assert [e["actor"] for e in triggered] == ["user:admin"], triggered
        # The trigger request names no run yet (Airflow's log row has the DAG only).
        found = _find(events, "airflow.change", change="trigger_dag_run")
        assert [e["actor"] for e in found] == ["user:admin"], found
        for change in ("post_clear_task_instances", "delete_dag_run"):
            found = _find(mine, "airflow.change", change=change)
            assert [e["actor"] for e in found] == ["user:admin"], (change, found)
        patched = [
            e
            for e in _find(mine, "airflow.change")
            if str(e["payload"]["change"]).startswith("patch_")
        ]
        assert {e["actor"] for e in patched} == {"user:admin"}, patched
        assert len(patched) == 2, patched
        violations = _find(mine, "policy.violation")
        details = sorted(e["payload"]["detail"] for e in violations)
        assert {e["actor"] for e in violations} == {"user:admin"}, violations
        assert details == [
            "run set to success by hand in Airflow while FAILED in the state machine",
            "step b set to SUCCEEDED by hand in Airflow while FAILED in the state machine",
        ], details
        failed = [
            e for e in _find(mine, "step.transition", to_state="FAILED") if e["step_id"] == "b"
        ]
        assert [e["actor"] for e in failed] == ["worker"], failed

    cluster.verify(check, "--- audit events:\n" + "\n".join(json.dumps(e)[:300] for e in mine))
    verified = cluster.wfe("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
