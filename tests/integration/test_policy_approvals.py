"""Approvals through Airflow's own Human-in-the-loop REST API, on a real cluster (see ``cluster.py``).

Four runs wait at their gates at once (Airflow 3.3 parks them in ``awaiting_input``):

* ``wfe_t_approval_one``: admin approves with a comment; the run resumes and COMPLETES;
* ``wfe_t_approval_reject``: admin rejects; the run ends REJECTED and ``deploy`` never runs;
* ``wfe_t_approval_two`` (two-person rule, triggerer excluded): admin, who triggered it, is refused;
  alice approves (one more needed); alice again is refused; bob approves; the run COMPLETES;
* ``wfe_t_approval_timeout``: the request is assigned to carol and bob in Airflow, so admin's answer
  is refused by Airflow itself (403); nobody else answers: escalated to bob after 6 s (the gate's
  notifier is called again), then approved by the policy's default after 12 s.

Every answer is in ``wfe runs show --json`` under ``decisions``, with who answered and the comment.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster import Cluster

USERS = ("admin", "alice", "bob", "carol")


pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(360),
    pytest.mark.cluster(
        "approvals",
        deadline_s=200.0,
        extra_env={
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:admin" for u in USERS),
            # the scheduler's sweep of awaiting-input deadlines, every second instead of 15
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "1",
        },
    ),
]


def _tokens(cluster: Cluster) -> dict[str, str]:
    passwords = json.loads(
        (cluster.home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    tokens = {}
    for user in USERS:
        status, body = cluster.request(
            "POST", "/auth/token", {"username": user, "password": passwords[user]}
        )
        assert status == 201, (user, status, body)
        tokens[user] = body["access_token"]
    return tokens


def _hitl(cluster: Cluster, dag_id: str, run_id: str) -> tuple[int, Any]:
    return cluster.request(
        "GET", f"{cluster.run_path(dag_id, run_id)}/taskInstances/approve/-1/hitlDetails"
    )


def _waiting(cluster: Cluster, dag_id: str, run_id: str) -> bool:
    """The gate waits for an answer, and the scheduler has processed the end of the workload that
    parked it.

    Airflow 3.3 race: a task parked in ``awaiting_input`` ends its workload; if an answer resumes
    it (SCHEDULED, then QUEUED) before the scheduler processed that workload's "finished" event,
    the late event fails the task ("finished with state success, but the task instance's state
    attribute is queued"). A person never answers that fast; this test must not either. Each
    workload end is one "TaskInstance Finished" line in the scheduler's log.
    """
    status, body = _hitl(cluster, dag_id, run_id)
    ti = cluster.task_instances(dag_id, run_id).get("approve", {})
    if status != 200 or body.get("response_received") or ti.get("state") != "awaiting_input":
        return False
    log = (cluster.logs / "scheduler.log").read_text(errors="replace")
    finished = sum(
        1
        for line in log.splitlines()
        if "TaskInstance Finished" in line and f"ti_id={ti['id']}" in line
    )
    # One workload for the first run, one more per recorded answer (the policy decision is first).
    return finished >= len(_decisions(cluster, dag_id, run_id))


def _decisions(cluster: Cluster, dag_id: str, run_id: str) -> list[Any]:
    """The gate's recorded decisions, read straight from the cluster's store (fast polling)."""
    from airflow_wfe.store import SqlStore

    return SqlStore(f"sqlite:///{cluster.home / 'wfe.db'}").decisions(dag_id, run_id)


def _answer(
    cluster: Cluster,
    tokens: dict[str, str],
    user: str,
    dag_id: str,
    run_id: str,
    option: str,
    comment: str = "",
) -> None:
    """Answer as ``user``, then wait until the gate has recorded the answer."""
    before = len(_decisions(cluster, dag_id, run_id))
    cluster.wait_until(f"{dag_id} to wait for an answer", lambda: _waiting(cluster, dag_id, run_id))
    saved, cluster.token = cluster.token, tokens[user]
    try:
        path = f"{cluster.run_path(dag_id, run_id)}/taskInstances/approve/-1/hitlDetails"
        status, body = cluster.request(
            "PATCH", path, {"chosen_options": [option], "params_input": {"comment": comment}}
        )
    finally:
        cluster.token = saved
    assert status == 200, (user, status, body)
    cluster.wait_until(
        f"{dag_id} to record {user}'s answer",
        lambda: len(_decisions(cluster, dag_id, run_id)) > before,
    )


def _assignees(cluster: Cluster, tokens: dict[str, str], run_id: str) -> list[list[str]]:
    """The timeout run's assignees when its request opens (the approvers and, since Airflow keeps
    a request's assignees for its life, the escalation's users); admin, not assigned, tries to
    answer and Airflow refuses."""
    dag_id = "wfe_t_approval_timeout"

    def assigned() -> list[str] | None:
        status, body = _hitl(cluster, dag_id, run_id)
        if status != 200:
            return None
        return [user["id"] for user in body.get("assigned_users") or []]

    seen = []
    cluster.wait_until("the timeout run's request to open", lambda: assigned() is not None)
    seen.append(assigned() or [])
    saved, cluster.token = cluster.token, tokens["admin"]
    try:
        path = f"{cluster.run_path(dag_id, run_id)}/taskInstances/approve/-1/hitlDetails"
        status, _body = cluster.request(
            "PATCH", path, {"chosen_options": ["Approve"], "params_input": {}}
        )
    finally:
        cluster.token = saved
    seen.append([f"admin answered: {status}"])
    return seen


def _answers(decisions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["actor"], d["outcome"]) for d in decisions if d["kind"] == "approval"]


def test_approvals_rejections_two_person_rule_and_timeouts(cluster: Cluster) -> None:
    cluster.login()
    tokens = _tokens(cluster)
    runs = {
        dag_id: cluster.trigger(dag_id)
        for dag_id in (
            "wfe_t_approval_one",
            "wfe_t_approval_reject",
            "wfe_t_approval_two",
            "wfe_t_approval_timeout",
        )
    }
    one, reject, two, late = (
        runs["wfe_t_approval_one"],
        runs["wfe_t_approval_reject"],
        runs["wfe_t_approval_two"],
        runs["wfe_t_approval_timeout"],
    )
    assignees = _assignees(cluster, tokens, late)

    _answer(cluster, tokens, "admin", "wfe_t_approval_one", one, "Approve", "ship it")
    _answer(cluster, tokens, "admin", "wfe_t_approval_reject", reject, "Reject", "not today")
    _answer(cluster, tokens, "admin", "wfe_t_approval_two", two, "Approve")  # the triggerer
    _answer(cluster, tokens, "alice", "wfe_t_approval_two", two, "Approve", "looks good")
    _answer(cluster, tokens, "alice", "wfe_t_approval_two", two, "Approve")  # again
    _answer(cluster, tokens, "bob", "wfe_t_approval_two", two, "Approve", "agreed")

    finished = cluster.wait_runs_finished(runs, "every gated run to finish")
    records = {dag_id: cluster.show_run(dag_id, run_id) for dag_id, run_id in runs.items()}

    def check() -> None:
        assert {d: r["state"] for d, r in finished.items()} == {
            "wfe_t_approval_one": "success",
            "wfe_t_approval_reject": "failed",
            "wfe_t_approval_two": "success",
            "wfe_t_approval_timeout": "success",
        }
        states = {d: r["state"] for d, r in records.items()}
        assert states == {
            "wfe_t_approval_one": "COMPLETED",
            "wfe_t_approval_reject": "REJECTED",
            "wfe_t_approval_two": "COMPLETED",
            "wfe_t_approval_timeout": "COMPLETED",
        }, states
        first = records["wfe_t_approval_one"]["decisions"]
        assert [(d["kind"], d["outcome"]) for d in first] == [
            ("policy", "needs_approval"),
            ("approval", "approved"),
        ]
        assert first[1]["actor"] == "user:admin"
        assert first[1]["comment"] == "ship it"
        assert first[0]["policies"]["one-approver"]
        run_states = [t["to_state"] for t in records["wfe_t_approval_one"]["transitions"]]
        assert run_states[-3:] == ["WAITING_APPROVAL", "RUNNING", "COMPLETED"], run_states

        assert _answers(records["wfe_t_approval_reject"]["decisions"]) == [
            ("user:admin", "rejected")
        ]
        deploy = cluster.task_instances("wfe_t_approval_reject", reject)["deploy"]["state"]
        assert deploy == "upstream_failed", deploy

        two_answers = records["wfe_t_approval_two"]["decisions"]
        assert _answers(two_answers) == [
            ("user:admin", "refused"),
            ("user:alice", "pending"),
            ("user:alice", "refused"),
            ("user:bob", "approved"),
        ]
        assert "triggered this run" in two_answers[1]["reasons"][0]["message"]
        assert two_answers[0]["policies"]["four-eyes"].startswith("2+")

        assert _answers(records["wfe_t_approval_timeout"]["decisions"]) == [
            ("gate:approve", "escalated"),
            ("timeout", "approved"),
        ]
        assert assignees == [["carol", "bob"], ["admin answered: 403"]]
        notified = (cluster.home / "notified-wfe_t_approval_timeout.txt").read_text()
        assert notified.splitlines() == ["carol,bob", "carol,bob"]  # opened, then escalated
        assert (cluster.home / "notified-wfe_t_approval_one.txt").read_text() == "\n"

    cluster.verify(
        check,
        "--- decisions:\n"
        + json.dumps({d: r.get("decisions") for d, r in records.items()}, indent=1)[:6000],
    )
